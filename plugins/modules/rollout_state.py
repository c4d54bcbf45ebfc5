#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rollout_state
short_description: Record a deployment, its waves and each agent's result in the rollout state file
version_added: 0.1.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - Keeps the state of deployments in a local SQLite file (O(state_path)) that survives the controller. The
    file records the wave plan, every agent's decision and result, wave outcomes and an event log.
  - One active deployment per O(fleet_key). A running deployment holds a lease (owner pid, host name,
    heartbeat); a second rollout for the same fleet key is refused while that owner lives, and the same
    deployment started again after its owner died resumes where it stopped.
  - O(op=begin) creates, stages, promotes, resumes or retries deployment O(deployment_id) for O(fleet_key) and
    returns what to run (RV(mode), RV(waves)). For a known deployment the stored plan wins over O(waves) (membership
    is fixed per deployment). It fails when the deployment id belongs to another fleet key or targets another
    version, when another deployment of the fleet is active (or staged) or was interrupted (unless
    O(takeover=true), which aborts it), or when it is run right now by another process.
  - A C(completed) or C(aborted) deployment returns RV(mode=complete) and changes nothing. A deployment that ended
    C(completed_with_failures) or C(failed) is reopened (RV(mode=retry)); its failed agents are retried and, after
    a halted wave, the rollout goes on from there.
  - With O(play_hosts), the hosts of the play (after C(--limit)), the waves to run keep only those members and
    O(op=begin) returns the play's shape, its hosts in wave order (RV(order)), its C(serial) batch sizes
    (RV(batches), one batch per non-empty wave) and each host's batch (RV(wave_of)). The last wave to run carries
    C(last=true). O(limit) is recorded with the deployment (and in its report).
  - O(op=begin) with O(stage=true) records the plan with status C(staged) and runs nothing
    (the C(agentfleet.rollout.manual) playbook).
  - O(op=begin) with O(promote=true) starts the staged deployment O(deployment_id), or the latest staged one of
    O(fleet_key) when O(deployment_id) is not set, with its stored target version, strategy and plan.
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
  - O(op=finish) closes the deployment with O(status) and O(status_reason), ends the lease (except for
    V(paused)), appends an audit line, and returns the RV(report), the RV(summary_table) and the
    RV(deployment_summary); with O(report_path) it writes the report there.
  - O(op=status) returns the RV(report) and RV(summary_table) of O(deployment_id) and changes nothing.
  - Every O(op) but V(begin) fails for a deployment id that is not in the state file.
  - Runs on the controller (action plugin), without forking a Python interpreter per task.
options:
  state_path:
    description: The state file (SQLite, created with its directory when missing).
    type: path
    required: true
  op:
    description: What to do (see the description).
    type: str
    required: true
    choices: [begin, wave_start, mark, wave_done, finish, status]
  deployment_id:
    description:
      - The deployment.
      - Required for every O(op) but V(begin). With O(op=begin) it is required unless O(promote=true).
    type: str
  fleet_key:
    description:
      - Names the fleet; one deployment per fleet key is active at a time.
      - Required with O(op=begin).
    type: str
  strategy:
    description: With O(op=begin), the strategy recorded for a new deployment.
    type: str
    default: canary
  target_version:
    description: With O(op=begin), the version the deployment updates to (required unless O(promote=true)).
    type: str
  waves:
    description:
      - With O(op=begin), the wave plan, the RV(agentfleet.rollout.wave_split#module:waves) result
        (each wave with C(index), C(name) and C(members)).
      - Ignored for a deployment already in the state file, whose stored plan wins.
    type: list
    elements: dict
  params:
    description: With O(op=begin), the rollout parameters recorded with a new deployment (cohorts, method, ...).
    type: dict
    default: {}
  stage:
    description: With O(op=begin), only record the plan (status C(staged)) for a later O(promote=true).
    type: bool
    default: false
  promote:
    description: With O(op=begin), start a staged deployment (see the description).
    type: bool
    default: false
  takeover:
    description:
      - With O(op=begin), abort an interrupted (not running) deployment of the same fleet key and start this one.
      - A deployment whose owner is still alive is never taken over.
    type: bool
    default: false
  wave:
    description: The wave index (1-based). Required with O(op=wave_start) and O(op=wave_done).
    type: int
  wave_name:
    description: The wave's cohort name. Required with O(op=wave_done); written to the audit log by O(op=wave_start).
    type: str
  wave_count:
    description: With O(op=wave_done), how many waves the deployment has (default, the number of waves in its plan).
    type: int
  play_hosts:
    description:
      - With O(op=begin), the play's hosts after C(--limit) (C(ansible_play_hosts)). The returned RV(waves),
        RV(order), RV(batches) and RV(wave_of) keep only these hosts; hosts not in the deployment's plan are
        listed in RV(not_in_plan).
      - When not set, every member of the plan.
    type: list
    elements: str
  limit:
    description:
      - With O(op=begin), the C(--limit) pattern of the run (C(ansible_limit)), recorded with a new, resumed, retried
        or promoted deployment and shown as C(limit) in its report.
    type: str
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
  status:
    description:
      - With O(op=finish) (required), the deployment's status.
      - V(completed_with_failures) - every wave ran but some agent failed; a rerun retries those agents.
      - V(failed) - a wave (or an error) stopped the rollout; a rerun retries it.
      - V(paused) - not finished (for example agents left out by C(--limit)); a rerun goes on.
    type: str
    choices: [completed, completed_with_failures, failed, aborted, paused]
  status_reason:
    description: With O(op=finish), a message recorded with the status (for example why the rollout halted).
    type: str
  report_path:
    description:
      - With O(op=finish), write the deployment's JSON report to this file.
      - The report has C(deployment_id), C(fleet_key), C(strategy), C(target_version), C(status), C(message),
        C(created_at), C(started_at), C(finished_at), C(totals), C(waves) and C(agents), see RV(report).
    type: path
  audit_path:
    description:
      - Append one JSON line per event (deployment started, staged, promoted, resumed or retried; wave started; wave
        passed or failed; deployment finished with its status) to this audit log.
    type: path
extends_documentation_fragment:
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.CONTROLLER
attributes:
  check_mode:
    support: partial
    details:
      - O(op=begin) reads the state file when it can and returns the plan a real run would use (RV(mode=check),
        with the stored plan of a known deployment, restricted to O(play_hosts)), writing no deployment.
      - O(op=status) reads the state file when it exists; every other O(op) does nothing in check mode and
        returns only C(msg). With O(op=begin), C(changed) tells whether a real run would record or resume the deployment.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - O(op=status) never changes anything, and O(op=begin) for a finished deployment changes nothing.
      - O(op=begin) for a running deployment resumes it, and for one that ended with failures retries it (reported as
        a change). O(op=wave_start), O(op=wave_done) and O(op=finish) always report a change (they record times);
        recording the same values again leaves the same state.
seealso:
  - module: agentfleet.rollout.wave_split
  - module: agentfleet.rollout.notify
  - module: agentfleet.rollout.health_gate
"""

EXAMPLES = r"""
# In the plan play over the agents (run_once): record the deployment and get the play's shape
- name: Begin (or resume, or retry) a deployment
  agentfleet.rollout.rollout_state:
    op: begin
    state_path: /var/lib/agentfleet/rollout.db
    deployment_id: deploy-20260101-120000
    fleet_key: production
    target_version: 2.0.0
    waves: "{{ split.waves }}"
    play_hosts: "{{ ansible_play_hosts }}"
    limit: "{{ ansible_limit | default(omit) }}"
  register: plan
  run_once: true

# The waves play then runs over plan.order with serial: plan.batches (see agentfleet.rollout.rollout_wave)

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

- name: Close the deployment and write the report
  agentfleet.rollout.rollout_state:
    op: finish
    state_path: /var/lib/agentfleet/rollout.db
    deployment_id: deploy-20260101-120000
    status: completed_with_failures
    report_path: /var/log/agentfleet/deploy-20260101-120000.json
  register: closed

- name: Promote the deployment staged for the fleet
  agentfleet.rollout.rollout_state:
    op: begin
    state_path: /var/lib/agentfleet/rollout.db
    fleet_key: production
    promote: true
"""

RETURN = r"""
mode:
  description:
    - With O(op=begin), what happened, V(new), V(staged), V(promoted), V(resumed), V(retry) (a deployment that
      ended C(completed_with_failures) or C(failed), reopened to retry its failed agents), V(complete) (already
      completed or aborted, nothing to do) or V(check) (check mode).
  returned: op=begin
  type: str
  sample: new
deployment_id:
  description: With O(op=begin), the deployment (the promoted one with O(promote=true)).
  returned: op=begin
  type: str
  sample: deploy-20260101-120000
target_version:
  description: With O(op=begin), the version the deployment updates to.
  returned: op=begin
  type: str
  sample: 2.0.0
strategy:
  description: With O(op=begin), the deployment's strategy.
  returned: op=begin, not in check mode
  type: str
  sample: canary
status:
  description:
    - With O(op=begin), the deployment's status (V(staged), V(running), V(paused), V(completed),
      V(completed_with_failures), V(failed), V(aborted)).
    - In check mode, the stored status, or V(new) for a deployment not in the state file.
  returned: op=begin
  type: str
  sample: running
waves:
  description:
    - With O(op=begin), the waves to run (of the stored plan for a known deployment), each with C(index), C(name),
      C(members), C(size) (members in this run), C(planned_size) (members in the plan) and C(last) (the last wave to
      run).
    - With O(play_hosts), only the members among them; waves left without members are left out.
    - Empty for V(complete) and V(staged).
  returned: op=begin
  type: list
  elements: dict
  sample: [{"index": 1, "name": "explorers", "size": 1, "planned_size": 1, "last": false,
            "members": [{"name": "agent-000", "cohort": "explorers", "wave": 1}]}]
order:
  description: With O(op=begin), the hosts of RV(waves) in wave order (the waves play's hosts).
  returned: op=begin
  type: list
  elements: str
  sample: ["agent-000", "agent-001", "agent-002", "agent-003"]
batches:
  description: With O(op=begin), the size of each wave of RV(waves) (the waves play's C(serial)).
  returned: op=begin
  type: list
  elements: int
  sample: [1, 3]
wave_of:
  description: With O(op=begin), per host of RV(order), the position (0-based) of its wave in RV(waves).
  returned: op=begin
  type: dict
  sample: {"agent-000": 0, "agent-001": 1, "agent-002": 1, "agent-003": 1}
not_in_plan:
  description:
    - With O(op=begin), the hosts of O(play_hosts) that are not in the deployment's plan (it was planned without
      them); they are not part of this deployment.
  returned: op=begin
  type: list
  elements: str
  sample: []
plan:
  description:
    - With O(op=begin), every wave of the deployment's plan (C(index), C(name), C(size)), whatever O(play_hosts)
      leaves out; its length is the deployment's wave count.
  returned: op=begin, not in check mode
  type: list
  elements: dict
  sample: [{"index": 1, "name": "explorers", "size": 1}, {"index": 2, "name": "early_adopters", "size": 3}]
resumed_after:
  description:
    - With O(op=begin) when a deployment is resumed, why its last run ended early, for the progress output; V(null)
      otherwise. See docs/reliability.md.
  returned: op=begin
  type: str
  sample: "interrupted by SIGTERM during the health gate in wave 2 (early_adopters); rerun the playbook to resume
    deployment deploy-agents-2.0.0"
already_complete:
  description: With O(op=begin), whether the deployment had already completed or been aborted (nothing to run).
  returned: op=begin
  type: bool
  sample: false
started_epoch:
  description: With O(op=begin), when the deployment started (unix time; its creation time for a staged one; now in check mode).
  returned: op=begin
  type: float
  sample: 1767268800.0
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
report:
  description:
    - With O(op=finish) and O(op=status), the deployment's report. C(deployment_id), C(fleet_key), C(strategy),
      C(target_version), C(status), C(message), C(created_at), C(started_at), C(finished_at) (ISO-8601 UTC),
      C(limit) (the recorded O(limit)); C(totals) (agents per result, plus C(pending)); C(waves) (C(wave), C(name),
      C(status), times and C(summary)); C(agents), one per agent with its cohort, wave, decision, decision reason and
      id, C(defer_until), C(asked_count), C(result), C(detail), C(version_before), C(version_after) and times.
    - With O(op=status) in check mode, null when the state file or the deployment does not exist.
  returned: op=finish or op=status
  type: dict
  sample: {"deployment_id": "deploy-20260101-120000", "fleet_key": "production", "strategy": "canary",
           "target_version": "2.0.0", "status": "completed", "message": null,
           "created_at": "2026-01-01T12:00:00Z", "started_at": "2026-01-01T12:00:00Z",
           "finished_at": "2026-01-01T12:05:00Z", "limit": null,
           "totals": {"updated": 10, "deferred": 0, "declined": 0, "rejected": 0, "failed": 0, "reverted": 0,
                      "skipped": 0, "pending": 0},
           "waves": [], "agents": []}
summary_table:
  description: With O(op=finish) and O(op=status), the report as a table, one line per wave and cohort and a total line.
  returned: op=finish or op=status
  type: list
  elements: str
  sample: ["deployment deploy-20260101-120000 (canary -> 2.0.0): completed",
           "total: 10 agents: 10 updated, 0 declined, 0 deferred, 0 rejected, 0 failed, 0 reverted, 0 skipped"]
report_path:
  description: With O(op=finish), where the report was written (null without O(report_path)).
  returned: op=finish
  type: str
  sample: /var/log/agentfleet/deploy-20260101-120000.json
deployment_summary:
  description:
    - With O(op=finish), the closed deployment as M(agentfleet.rollout.rollout_wave) returns it in
      RV(agentfleet.rollout.rollout_wave#module:rollout_deployment_summary). C(deployment_id), C(status),
      C(target_version), C(strategy), C(totals), C(report_path), C(message) (O(status_reason)) and C(summary_table).
  returned: op=finish, not in check mode
  type: dict
  sample: {"deployment_id": "deploy-20260101-120000", "status": "failed", "target_version": "2.0.0",
           "strategy": "canary", "totals": {"updated": 1, "declined": 0, "deferred": 0, "rejected": 0, "failed": 0,
           "reverted": 0, "skipped": 0, "pending": 9}, "report_path": "/var/log/agentfleet/deploy-20260101-120000.json",
           "message": "wave 2 (early_adopters): authentication failed", "summary_table": []}
msg:
  description: In check mode, for every O(op) but V(begin) and V(status), that the state was not written.
  returned: check mode
  type: str
  sample: "check mode: state not written"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._module import run_module
from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners


def main():
    run_module(AnsibleModule, _runners.STATE_SPEC, _runners.run_state, _runners.ENGINE_ERRORS,
               required_if=_runners.STATE_REQUIRED_IF)


if __name__ == "__main__":
    main()
