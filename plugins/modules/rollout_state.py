#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rollout_state
short_description: Record a wave's start, agents' results and a wave's verdict in the rollout state
version_added: 0.1.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - For plays that compose their own waves from M(agentfleet.rollout.notify), M(agentfleet.rollout.health_gate) and
    their own update tasks (docs/examples/compose.yml), records into deployment O(deployment_id) of the state file
    (O(state_path)) what the collection's own waves play records through M(agentfleet.rollout.rollout_wave).
    M(agentfleet.rollout.deployment) starts and closes the deployment; M(agentfleet.rollout.deployment_info) reads it.
  - O(op=wave_start) marks wave O(wave) started, renews the lease and returns one line per earlier wave
    (RV(previous_waves)) for the reason text of M(agentfleet.rollout.notify).
  - O(op=mark) records a result per host, from O(results) and/or O(hosts) with O(result), and renews the lease.
  - O(op=wave_done) records the O(gate) result of M(agentfleet.rollout.health_gate) for wave O(wave) and judges the
    wave. Each host of O(updated_hosts) is recorded as C(reverted) when it is in O(reverted_hosts), C(updated) when
    it was stable (or when O(gate) is not given), otherwise C(failed) with the gate's cause. The wave passes when
    at least ceil(O(success_threshold) x (accepted + unreachable)) of its agents are recorded healthy on the
    target, counted over the state (this run and earlier runs), the same verdict as
    M(agentfleet.rollout.rollout_wave). It records the wave as C(passed) or C(failed) and returns its RV(summary)
    and RV(line).
  - Fails for a deployment id that is not in the state file.
  - Runs on the controller (action plugin), without forking a Python interpreter per task.
options:
  op:
    description: What to record (see the description).
    type: str
    required: true
    choices: [wave_start, mark, wave_done]
  deployment_id:
    description: The deployment (started with M(agentfleet.rollout.deployment)).
    type: str
    required: true
  wave:
    description: The wave index (1-based). Required with O(op=wave_start) and O(op=wave_done).
    type: int
  wave_name:
    description: The wave's cohort name. Required with O(op=wave_done); written to the audit log by O(op=wave_start).
    type: str
  wave_count:
    description: With O(op=wave_done), how many waves the deployment has (default, the number of waves in its plan).
    type: int
  success_threshold:
    description:
      - With O(op=wave_done), the fraction of the wave's agents that accepted or were unreachable that must be healthy
        on the target for the wave to pass, rounded up (an unreachable agent is a failure, not a decision; rejects,
        defers and declines do not count against a wave).
    type: float
    default: 0.8
  gate:
    description:
      - With O(op=wave_done), the result of M(agentfleet.rollout.health_gate) for the wave's updated hosts
        (C(agents), with C(stable), C(cause) and C(version) per host, and C(reason)).
      - When not set the gate counts as skipped and every host of O(updated_hosts) is recorded C(updated).
    type: dict
  updated_hosts:
    description: With O(op=wave_done), the hosts that were updated in this wave.
    type: list
    elements: str
    default: []
  reverted_hosts:
    description: With O(op=wave_done), the hosts of O(updated_hosts) that were reverted after a failed gate.
    type: list
    elements: str
    default: []
  results:
    description:
      - With O(op=mark), results to record, each a dict with C(host), C(result) (one of the O(result) choices) and
        optionally C(detail), C(version_before) and C(version_after).
    type: list
    elements: dict
    default: []
  hosts:
    description: With O(op=mark), hosts to record O(result) for.
    type: list
    elements: str
    default: []
  result:
    description: With O(op=mark), the result recorded for every host of O(hosts) (required when O(hosts) is not empty).
    type: str
    choices: [updated, deferred, rejected, failed, reverted, skipped]
  detail:
    description: With O(op=mark), the detail recorded with O(result) for every host of O(hosts) (for example why they failed).
    type: str
  audit_path:
    description: Append one JSON line per event (wave started; wave passed or failed) to this audit log.
    type: path
extends_documentation_fragment:
  - agentfleet.rollout.state.EXISTING
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.CONTROLLER
  - agentfleet.rollout.attributes.PARTIAL
attributes:
  check_mode:
    details: In check mode nothing is recorded and nothing is predicted; the result has only C(msg).
  idempotent:
    details:
      - O(op=wave_start) and O(op=wave_done) always report a change (they record times); recording the same values
        again leaves the same state.
seealso:
  - module: agentfleet.rollout.deployment
  - module: agentfleet.rollout.deployment_info
  - module: agentfleet.rollout.notify
  - module: agentfleet.rollout.health_gate
"""

EXAMPLES = r"""
- name: Start wave 1
  agentfleet.rollout.rollout_state:
    op: wave_start
    state_path: /var/lib/agentfleet/rollout.db
    deployment_id: deploy-20260101-120000
    wave: 1
    wave_name: explorers
  register: wave_start

- name: Record the agents your tasks updated
  agentfleet.rollout.rollout_state:
    op: mark
    state_path: /var/lib/agentfleet/rollout.db
    deployment_id: deploy-20260101-120000
    hosts: "{{ updated }}"
    result: updated

- name: Judge wave 1 from its health gate
  agentfleet.rollout.rollout_state:
    op: wave_done
    state_path: /var/lib/agentfleet/rollout.db
    deployment_id: deploy-20260101-120000
    wave: 1
    wave_name: explorers
    gate: "{{ gate }}"
    updated_hosts: "{{ updated }}"
"""

RETURN = r"""
previous_waves:
  description: With O(op=wave_start), one line per earlier wave that has a summary.
  returned: op=wave_start
  type: list
  elements: str
  sample: ["explorers: 1/1 healthy on 2.0.0", "early_adopters: 2/3 healthy on 2.0.0 (1 deferred)"]
marked:
  description: With O(op=mark), how many results were recorded.
  returned: op=mark
  type: int
  sample: 3
summary:
  description:
    - With O(op=wave_done), the wave's summary as recorded. C(wave), C(name), C(wave_count), C(size),
      C(target_version); the answer counts C(accepted), C(declined), C(deferred), C(rejected), C(unreachable),
      C(skipped); C(updated) (agents that accepted), C(healthy) (of them, recorded updated on the target), C(failed),
      C(required), C(passed), C(gate_reason), C(reverted); C(results) (agents of the wave per recorded result);
      C(elapsed) (seconds since the wave started), C(line) and C(halt_reason) (null when it passed).
  returned: op=wave_done
  type: dict
  sample: {"wave": 1, "name": "explorers", "wave_count": 4, "size": 1, "target_version": "2.0.0", "accepted": 1,
           "declined": 0, "deferred": 0, "rejected": 0, "unreachable": 0, "skipped": 0, "updated": 1, "healthy": 1,
           "failed": 0, "required": 1, "passed": true, "gate_reason": "all stable", "reverted": 0,
           "results": {"updated": 1, "deferred": 0, "declined": 0, "rejected": 0, "failed": 0, "reverted": 0,
                       "skipped": 0},
           "elapsed": 12.4, "halt_reason": null, "line": "wave 1/4 explorers: 1 agents | accepted 1, declined 0,
           deferred 0, rejected 0, unreachable 0 | healthy 1/1 | 12.4s | passed"}
line:
  description: With O(op=wave_done), the wave's summary as one line.
  returned: op=wave_done
  type: str
  sample: "wave 1/4 explorers: 1 agents | accepted 1, declined 0, deferred 0, rejected 0, unreachable 0 | healthy 1/1
    | 12.4s | passed"
passed:
  description: With O(op=wave_done), whether the wave passed (see the description).
  returned: op=wave_done
  type: bool
  sample: true
msg:
  description: In check mode, that the state was not written.
  returned: check mode
  type: str
  sample: "check mode: state not written"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._module import run_module
from ansible_collections.agentfleet.rollout.plugins.module_utils import _argspecs
from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners


def main():
    run_module(AnsibleModule, _argspecs.STATE_SPEC, _runners.run_state, _runners.ENGINE_ERRORS,
               required_if=_argspecs.STATE_REQUIRED_IF)


if __name__ == "__main__":
    main()
