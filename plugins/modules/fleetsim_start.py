#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: fleetsim_start
short_description: Start simulated agents on a version (the fleetsim update driver)
version_added: 0.1.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - The update driver for the simulated fleet (C(fleetsim), used by the tests and demos). It starts the agents
    of O(agents) on a version through the simulator's control port, the way a container recreate or an ECS
    deployment would start real agents after they accepted.
  - "Sends C(POST {control_url}/_sim/start) with C(occurrences) (the agents' names) and C(version), one request per
    distinct version (a revert may put agents back on different versions)."
  - Agents of a request answered with HTTP 200 or 202 are RV(started); for any other answer or no answer,
    each agent of the request is in RV(failed_agents) with the cause, and the task fails.
  - Runs on the controller (action plugin), without forking a Python interpreter per task.
options:
  version:
    description:
      - The version to start every agent on.
      - When not set, each agent's own C(version) is used; an agent without one is an error.
    type: str
  control_url:
    description: Base URL of the simulator's control port (for example C(http://127.0.0.1:8099)).
    type: str
    required: true
extends_documentation_fragment:
  - agentfleet.rollout.agents
  - agentfleet.rollout.connection
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.CONTROLLER
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is sent; C(changed) is V(true) when O(agents) is not empty.
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Every run (re)starts the agents, and reports a change when O(agents) is not empty.
seealso:
  - module: agentfleet.rollout.notify
"""

EXAMPLES = r"""
- name: Start the agents that stopped for the update on the new version
  agentfleet.rollout.fleetsim_start:
    agents: "{{ wave_ask.update_agents }}"
    version: 2.0.0
    control_url: http://127.0.0.1:8099

- name: Revert, each agent to the version it ran before (the version key of rollout_wave's revert_agents)
  agentfleet.rollout.fleetsim_start:
    agents: "{{ wave_settle.revert_agents }}"
    control_url: http://127.0.0.1:8099
"""

RETURN = r"""
started:
  description: Names of the agents the simulator started (empty in check mode).
  returned: always
  type: list
  elements: str
  sample: ["agent-000", "agent-001"]
failed_agents:
  description: Per agent that could not be started, the cause (the HTTP status and detail, or the transport error).
  returned: always
  type: dict
  sample: {"agent-002": "HTTP 404: unknown occurrences: ['agent-002']"}
msg:
  description: When some agents could not be started, how many and which (at most 10 shown).
  returned: failure
  type: str
  sample: "could not start 1 agents: agent-002 (HTTP 404: unknown occurrences: ['agent-002'])"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._module import run_module
from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners


def main():
    run_module(AnsibleModule, _runners.FLEETSIM_START_SPEC, _runners.run_fleetsim_start, _runners.ENGINE_ERRORS)


if __name__ == "__main__":
    main()
