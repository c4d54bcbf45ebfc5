#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rollout_validate
short_description: Check every input of a rollout, shutdown or wakeup before anyone is asked
version_added: 0.2.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - Checks the variables of a playbook of this collection in one place, before any agent is asked and before
    anything is recorded as a deployment - types (from the role's argument spec), ranges, finite numbers
    (V(nan), V(inf) and absurd deadlines such as V(1e12) are rejected), contradictions (C(rollout_min_healthy_time)
    longer than C(rollout_healthy_deadline), a C(rollout_progress_deadline) shorter than C(rollout_healthy_deadline)),
    files that must exist (C(rollout_update_tasks)) or be writable (the report, audit and state paths; a state file
    must be an SQLite database), URL schemes, two hosts with one C(agent_url), an empty group, and the lifecycle
    policy (C(rollout_max_parallel), C(rollout_canary), C(rollout_auto_promote), C(rollout_progress_deadline),
    C(rollout_health_check)).
  - Fails with one line naming every bad variable (a token is never shown). The rollout, shutdown and wakeup roles
    run it as their first task.
  - Runs on the controller (action plugin). Without O(variables) it reads the role's variables itself, each
    templated on its own, so that one that cannot be evaluated is named.
options:
  kind:
    description: Whose variables to check - the V(rollout), V(shutdown) or V(wakeup) role's.
    type: str
    default: rollout
    choices: [rollout, shutdown, wakeup]
  variables:
    description:
      - The variables to check, by name (for example C(rollout_healthy_deadline)). Default - every variable of the
        role (and of the lifecycle policy) defined for the task.
    type: dict
  agents:
    description:
      - The agents as dicts with C(name) and C(agent_url).
      - Mutually exclusive with O(hosts).
    type: list
    elements: dict
  hosts:
    description:
      - Inventory host names whose C(agent_url) to check (action plugin only), usually
        C(ansible_play_hosts).
      - Mutually exclusive with O(agents).
    type: list
    elements: str
  base_dir:
    description: Where relative paths start. Default - the directory ansible-playbook runs in.
    type: path
extends_documentation_fragment:
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.CONTROLLER
  - agentfleet.rollout.attributes.IDEMPOTENT
"""

EXAMPLES = r"""
- name: Check every input before anyone is asked
  agentfleet.rollout.rollout_validate:
    kind: rollout
    hosts: "{{ ansible_play_hosts }}"
  run_once: true

- name: Check explicit values
  agentfleet.rollout.rollout_validate:
    variables:
      rollout_healthy_deadline: 300
      rollout_min_healthy_time: 10
    agents:
      - name: agent-1
        agent_url: https://agents.example.org/api/datum
"""

RETURN = r"""
valid:
  description: Always true (bad input fails the task).
  returned: success
  type: bool
  sample: true
checked:
  description: The names of the variables checked.
  returned: success
  type: list
  elements: str
  sample: [rollout_healthy_deadline, rollout_min_healthy_time]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._module import run_module
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate import VALIDATE_MUTUALLY_EXCLUSIVE
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate import VALIDATE_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate import run_validate


def main():
    run_module(AnsibleModule, VALIDATE_SPEC, run_validate, (ValueError,), controller_only="hosts",
               mutually_exclusive=VALIDATE_MUTUALLY_EXCLUSIVE)


if __name__ == "__main__":
    main()
