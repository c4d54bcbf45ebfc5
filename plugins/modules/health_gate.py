#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: health_gate
short_description: Wait until a wave of agents is stable on its new version, or judge it failed
version_added: 0.1.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - Probes C(GET {agent_url}/v1/system/health) of every agent of a wave, concurrently (at most O(max_workers) at
    a time), until the wave is decided, and says whether enough agents became stable.
  - An agent is B(healthy) on a probe when the call returns HTTP 200 within the timeouts, the body parses,
    C(data.status) is C(healthy), C(data.cognitive_state) is one of O(expected_states) and, when
    O(target_version) is set, C(data.version) equals it.
  - An agent is B(stable) once it has been healthy on every probe for O(min_healthy_time) seconds; one
    unhealthy probe starts its window again. A stable agent is not probed any more.
  - The wait ends at the first of, every agent stable (C(all stable)); O(healthy_deadline) seconds
    passed (C(deadline reached)); or, only when O(grace) is set, the threshold met, that is at least
    O(success_threshold) of the agents stable (rounded up), and O(grace) seconds passed since it was first met
    (C(threshold met)). Without O(grace) every agent is watched until it is stable or the deadline ends, so a slow
    agent is not given up early.
  - The wave passes when the threshold is met at the end. An empty wave passes.
  - Probes happen every O(poll_interval) seconds, and sooner when an agent's stability window ends before then.
  - Each agent that did not become stable is reported (RV(unstable), RV(table)) with the cause of its last failed
    probe, one of the following.
  - "No HTTP answer: C(connection refused), C(connect timeout after 3.0s), C(connect failed: ...),
    C(TLS error: ...), C(read timeout after 10.0s), C(connection lost: ...) or C(HTTP failure: ...)."
  - "An answer other than 200: C(HTTP 503). No JSON C(data) object: C(unparsable body).
    No C(status) or C(cognitive_state) in it: C(missing fields: status, cognitive_state)."
  - "C(data.status) not C(healthy): C(status degraded). A cognitive state not in O(expected_states):
    C(cognitive_state wakeup), followed by the expected states in parentheses. Another version than
    O(target_version): C(version 1.9.0), followed by the expected version in parentheses."
  - "No probe result for the agent: C(not probed yet) or C(no answer)."
  - Runs on the controller (action plugin), without forking a Python interpreter per task.
options:
  target_version:
    description: When set, an agent counts as healthy only when it reports this C(version).
    type: str
  success_threshold:
    description:
      - The fraction (between 0 and 1) of the agents that must be stable for the wave to pass, rounded up to
        whole agents (V(0.8) of 4 agents is 4, of 5 agents is 4).
    type: float
    default: 0.8
  fail_on_unhealthy:
    description:
      - Fail the task when the wave does not pass, with the per-agent cause table in the message.
      - With V(false) the task succeeds and RV(passed) says whether the wave passed (the rollout roles do this
        so that they can revert and record the wave first).
    type: bool
    default: true
extends_documentation_fragment:
  - agentfleet.rollout.agents
  - agentfleet.rollout.gate
  - agentfleet.rollout.connection
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.CONTROLLER
  - agentfleet.rollout.attributes.IDEMPOTENT
attributes:
  check_mode:
    details:
      - In check mode nothing is probed and nothing is waited for; the gate is reported as passed and skipped.
  idempotent:
    details:
      - Read-only; never reports a change.
seealso:
  - module: agentfleet.rollout.notify
  - module: agentfleet.rollout.rollout_state
"""

EXAMPLES = r"""
# updated: the agents your update step started on the new version
- name: Wait until 80% of the wave is stable on 2.0.0 for 30 seconds
  agentfleet.rollout.health_gate:
    agents: "{{ updated }}"
    target_version: 2.0.0
    success_threshold: 0.8
    min_healthy_time: 30
    healthy_deadline: 600
    token: "{{ rollout_token }}"

- name: Judge the wave without failing, to revert first; give stragglers 60 seconds once 80% are stable
  agentfleet.rollout.health_gate:
    agents: "{{ updated }}"
    expected_states: [work, play]
    grace: 60
    fail_on_unhealthy: false
  register: gate

- name: Show why agents were not stable
  ansible.builtin.debug:
    msg: "{{ gate.table }}"
  when: not gate.passed
"""

RETURN = r"""
passed:
  description: Whether at least RV(required) agents were stable at the end (always V(true) in check mode).
  returned: always
  type: bool
  sample: true
skipped:
  description: V(true) in check mode, where the gate is not waited for.
  returned: check mode
  type: bool
  sample: true
reason:
  description: Why the wait ended, V(all stable), V(threshold met), V(deadline reached) (V(check mode) in check mode).
  returned: always
  type: str
  sample: all stable
stable:
  description: Names of the agents that became stable.
  returned: always
  type: list
  elements: str
  sample: ["agent-000", "agent-001"]
unstable:
  description: Per agent that did not become stable, the cause of its last failed probe.
  returned: always
  type: dict
  sample: {"agent-002": "cognitive_state wakeup (expected work)", "agent-003": "connection refused"}
agents:
  description:
    - Per agent, C(stable), C(cause) (null when stable), C(probes) (how many probes were made) and the
      C(version), C(status) and C(cognitive_state) of its last answer where it gave them.
  returned: always
  type: dict
  sample: {"agent-000": {"stable": true, "cause": null, "probes": 11, "version": "2.0.0", "status": "healthy",
           "cognitive_state": "work"}}
total:
  description: Number of agents watched.
  returned: always
  type: int
  sample: 4
stable_count:
  description: Number of agents that became stable.
  returned: always
  type: int
  sample: 2
required:
  description: Number of stable agents needed to pass (O(success_threshold) of RV(total), rounded up; 0 in check mode).
  returned: always
  type: int
  sample: 4
ratio:
  description: RV(stable_count) divided by RV(total), 4 decimals (1.0 for an empty wave).
  returned: success, not in check mode
  type: float
  sample: 0.5
elapsed:
  description: Seconds the gate waited.
  returned: always
  type: float
  sample: 12.503
table:
  description:
    - One line per agent that did not become stable (at most 50), with its version, cognitive state and cause,
      after a header line. Empty when every agent became stable.
  returned: always
  type: list
  elements: str
  sample: ["agent                            version    state        cause",
           "agent-003                        -          -            connection refused"]
msg:
  description: In check mode, that the gate was not waited for; when the gate failed, the counts and the cause table.
  returned: check mode or failure
  type: str
  sample: "health gate failed: 2/4 stable, 4 required (deadline reached)"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._module import run_module
from ansible_collections.agentfleet.rollout.plugins.module_utils import _argspecs
from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners


def main():
    run_module(AnsibleModule, _argspecs.GATE_SPEC, _runners.run_gate, _runners.ENGINE_ERRORS)


if __name__ == "__main__":
    main()
