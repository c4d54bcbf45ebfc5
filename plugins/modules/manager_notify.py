#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: manager_notify
short_description: Tell an existing CIRISManager about new images, and optionally wait for the deployment
version_added: 0.2.0
author:
  - agentfleet.rollout contributors (@agentfleet)
description:
  - Sends C(POST /manager/v1/updates/notify) to a CIRISManager with the new O(agent_image) and/or O(gui_image),
    the O(strategy) and the release details. The manager then runs the deployment itself (it asks its agents,
    recreates the containers of those that accept, and watches them reach C(work)); this module returns the
    deployment status the manager answers with.
  - With O(wait=true) it then polls C(GET /manager/v1/updates/status?deployment_id=...) until the deployment
    has finished, and B(fails the task) when the deployment ended without completing (V(failed), V(cancelled),
    V(rejected) or V(rolled_back)); it fails at O(wait_timeout) too, with the last status. A failed task returns the same keys as
    a successful one (RV(status), RV(deployment), RV(succeeded), ...), so C(failed_when) or C(ignore_errors) can
    act on how the deployment ended.
  - Without O(wait), the task reports the status the manager answered with and does not judge it.
  - CIRISManager runs one deployment at a time. Its 409 answer fails the task with the id of the deployment in
    progress (RV(running_deployment_id)) when the manager names it; the notification is never retried.
options:
  agent_image:
    description:
      - The new agent image, for example C(ghcr.io/cirisai/ciris-agent:2.0.0).
      - O(agent_image) or O(gui_image) is required.
    type: str
  gui_image:
    description: The new GUI image, for example C(ghcr.io/cirisai/ciris-gui:2.0.0).
    type: str
  strategy:
    description:
      - V(canary) - the manager's phases (explorers, early adopters, general), each passed when one of its agents
        is stable in C(work); V(immediate) - every agent at once; V(manual) - the manager stages it for an admin.
    type: str
    choices: [canary, immediate, manual]
    default: canary
  source:
    description: Where the notification comes from (for example C(github-actions)). Not sent when not set (the manager records its default).
    type: str
  commit_sha:
    description: The commit the images were built from.
    type: str
  update_message:
    description:
      - The deployment message (what changed), which the manager passes on to the agents; sent as the body field
        C(message).
      - The option cannot be called C(message), not even as an alias - C(ansible-test sanity) (validate-modules)
        reserves that argument name.
    type: str
  metadata:
    description: "Free-form metadata, for example C({version: 2.0.0, pr_number: 123}). Not sent when empty."
    type: dict
extends_documentation_fragment:
  - agentfleet.rollout.manager
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.NOT_IDEMPOTENT
attributes:
  check_mode:
    details:
      - In check mode nothing is sent; RV(request) shows the notification that would be, and C(changed) is true.
  idempotent:
    details:
      - Every run asks the manager for a new deployment. A rerun while the deployment runs is refused by the
        manager (409) and fails naming it; to follow a deployment already started, use
        M(agentfleet.rollout.manager_status) with its RV(deployment_id).
seealso:
  - module: agentfleet.rollout.manager_status
"""

EXAMPLES = r"""
- name: Deploy 2.0.0 through CIRISManager and wait for it (token from CIRIS_DEPLOY_TOKEN)
  agentfleet.rollout.manager_notify:
    manager_url: https://agents.example.org
    agent_image: ghcr.io/cirisai/ciris-agent:2.0.0
    gui_image: ghcr.io/cirisai/ciris-gui:2.0.0
    strategy: canary
    source: github-actions
    commit_sha: "{{ lookup('ansible.builtin.env', 'GITHUB_SHA') }}"
    update_message: Faster memory consolidation
    metadata:
      version: 2.0.0
    wait: true
    wait_timeout: 3600
  register: deploy
  # the task fails when the deployment ends failed, cancelled, rejected or rolled back, or at wait_timeout

- name: Deploy, and let a deployment an admin cancelled or rejected pass (any other failure fails the task)
  agentfleet.rollout.manager_notify:
    manager_url: https://agents.example.org
    agent_image: ghcr.io/cirisai/ciris-agent:2.0.0
    strategy: manual
    wait: true
  register: staged
  failed_when: staged.failed and staged.status not in ['cancelled', 'rejected']

- name: An emergency patch, through a manager with a private CA
  agentfleet.rollout.manager_notify:
    manager_url: https://manager.internal:8888
    ca_path: /etc/ssl/internal-ca.pem
    token: "{{ vault_ciris_deploy_token }}"
    agent_image: ghcr.io/cirisai/ciris-agent:2.0.1
    strategy: immediate
"""

RETURN = r"""
request:
  description: The notification - method, URL and JSON body (the token is not part of it).
  returned: always
  type: dict
  sample:
    method: POST
    url: https://agents.example.org/manager/v1/updates/notify
    body: {agent_image: "ghcr.io/cirisai/ciris-agent:2.0.0", strategy: canary, source: github-actions}
running_deployment_id:
  description: On a 409, the id of the deployment the manager is running, when its answer names it.
  returned: on a 409 failure
  type: str
  sample: deploy-20250801-101500
deployment:
  description:
    - The deployment status as the manager returned it, masked, with every documented field (C(null) when the
      manager left it out) and any other field it sent, plus C(counts).
  returned: when the manager answered (not in check mode)
  type: dict
  contains:
    deployment_id:
      description: The manager's id of the deployment.
      type: str
      sample: deploy-20250801-123456
    status:
      description:
        - C(pending), C(staged) (waiting for a human's review), C(in_progress), C(paused), C(completed),
          C(failed), C(cancelled), C(rejected), C(rolling_back) or C(rolled_back), lower-cased.
      type: str
      sample: in_progress
    agents_total:
      description: Agents in the deployment.
      type: int
      sample: 10
    agents_updated:
      description: Agents updated so far.
      type: int
      sample: 0
    agents_deferred:
      description: Agents that deferred the update.
      type: int
      sample: 0
    agents_rejected:
      description: Agents that rejected the update.
      type: int
      sample: 0
    started_at:
      description: When the deployment started (ISO 8601).
      type: str
      sample: "2025-08-01T12:00:00Z"
    canary_phase:
      description: The canary phase (C(explorers), C(early_adopters), C(general)); C(null) for other strategies.
      type: str
      sample: explorers
    message:
      description: The manager's message.
      type: str
      sample: Deployment started
    counts:
      description: The C(agents_*) numbers the manager sent (C(agents_failed) too, where it sends it).
      type: dict
      sample: {agents_total: 10, agents_updated: 0, agents_deferred: 0, agents_rejected: 0}
deployment_id:
  description: The deployment's id (C(null) when there is none).
  returned: always
  type: str
  sample: deploy-20250801-123456
status:
  description: The deployment's status (C(null) when there is none).
  returned: always
  type: str
  sample: completed
finished:
  description:
    - Whether the deployment reached a final status (completed, failed, cancelled, rejected, rolled_back).
    - With O(wait=true), a final status other than C(completed) fails the task, with this result.
  returned: always
  type: bool
  sample: true
succeeded:
  description:
    - Whether the deployment's final status is C(completed).
    - With O(wait=true) the task fails when it is false (a timeout, or a deployment that did not complete).
  returned: always
  type: bool
  sample: true
waited:
  description: Whether the module polled until the deployment finished (O(wait=true)).
  returned: always
  type: bool
  sample: true
polls:
  description: Status requests made.
  returned: always
  type: int
  sample: 12
elapsed:
  description: Seconds the task spent talking to the manager and waiting.
  returned: always
  type: float
  sample: 118.4
summary:
  description: One line for logs - id, status, phase, counts and the manager's message.
  returned: always
  type: str
  sample: "deploy-20250801-123456: completed (phase general) - 10 total, 8 updated, 1 deferred, 1 rejected"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._manager_module import NOTIFY_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager_module import run_manager_module
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager_module import run_notify


def main():
    run_manager_module(AnsibleModule, NOTIFY_SPEC, run_notify, required_one_of=[("agent_image", "gui_image")])


if __name__ == "__main__":
    main()
