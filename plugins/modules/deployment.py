#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: deployment
short_description: Start, stage, promote, resume or close a deployment in the rollout state
version_added: 0.2.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - Brings one deployment of the rollout state file (O(state_path), SQLite, created with its directory when missing)
    to the state asked for. The file records the wave plan, every agent's decision and result, wave outcomes and an
    event log; M(agentfleet.rollout.deployment_info) reads it.
  - One active deployment per O(fleet_key). A running deployment holds a lease (owner pid, host name, heartbeat); a
    second rollout for the same fleet key is refused while that owner lives, and the same deployment started again
    after its owner died resumes where it stopped.
  - O(state=running) creates deployment O(deployment_id) for O(fleet_key), or resumes, retries or promotes it, and
    returns what to run (RV(mode), RV(waves)). For a known deployment the stored plan wins over O(waves) (membership
    is fixed per deployment). It fails when the deployment id belongs to another fleet key or targets another
    version, when another deployment of the fleet is active (or staged) or was interrupted (unless
    O(takeover=true), which aborts it), or when it is run right now by another process.
  - A C(completed) or C(aborted) deployment returns RV(mode=complete) and changes nothing. A deployment that ended
    C(completed_with_failures) or C(failed) is reopened (RV(mode=retry)); its failed agents are retried and, after
    a halted wave, the rollout goes on from there.
  - With O(play_hosts), the hosts of the play (after C(--limit)), the waves to run keep only those members and the
    module returns the play's shape, its hosts in wave order (RV(order)), its C(serial) batch sizes (RV(batches),
    one batch per non-empty wave) and each host's batch (RV(wave_of)). The last wave to run carries C(last=true).
    O(limit) is recorded with the deployment (and in its report).
  - O(state=staged) records the plan with status C(staged) and runs nothing (the C(agentfleet.rollout.manual)
    playbook).
  - O(state=running) with O(promote=true) starts the staged deployment O(deployment_id), or the latest staged one
    of O(fleet_key) when O(deployment_id) is not set, with its stored target version, strategy and plan.
  - O(state=closed) ends the deployment with the status its agents' results give (C(completed),
    C(completed_with_failures) when some agent failed, C(paused) when some agent of the plan was never asked);
    O(state=completed), V(completed_with_failures), V(failed), V(aborted) or V(paused) ends it with that status and
    O(status_reason). Closing ends the lease (except V(paused)), appends an audit line, and returns the RV(report),
    the RV(summary_table) and the RV(deployment_summary); with O(report_path) it writes the report there.
  - Every deployment is a record of its O(deployment_key) (default O(fleet_key)) with a C(version) that only grows
    (1, 2, 3, ...), its source and target versions, O(policy), who (O(actor)) and why (O(reason)); see docs/lifecycle.md.
  - O(state=present) stages the deployment unless it is recorded already (then nothing changes).
  - O(state=promoted) is O(state=running) with O(promote=true); it also continues a canary that stopped after its
    first wave (C(auto_promote=false)).
  - O(state=resumed) continues the paused (or interrupted) deployment of O(fleet_key); a pause not yet acted on is
    lifted (RV(mode=lifted)), else the plan is returned to run again; it continues where it stopped.
  - O(state=rolled_back) records a new deployment of the key back to version O(rollback_to)'s target (default, the
    last completed version before the newest) and returns its plan (O(waves)).
  - O(state=paused) and O(state=failed) without O(status_reason) are the operator's pause and fail of the deployment
    O(deployment_id), or the newest version of O(deployment_key); a rollout running it in another process stops at
    its next health-gate wait or before its next wave. The agents it updated stay on the target; the rollback
    playbook (O(state=rolled_back)) puts them back through the update driver. Returns the record (RV(status),
    RV(version), ...).
  - Runs on the controller (action plugin), without forking a Python interpreter per task.
options:
  state_path:
    description:
      - The rollout state, a SQLite file (a path or C(sqlite:///path), created with its directory when missing) or
        C(s3://bucket/prefix) (the database and the fleet locks in S3, AWS settings from the environment;
        docs/reliability.md).
    type: path
    required: true
  state:
    description:
      - V(running) - the deployment runs (new, resumed, retried or promoted); V(staged) - planned, not run.
      - V(closed) - ended, with the status its agents' results give; V(completed), V(completed_with_failures),
        V(failed), V(aborted), V(paused) - ended with that status.
      - V(present), V(promoted), V(resumed), V(rolled_back) - see the description.
    type: str
    default: running
    choices: [running, staged, closed, completed, completed_with_failures, failed, aborted, paused, cancelled, present,
              resumed, promoted, rolled_back]
  deployment_id:
    description:
      - The deployment.
      - Required, except with O(state=running) and O(promote=true) (then the latest staged deployment of O(fleet_key)).
    type: str
  fleet_key:
    description:
      - Names the fleet; one deployment per fleet key is active at a time.
      - Required with O(state=running) and O(state=staged).
    type: str
  strategy:
    description: The strategy recorded for a new deployment.
    type: str
    default: canary
  target_version:
    description: The version the deployment updates to (required to start or stage one, unless O(promote=true)).
    type: str
  waves:
    description:
      - The wave plan of a new deployment, the RV(agentfleet.rollout.wave_split#module:waves) result (each wave with
        C(index), C(name) and C(members)).
      - Ignored for a deployment already in the state file, whose stored plan wins.
    type: list
    elements: dict
  params:
    description: The rollout parameters recorded with a new deployment (cohorts, method, ...).
    type: dict
    default: {}
  promote:
    description: With O(state=running), start a staged deployment (see the description).
    type: bool
    default: false
  takeover:
    description:
      - With O(state=running) or O(state=staged), abort an interrupted (not running) deployment of the same fleet key
        and start this one.
      - A deployment whose owner is still alive is never taken over.
    type: bool
    default: false
  play_hosts:
    description:
      - The play's hosts after C(--limit) (C(ansible_play_hosts)). The returned RV(waves), RV(order), RV(batches)
        and RV(wave_of) keep only these hosts; hosts not in the deployment's plan are listed in RV(not_in_plan).
      - When not set, every member of the plan.
    type: list
    elements: str
  limit:
    description:
      - The C(--limit) pattern of the run (C(ansible_limit)), recorded with a new, resumed, retried or promoted
        deployment and shown as C(limit) in its report.
    type: str
  status_reason:
    description: When closing, a message recorded with the status (for example why the rollout halted).
    type: str
  report_path:
    description:
      - When closing, write the deployment's JSON report (docs/reports.md) to this file.
    type: path
  audit_path:
    description:
      - Append one JSON line per event (deployment started, staged, promoted, resumed or retried; deployment closed
        with its status; lock broken) to this audit log.
    type: path
  deployment_key:
    description:
      - The key whose versions the deployment belongs to (default O(fleet_key)); with O(state=paused) or
        O(state=failed), the key whose newest version is meant.
    type: str
  reason:
    description: Why (recorded with a new deployment, and in the audit line with who and when).
    type: str
  actor:
    description: Who acts (default the AWX job of C(JOB_ID), C(AWX_JOB_ID) or C(TOWER_JOB_ID), else the local user).
    type: str
  policy:
    description: The update policy recorded with a new deployment (strategy, cohorts, gate settings, ...).
    type: dict
    default: {}
  rollback_to:
    description: With O(state=rolled_back), the version of the key to go back to (it must have completed).
    type: int
  auto_revert:
    description: With O(state=failed), start the agents the deployment updated on their previous version.
    type: bool
    default: false
  driver:
    description:
      - With O(auto_revert), the update driver that reverts. None of them can from the controller alone (the
        V(tasks) and V(docker) drivers revert a failed wave inside the wave); the rollback playbook puts agents back.
    type: str
    default: none
    choices: [none, tasks, docker]
  revert_wait:
    description: With O(auto_revert), how long to wait (seconds) for the rollout running the deployment to stop.
    type: float
    default: 60.0
  lock_ttl:
    description:
      - With an C(s3://) O(state_path) and O(state=running), the lease of the fleet key's lock in seconds (at least
        2) -- how long after a crashed controller's last renewal another run may take the deployment over.
      - Default the URL's C(lock_ttl), else E(AGENTFLEET_LOCK_TTL), else 600. Renewals keep the TTL the lock was
        taken with. Ignored for a SQLite state (its lease follows the owner's process).
    type: float
  break_lock_reason:
    description:
      - Before starting, break the lock of O(fleet_key) whoever holds it, with this reason (recorded as a
        C(lock_broken) event of the deployment that held it, with who broke it, and in O(audit_path)).
      - For a holder known to be gone for good (a deleted AWX job or CI runner) when waiting for its lease to expire
        is not acceptable. A holder still alive stops at its next step. See docs/reliability.md.
    type: str
extends_documentation_fragment:
  - agentfleet.rollout.connection
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.CONTROLLER
attributes:
  check_mode:
    support: full
    details:
      - O(state=running) and O(state=staged) read the state file when it exists and return the plan a real run would
        use (RV(mode=check), with the stored plan of a known deployment, restricted to O(play_hosts)); C(changed) tells
        whether a real run would record or resume the deployment. Nothing is written and no file is created.
      - A closing state writes nothing and reports C(changed).
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - O(state=running) for a finished deployment changes nothing; for a running one it resumes it, and for one that
        ended with failures it retries it (reported as a change).
      - Closing always reports a change (it records the time); closing again with the same status leaves the same state.
seealso:
  - module: agentfleet.rollout.deployment_info
  - module: agentfleet.rollout.wave_split
  - module: agentfleet.rollout.rollout_state
"""

EXAMPLES = r"""
# In the plan play over the agents (run_once): record the deployment and get the play's shape
- name: Start (or resume, or retry) a deployment
  agentfleet.rollout.deployment:
    state: running
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

- name: Stage a deployment for a later promotion (nobody is asked)
  agentfleet.rollout.deployment:
    state: staged
    state_path: /var/lib/agentfleet/rollout.db
    deployment_id: deploy-20260101-120000
    fleet_key: production
    target_version: 2.0.0
    waves: "{{ split.waves }}"

- name: Promote the deployment staged for the fleet
  agentfleet.rollout.deployment:
    state: running
    state_path: /var/lib/agentfleet/rollout.db
    fleet_key: production
    promote: true

- name: Close the deployment (its status from the agents' results) and write the report
  agentfleet.rollout.deployment:
    state: closed
    state_path: /var/lib/agentfleet/rollout.db
    deployment_id: deploy-20260101-120000
    report_path: /var/log/agentfleet/deploy-20260101-120000.json
  register: closed

- name: Mark it failed, with the reason
  agentfleet.rollout.deployment:
    state: failed
    status_reason: the new version loses conversations
    state_path: /var/lib/agentfleet/rollout.db
    deployment_id: deploy-20260101-120000
"""

RETURN = r"""
lock_broken:
  description: What O(break_lock_reason) broke (C(broken) false when nothing held the fleet key).
  returned: when O(break_lock_reason) was given
  type: dict
  sample: {"broken": true, "key": "agents", "reason": "AWX job 4711 deleted", "by": "awx@ee-4711",
           "deployment_id": "deploy-agents-2.0.0", "holder": {"run": "4702", "owner_host": "ee-4702"}}
mode:
  description:
    - What happened, V(new), V(staged), V(promoted), V(resumed), V(retry) (a deployment that
      ended C(completed_with_failures) or C(failed), reopened to retry its failed agents), V(complete) (already
      completed or aborted, nothing to do) or V(check) (check mode).
  returned: state running or staged
  type: str
  sample: new
deployment_id:
  description: The deployment (the promoted one with O(promote=true)).
  returned: always
  type: str
  sample: deploy-20260101-120000
target_version:
  description: The version the deployment updates to.
  returned: state running or staged
  type: str
  sample: 2.0.0
strategy:
  description: The deployment's strategy.
  returned: state running or staged, not in check mode
  type: str
  sample: canary
status:
  description:
    - The deployment's status (V(staged), V(running), V(paused), V(completed),
      V(completed_with_failures), V(failed), V(aborted)).
    - In check mode, the stored status, or V(new) for a deployment not in the state file.
    - For a closing state, the status the deployment was closed with (for V(closed), the one its agents' results give).
  returned: always, except a closing state in check mode
  type: str
  sample: running
waves:
  description:
    - The waves to run (of the stored plan for a known deployment), each with C(index), C(name),
      C(members), C(size) (members in this run), C(planned_size) (members in the plan) and C(last) (the last wave to
      run).
    - With O(play_hosts), only the members among them; waves left without members are left out.
    - Empty for V(complete) and V(staged).
  returned: state running or staged
  type: list
  elements: dict
  sample: [{"index": 1, "name": "explorers", "size": 1, "planned_size": 1, "last": false,
            "members": [{"name": "agent-000", "cohort": "explorers", "wave": 1}]}]
order:
  description: The hosts of RV(waves) in wave order (the waves play's hosts).
  returned: state running or staged
  type: list
  elements: str
  sample: ["agent-000", "agent-001", "agent-002", "agent-003"]
batches:
  description: The size of each wave of RV(waves) (the waves play's C(serial)).
  returned: state running or staged
  type: list
  elements: int
  sample: [1, 3]
wave_of:
  description: Per host of RV(order), the position (0-based) of its wave in RV(waves).
  returned: state running or staged
  type: dict
  sample: {"agent-000": 0, "agent-001": 1, "agent-002": 1, "agent-003": 1}
not_in_plan:
  description:
    - The hosts of O(play_hosts) that are not in the deployment's plan (it was planned without
      them); they are not part of this deployment.
  returned: state running or staged
  type: list
  elements: str
  sample: []
plan:
  description:
    - Every wave of the deployment's plan (C(index), C(name), C(size)), whatever O(play_hosts)
      leaves out; its length is the deployment's wave count.
  returned: state running or staged, not in check mode
  type: list
  elements: dict
  sample: [{"index": 1, "name": "explorers", "size": 1}, {"index": 2, "name": "early_adopters", "size": 3}]
resumed_after:
  description:
    - When a deployment is resumed, why its last run ended early, for the progress output; V(null) otherwise. See
      docs/reliability.md.
  returned: state running or staged
  type: str
  sample: "interrupted by SIGTERM during the health gate in wave 2 (early_adopters); rerun the playbook to resume
    deployment deploy-agents-2.0.0"
already_complete:
  description: Whether the deployment had already completed or been aborted (nothing to run).
  returned: state running or staged
  type: bool
  sample: false
started_epoch:
  description: When the deployment started (unix time; its creation time for a staged one; now in check mode).
  returned: state running or staged
  type: float
  sample: 1767268800.0
report:
  description:
    - The deployment's report. C(deployment_id), C(fleet_key), C(strategy),
      C(target_version), C(status), C(message), C(created_at), C(started_at), C(finished_at) (ISO-8601 UTC),
      C(limit) (the recorded O(limit)); C(totals) (agents per result, plus C(pending)); C(waves) (C(wave), C(name),
      C(status), times and C(summary)); C(agents), one per agent with its cohort, wave, decision, decision reason and
      id, C(defer_until), C(asked_count), C(result), C(detail), C(version_before), C(version_after) and times.
  returned: a closing state, not in check mode
  type: dict
  sample: {"deployment_id": "deploy-20260101-120000", "fleet_key": "production", "strategy": "canary",
           "target_version": "2.0.0", "status": "completed", "message": null,
           "created_at": "2026-01-01T12:00:00Z", "started_at": "2026-01-01T12:00:00Z",
           "finished_at": "2026-01-01T12:05:00Z", "limit": null,
           "totals": {"updated": 10, "deferred": 0, "declined": 0, "rejected": 0, "failed": 0, "reverted": 0,
                      "skipped": 0, "pending": 0},
           "waves": [], "agents": []}
summary_table:
  description: The report as a table, one line per wave and cohort and a total line.
  returned: a closing state, not in check mode
  type: list
  elements: str
  sample: ["deployment deploy-20260101-120000 (canary -> 2.0.0): completed",
           "total: 10 agents: 10 updated, 0 declined, 0 deferred, 0 rejected, 0 failed, 0 reverted, 0 skipped"]
report_path:
  description: Where the report was written (null without O(report_path)).
  returned: a closing state, not in check mode
  type: str
  sample: /var/log/agentfleet/deploy-20260101-120000.json
deployment_summary:
  description:
    - The closed deployment as M(agentfleet.rollout.rollout_wave) returns it in
      RV(agentfleet.rollout.rollout_wave#module:rollout_deployment_summary). C(deployment_id), C(status),
      C(target_version), C(strategy), C(totals), C(report_path), C(message) (O(status_reason)) and C(summary_table).
  returned: a closing state, not in check mode
  type: dict
  sample: {"deployment_id": "deploy-20260101-120000", "status": "failed", "target_version": "2.0.0",
           "strategy": "canary", "totals": {"updated": 1, "declined": 0, "deferred": 0, "rejected": 0, "failed": 0,
           "reverted": 0, "skipped": 0, "pending": 9}, "report_path": "/var/log/agentfleet/deploy-20260101-120000.json",
           "message": "wave 2 (early_adopters): authentication failed", "summary_table": []}
deployment_key:
  description: The deployment's key.
  returned: state running, staged, present, promoted, resumed, rolled_back, and the operator's paused and failed
  type: str
  sample: production
version:
  description: The deployment's version of its key.
  returned: state running, staged, present, promoted, resumed, rolled_back, and the operator's paused and failed
  type: int
  sample: 3
rollback_to:
  description: With O(state=rolled_back), the version rolled back to.
  returned: state rolled_back
  type: int
  sample: 1
rollback_from:
  description: With O(state=rolled_back), the key's newest version before the rollback.
  returned: state rolled_back
  type: int
  sample: 3
reverted:
  description: With O(state=failed) and O(auto_revert), the agents put back on their previous version.
  returned: the operator's failed
  type: list
  elements: str
  sample: ["agent-000"]
revert_failed:
  description: With O(state=failed) and O(auto_revert), the agents that could not be put back, with the error.
  returned: the operator's failed
  type: dict
  sample: {}
phase:
  description: Where the deployment is, in words (see M(agentfleet.rollout.deployment_info)'s RV(agentfleet.rollout.deployment_info#module:status)).
  returned: the operator's paused and failed
  type: str
  sample: paused in wave 2/4 (early_adopters)
msg:
  description: For a closing state in check mode, that nothing was written.
  returned: a closing state in check mode
  type: str
  sample: "check mode: deployment deploy-20260101-120000 not closed"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._module import run_module
from ansible_collections.agentfleet.rollout.plugins.module_utils import _argspecs
from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners


def main():
    run_module(AnsibleModule, _argspecs.DEPLOYMENT_SPEC, _runners.run_deployment, _runners.ENGINE_ERRORS,
               required_if=_argspecs.DEPLOYMENT_REQUIRED_IF)


if __name__ == "__main__":
    main()
