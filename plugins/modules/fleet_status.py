#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_status
short_description: The fleet as it is now - every agent probed at once, versions and states counted
version_added: 0.2.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - Sends one health request (C(GET /v1/system/health)) to every agent at once and counts what they answer, the
    version spread (version -> number of agents) and the cognitive states, like CIRISManager's version adoption
    view. What C(agentfleet.rollout.status -e rollout_live=true) prints.
  - Read only - nothing is asked, recorded or changed, so it probes in check mode too.
  - An agent that does not answer (or answers without a parsable body) counts under the version C(unreachable);
    one that answers without a version under C(unknown).
  - Run as an action on the controller, O(group) or O(hosts) name the agents by their inventory hosts (their
    C(agent_url) and C(rollout_token) host variables).
options:
  agents:
    description: The agents to probe, each with C(name) and C(agent_url).
    type: list
    elements: dict
    suboptions:
      name:
        description: Inventory name of the agent; the key of RV(agents).
        type: str
        required: true
      agent_url:
        description: Base URL of the agent (C(http://) or C(https://)), possibly with a path prefix.
        type: str
        required: true
      agent_id:
        description: The agent identity shared by its occurrences (not used for probing).
        type: str
      occurrence_id:
        description: The occurrence of the agent (not used for probing).
        type: str
      canary_group:
        description: The agent's canary group (not used for probing).
        type: str
  group:
    description: Probe every host of this inventory group (action plugin only).
    type: str
  hosts:
    description: Probe these inventory hosts (with O(group), those of them in the group; action plugin only).
    type: list
    elements: str
  target_version:
    description: Also count the agents on this version (RV(on_target)) and list the others (RV(off_target)).
    type: str
  expected_states:
    description: The cognitive states in which an agent that reports C(status) C(healthy) counts as healthy.
    type: list
    elements: str
    default: [work]
extends_documentation_fragment:
  - agentfleet.rollout.connection
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.CONTROLLER
  - agentfleet.rollout.attributes.info_module
seealso:
  - module: agentfleet.rollout.deployment_info
"""

EXAMPLES = r"""
- name: The version spread of the agents group
  agentfleet.rollout.fleet_status:
    group: agents
    target_version: 2.0.0
  register: fleet

- name: Show it
  ansible.builtin.debug:
    msg: "{{ fleet.lines }}"
"""

RETURN = r"""
total:
  description: The number of agents probed.
  returned: always
  type: int
  sample: 10
versions:
  description: Version -> number of agents (C(unreachable) for those that did not answer, C(unknown) without a version).
  returned: always
  type: dict
  sample: {"2.0.0": 7, "1.0.0": 2, "unreachable": 1}
states:
  description: Cognitive state -> number of agents (C(unreachable) for those that did not answer).
  returned: always
  type: dict
  sample: {"work": 8, "shutdown": 1, "unreachable": 1}
healthy:
  description: The number of agents that answered C(status) C(healthy) in one of O(expected_states).
  returned: always
  type: int
  sample: 8
unreachable_agents:
  description: The agents that did not answer, by name.
  returned: always
  type: list
  elements: str
  sample: ["agent-009"]
on_target:
  description: With O(target_version), the agents on it, by name (else empty).
  returned: always
  type: list
  elements: str
  sample: ["agent-000"]
off_target:
  description: With O(target_version), the other agents, by name (else empty).
  returned: always
  type: list
  elements: str
  sample: ["agent-009"]
target_version:
  description: O(target_version) as given (null without it).
  returned: always
  type: str
  sample: 2.0.0
agents:
  description: Per agent (by name) C(version), C(cognitive_state), C(status), C(healthy) and C(cause) (why not healthy).
  returned: always
  type: dict
  sample: {"agent-000": {"version": "2.0.0", "cognitive_state": "work", "status": "healthy", "healthy": true,
                         "cause": null}}
lines:
  description: The spread as lines of text (what the status playbook prints).
  returned: always
  type: list
  elements: str
  sample: ["fleet now: 10 agents, 8 healthy, 1 unreachable", "  version 2.0.0                 7   70.0 %"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._module import run_module
from ansible_collections.agentfleet.rollout.plugins.module_utils._fleet import FLEET_STATUS_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._fleet import run_fleet_status
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.errors import RolloutError


def main():
    run_module(AnsibleModule, FLEET_STATUS_SPEC, run_fleet_status, (RolloutError, ValueError))


if __name__ == "__main__":
    main()
