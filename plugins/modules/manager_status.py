#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: manager_status
short_description: Read, or wait for, a CIRISManager deployment's status
version_added: 0.2.0
author:
  - agentfleet.rollout contributors (@agentfleet)
description:
  - Sends C(GET /manager/v1/updates/status), with C(deployment_id) when O(deployment_id) is set, and returns the
    deployment's status; without O(deployment_id), the manager's current deployment (RV(found) is false when
    there is none).
  - With O(wait=true) it polls until the deployment is completed, failed, cancelled, rejected or rolled back, or
    fails at O(wait_timeout) with the last status. A deployment that ended without completing (V(failed),
    V(cancelled), V(rejected), V(rolled_back)) B(fails the task), with the final status in the result - the same
    keys as a success, so C(failed_when) or C(ignore_errors) can act on RV(status).
  - Without O(wait) (and in check mode, which skips the wait) the task reports the status and does not judge it.
options:
  deployment_id:
    description:
      - The deployment to read, as RV(agentfleet.rollout.manager_notify#module:deployment_id) returned it. An id the
        manager does not know fails the task.
      - When not set, the manager's current deployment.
    type: str
extends_documentation_fragment:
  - agentfleet.rollout.manager
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.IDEMPOTENT
attributes:
  check_mode:
    details:
      - Only reads; in check mode the status is read once and O(wait) is skipped.
  idempotent:
    details:
      - Read-only; never reports a change.
seealso:
  - module: agentfleet.rollout.manager_notify
"""

EXAMPLES = r"""
- name: Wait for a deployment started by CI
  agentfleet.rollout.manager_status:
    manager_url: https://agents.example.org
    deployment_id: deploy-20250801-123456
    wait: true
    wait_timeout: 1800
    poll_interval: 15
  register: deployment
  # fails when the deployment ends failed, cancelled, rejected or rolled back, or after 1800 s

- name: Wait for it, and record how it ended without failing here
  agentfleet.rollout.manager_status:
    manager_url: https://agents.example.org
    deployment_id: deploy-20250801-123456
    wait: true
  register: outcome
  ignore_errors: true

- name: Show how it ended (outcome.status, outcome.deployment.agents_updated, ... are there either way)
  ansible.builtin.debug:
    msg: "{{ outcome.summary }}"

- name: Show the current deployment, if any
  agentfleet.rollout.manager_status:
    manager_url: https://agents.example.org
  register: current

- ansible.builtin.debug:
    msg: "{{ current.summary }}"
"""

RETURN = r"""
found:
  description: Whether the manager had a deployment to show (always true with O(deployment_id); the task fails otherwise).
  returned: always
  type: bool
  sample: true
deployment:
  description:
    - The deployment status as the manager returned it, masked, with every documented field (C(null) when the
      manager left it out) and any other field it sent, plus C(counts).
  returned: when RV(found)
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

from ansible_collections.agentfleet.rollout.plugins.module_utils._manager_module import STATUS_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager_module import run_manager_module
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager_module import run_status


def main():
    run_manager_module(AnsibleModule, STATUS_SPEC, run_status)


if __name__ == "__main__":
    main()
