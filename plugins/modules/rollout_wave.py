#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rollout_wave
short_description: Run one rollout wave (ask for consent, update, health gate, judge, revert and record)
version_added: 0.1.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - Runs one wave of a deployment that M(agentfleet.rollout.rollout_state) with
    O(agentfleet.rollout.rollout_state#module:op=begin) recorded in the state file O(state_path).
    This is the flow the C(agentfleet.rollout.wave) role runs for every wave of the C(agentfleet.rollout.rollout) role.
  - Between phases the data travels through the rollout state (answers, update results, wave start and
    summary), not through the playbook.
  - "O(phase=all), for the controller-side drivers O(driver=none) and O(driver=fleetsim), runs the whole wave in one
    call. 1. Ask: the wave is marked started, the reason text is built and every member of O(wave) is asked for
    consent, as M(agentfleet.rollout.notify) does with O(agentfleet.rollout.notify#module:skip_if_on_target=true)
    and the state file (recorded final answers are not asked again, deferring agents are re-asked until
    O(reask_until))."
  - "2. Start the accepters: the agents that accepted and are not yet updated (RV(update_agents)) are started
    on the deployment's target version. With O(driver=fleetsim) through the simulator's control port
    O(control_url), as M(agentfleet.rollout.fleetsim_start) does; agents it could not start are recorded
    C(failed). With O(driver=none) nothing is started (the agent's own supervisor does) and they are recorded
    C(updated)."
  - "3. Gate: the members that accepted and are recorded C(updated) are watched as M(agentfleet.rollout.health_gate)
    does (O(expected_states), O(success_threshold), O(min_healthy_time), O(healthy_deadline), O(poll_interval),
    O(grace)), with the target version required when O(require_target_version=true)."
  - "4. Judge: the wave passes when the gate passed and the number of stable agents is at least
    ceil(O(success_threshold) x (accepted + unreachable)), counted from the answers recorded for the wave.
    Unreachable agents count as failures; rejects and defers are answers and never fail a wave. A wave where
    nobody accepted and nobody was unreachable passes."
  - "5. Revert: when the wave failed and O(auto_revert=true), the gated agents whose previous version is known are
    started on it again with O(driver=fleetsim); O(driver=none) cannot start a previous version, so nothing is
    reverted and RV(revert_note) says so."
  - "6. Record: each gated agent is recorded C(updated) (stable), C(failed) (not stable, with the cause) or
    C(reverted), the wave is recorded C(passed) or C(failed) with its RV(summary), and RV(halt_reason)
    tells why a failed wave stops the rollout."
  - "The O(driver=tasks) driver runs the user's Ansible tasks between the phases, so a wave is three or four calls.
    O(phase=ask) runs step 1 only and returns RV(update_agents), which the tasks start on the new version and
    record with M(agentfleet.rollout.rollout_state) and O(agentfleet.rollout.rollout_state#module:op=mark)
    (V(updated) or V(failed))."
  - "O(phase=settle) runs steps 3 and 4. When the wave failed, O(auto_revert=true) and some gated agent has a known
    previous version, nothing is recorded yet: it returns RV(needs_revert=true), the RV(revert_agents) to put back
    and the RV(gate) result. Otherwise it records the wave (step 6, nothing reverted) and returns
    RV(needs_revert=false)."
  - "O(phase=finish) runs step 6 after the tasks driver reverted the agents: it needs O(gate), the RV(gate)
    returned by O(phase=settle), and O(reverted_hosts), the names of the agents put back."
  - O(phase=all) with O(driver=tasks) is an error.
  - Runs on the controller (action plugin), without forking a Python interpreter per task.
options:
  state_path:
    description:
      - The rollout state file (SQLite) where O(deployment_id) was recorded; answers, update results and the wave
        summary are recorded in it.
      - The task fails when O(deployment_id) is not in it.
    type: path
    required: true
  deployment_id:
    description:
      - The deployment, as recorded by M(agentfleet.rollout.rollout_state) with
        O(agentfleet.rollout.rollout_state#module:op=begin). Its target version is the version the wave updates to.
      - Sent to every agent as the idempotency key.
    type: str
    required: true
  wave:
    description:
      - The wave, one of the RV(agentfleet.rollout.wave_split#module:waves) of the plan, with C(index) (1-based),
        C(name) (its cohort) and C(members).
      - Every member needs a C(name) and an C(agent_url) (C(http://) or C(https://)), and carries the fields
        described in O(agentfleet.rollout.notify#module:agents).
    type: dict
    required: true
  wave_count:
    description: How many waves the deployment has, named in the reason text and the wave's RV(line).
    type: int
    required: true
  phase:
    description:
      - The part of the wave to run (see the description).
      - V(all) asks, updates, gates, judges, reverts and records, with O(driver=none) or O(driver=fleetsim).
      - V(ask), V(settle) and V(finish) are the steps of the O(driver=tasks) driver.
    type: str
    default: all
    choices: [all, ask, settle, finish]
  strategy:
    description: The rollout strategy named in the reason text.
    type: str
    default: canary
  release_notes:
    description: What changes in the new version; added to the reason text as C(Changes) text.
    type: str
  force:
    description: Sent to the agents as C(force); marks the update as an emergency in the reason text.
    type: bool
    default: false
  reask_until:
    description:
      - A unix time (seconds since the epoch) until which deferring agents are asked again, each once its
        C(defer_until) has come.
      - When not set, nobody is asked twice in one task.
    type: float
  audit_path:
    description:
      - Append JSON lines to this audit log, C(event=wave_started), one C(event=decision) per answer and
        C(event=wave_passed) or C(event=wave_failed) with the wave summary. The token is never written.
    type: path
  driver:
    description:
      - What starts the new version on an agent that accepted.
      - V(none) - nothing; the agent's own supervisor does. Accepting agents are recorded C(updated).
      - V(fleetsim) - the simulated fleet's control port O(control_url) (tests and demos); also puts agents back
        on their previous version for O(auto_revert).
      - V(tasks) - the user's tasks, run by the playbook between O(phase=ask), O(phase=settle) and O(phase=finish).
    type: str
    default: none
    choices: [none, fleetsim, tasks]
  control_url:
    description:
      - Base URL of the simulator's control port (for example C(http://127.0.0.1:8099)).
      - Required with O(driver=fleetsim).
    type: str
  require_target_version:
    description: In the gate, an agent counts as healthy only when it reports the deployment's target version.
    type: bool
    default: true
  success_threshold:
    description:
      - The fraction (between 0 and 1) of the agents that must be stable, for the gate (of the gated agents) and for
        the judgement (of the agents that accepted or were unreachable), rounded up to whole agents.
    type: float
    default: 0.8
  auto_revert:
    description:
      - Put the agents of a failed wave back on their previous version (C(version_before), recorded when they
        were asked).
      - With O(phase=all) only O(driver=fleetsim) can; with O(phase=settle) the playbook does, then O(phase=finish)
        records the wave.
    type: bool
    default: false
  gate:
    description:
      - With O(phase=finish), the RV(gate) result returned by O(phase=settle); the wave is judged and recorded from it.
      - Required with O(phase=finish).
    type: dict
  reverted_hosts:
    description:
      - With O(phase=finish), the names of the agents the playbook put back on their previous version; they are
        recorded C(reverted).
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - agentfleet.rollout.gate
  - agentfleet.rollout.connection
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.CONTROLLER
attributes:
  check_mode:
    support: partial
    details:
      - In check mode the wave is not run; nothing is asked, started, probed or reverted, and the state file is
        neither read nor written. The task returns RV(skipped=true) and C(changed=true), no prediction.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - Asking for consent and starting agents are not idempotent by nature; every run reports C(changed=true).
      - What makes a rerun safe is the state file O(state_path) with the same O(deployment_id). Recorded final
        answers (V(accept) or V(reject)) are never asked for again, and agents already recorded C(updated),
        C(reverted) or C(failed) are not updated again.
      - A rerun gates the wave again and records its summary anew.
notes:
  - The RV(update_agents) of O(phase=ask) are the agents to start; the RV(revert_agents) of O(phase=settle) carry
    in C(version) the version to put back.
  - A deferring agent is not updated in this wave; its deferral is recorded and counted in the wave's summary.
seealso:
  - module: agentfleet.rollout.notify
  - module: agentfleet.rollout.health_gate
  - module: agentfleet.rollout.fleetsim_start
  - module: agentfleet.rollout.rollout_state
  - module: agentfleet.rollout.wave_split
"""

EXAMPLES = r"""
- name: Run the first wave of the deployment on the simulated fleet, reverting it when it fails
  agentfleet.rollout.rollout_wave:
    phase: all
    state_path: /var/lib/agentfleet/rollout.db
    deployment_id: deploy-20260101-120000
    wave: "{{ plan.waves[0] }}"
    wave_count: "{{ plan.waves | length }}"
    release_notes: Faster memory consolidation
    driver: fleetsim
    control_url: http://127.0.0.1:8099
    min_healthy_time: 30
    auto_revert: true
    token: "{{ rollout_token }}"
  register: wave_result

- name: Stop when the wave failed
  ansible.builtin.fail:
    msg: "{{ [wave_result.halt_reason] + wave_result.table }}"
  when: not wave_result.passed

# The tasks driver: the playbook starts the agents between the phases.
- name: Ask the wave for consent
  agentfleet.rollout.rollout_wave:
    phase: ask
    state_path: /var/lib/agentfleet/rollout.db
    deployment_id: deploy-20260101-120000
    wave: "{{ plan.waves[0] }}"
    wave_count: "{{ plan.waves | length }}"
    driver: tasks
  register: wave_ask

- name: Start the agents that accepted on 2.0.0 (the user's update tasks)
  ansible.builtin.include_tasks: update-agent.yml
  loop: "{{ wave_ask.update_agents }}"
  loop_control:
    loop_var: agent

- name: Record the updates
  agentfleet.rollout.rollout_state:
    op: mark
    state_path: /var/lib/agentfleet/rollout.db
    deployment_id: deploy-20260101-120000
    hosts: "{{ wave_ask.update_agents | map(attribute='name') | list }}"
    result: updated

- name: Gate and judge the wave
  agentfleet.rollout.rollout_wave:
    phase: settle
    state_path: /var/lib/agentfleet/rollout.db
    deployment_id: deploy-20260101-120000
    wave: "{{ plan.waves[0] }}"
    wave_count: "{{ plan.waves | length }}"
    driver: tasks
    auto_revert: true
  register: wave_settle

- name: Put the failed wave back on its previous versions (the user's update tasks)
  ansible.builtin.include_tasks: update-agent.yml
  loop: "{{ wave_settle.revert_agents }}"
  loop_control:
    loop_var: agent
  when: wave_settle.needs_revert

- name: Record the reverted wave
  agentfleet.rollout.rollout_wave:
    phase: finish
    state_path: /var/lib/agentfleet/rollout.db
    deployment_id: deploy-20260101-120000
    wave: "{{ plan.waves[0] }}"
    wave_count: "{{ plan.waves | length }}"
    driver: tasks
    gate: "{{ wave_settle.gate }}"
    reverted_hosts: "{{ wave_settle.revert_agents | map(attribute='name') | list }}"
  register: wave_finish
  when: wave_settle.needs_revert
"""

RETURN = r"""
changed:
  description: Always V(true), in check mode as well (a wave asks agents, starts them and records its state).
  returned: always
  type: bool
  sample: true
phase_done:
  description:
    - The step the task ended with. V(ask) after O(phase=ask); V(settle) when O(phase=settle) left the revert to the
      playbook (RV(needs_revert=true)); V(finish) when the wave was recorded (O(phase=all), O(phase=finish), and
      O(phase=settle) without a revert).
  returned: success
  type: str
  sample: finish
counts:
  description: Number of the wave's agents per answer of this ask (recorded final answers included).
  returned: phase=all or phase=ask
  type: dict
  sample: {"accepted": 2, "deferred": 1, "rejected": 0, "unreachable": 1, "skipped": 0}
update_agents:
  description:
    - The members (as given in O(wave)) that accepted and are not yet recorded C(updated), C(reverted) or
      C(failed), with C(version_before) and C(version) set to the version they ran before.
    - With O(phase=ask), the agents the tasks driver must start on the new version.
  returned: phase=all or phase=ask
  type: list
  elements: dict
  sample: [{"name": "agent-000", "agent_url": "http://127.0.0.1:8100", "cohort": "explorers", "wave": 1,
            "version": "1.9.0", "version_before": "1.9.0"}]
asked:
  description: Names of the agents this task sent a shutdown request to (re-asked deferring agents appear again).
  returned: phase=all or phase=ask
  type: list
  elements: str
  sample: ["agent-000", "agent-001", "agent-002", "agent-003"]
reason:
  description: The reason text sent to the agents.
  returned: phase=all or phase=ask
  type: str
  sample: "Update to version 2.0.0 is available (deployment deploy-20260101-120000, canary rollout). You are in the
    explorers group (wave 1 of 4). You are among the first to receive this version. Accept to shut down gracefully
    so the new version can start; defer if you are busy; reject to decline."
summary:
  description:
    - The wave's summary as recorded. C(wave), C(name), C(wave_count), C(size), C(target_version); the answer counts
      C(accepted), C(deferred), C(rejected), C(unreachable), C(skipped); C(updated) (gated agents), C(healthy)
      (stable agents), C(required) (stable agents needed by the judgement), C(passed), C(gate_reason),
      C(reverted); C(results) (agents of the wave per recorded result); C(elapsed) (seconds since the wave
      started) and C(line).
  returned: when the wave is recorded (phase_done=finish)
  type: dict
  sample: {"wave": 1, "name": "explorers", "wave_count": 4, "size": 1, "target_version": "2.0.0", "accepted": 1,
           "deferred": 0, "rejected": 0, "unreachable": 0, "skipped": 0, "updated": 1, "healthy": 1, "required": 1,
           "passed": true, "gate_reason": "all stable", "reverted": 0,
           "results": {"updated": 1, "deferred": 0, "rejected": 0, "failed": 0, "reverted": 0, "skipped": 0},
           "elapsed": 12.4, "line": "wave 1/4 explorers: 1 agents | accepted 1, deferred 0, rejected 0, unreachable 0
           | healthy 1/1 | 12.4s | passed"}
line:
  description: The wave's summary as one line.
  returned: when the wave is recorded (phase_done=finish)
  type: str
  sample: "wave 1/4 explorers: 1 agents | accepted 1, deferred 0, rejected 0, unreachable 0 | healthy 1/1 | 12.4s | passed"
passed:
  description:
    - Whether the wave passed, that is the gate passed and stable >= ceil(O(success_threshold) x (accepted + unreachable)),
      where accepted and unreachable count the wave's recorded answers; rejects and defers never fail a wave.
    - Always V(false) when O(phase=settle) returns RV(needs_revert=true).
  returned: when the wave is recorded (phase_done=finish) or needs a revert (phase_done=settle)
  type: bool
  sample: true
halt_reason:
  description: Why the failed wave stops the rollout (null when it passed).
  returned: when the wave is recorded (phase_done=finish)
  type: str
  sample: "wave 2 (early_adopters) failed its health gate: 1/3 healthy, 3 required, 1 unreachable (reverted)"
table:
  description:
    - When the wave failed, one line per gated agent that did not become stable, with its version, cognitive state
      and cause, after a header line. Empty when the wave passed.
  returned: when the wave is recorded (phase_done=finish)
  type: list
  elements: str
  sample: ["agent                            version    state        cause",
           "agent-003                        -          -            connection refused"]
needs_revert:
  description:
    - With O(phase=settle), V(true) when the wave failed, O(auto_revert=true) and the playbook must put
      RV(revert_agents) back before O(phase=finish); V(false) when the wave was recorded.
  returned: phase=settle, and phase=all when no revert was attempted
  type: bool
  sample: false
revert_agents:
  description:
    - The gated members whose previous version is known, with C(version) (and C(version_before)) set to it; the
      agents the playbook must put back.
  returned: when needs_revert is true
  type: list
  elements: dict
  sample: [{"name": "agent-003", "agent_url": "http://127.0.0.1:8103", "version": "1.9.0", "version_before": "1.9.0"}]
gate:
  description:
    - The health gate's result over the gated agents, as M(agentfleet.rollout.health_gate) returns it (C(passed),
      C(reason), C(stable), C(unstable), C(agents), C(total), C(stable_count), C(required), C(ratio), C(elapsed),
      C(table)).
    - Pass it unchanged as O(gate) to O(phase=finish).
  returned: phase=settle, and phase=all when no revert was attempted
  type: dict
  sample: {"passed": false, "reason": "deadline reached", "stable": ["agent-000"], "unstable": {"agent-003": "connection refused"},
           "total": 2, "stable_count": 1, "required": 2, "ratio": 0.5, "elapsed": 300.2, "agents": {}, "table": []}
revert_note:
  description:
    - With O(phase=all) after a failed wave with O(auto_revert=true), null when agents were put back, else why
      nothing was reverted (O(driver=none) cannot start a previous version).
  returned: phase=all when a revert was attempted
  type: str
  sample: "driver none cannot start a previous version: nothing reverted"
skipped:
  description: V(true) in check mode, where the wave is not run.
  returned: check mode
  type: bool
  sample: true
msg:
  description: In check mode, that the wave was not run; on failure, the error.
  returned: check mode or failure
  type: str
  sample: "check mode: the wave is not run"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._module import run_module
from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners
from ansible_collections.agentfleet.rollout.plugins.module_utils._wave import run_wave


def main():
    run_module(AnsibleModule, _runners.WAVE_SPEC, run_wave, _runners.ENGINE_ERRORS, required_if=_runners.WAVE_REQUIRED_IF)


if __name__ == "__main__":
    main()
