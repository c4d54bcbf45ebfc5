#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: occurrence_shutdown
short_description: Decide once and shut a multi-occurrence agent down in verified waves
version_added: 0.1.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - O(step=decide) asks B(exactly one) occurrence, the explorer of the plan from
    M(agentfleet.rollout.occurrence_plan), with C(scope=all_occurrences) and the plan message, and records its
    answer as the agent's shared decision (id, who decided, when, why) in the rollout state. When a shared
    shutdown decision of this agent younger than O(max_age) exists (accept or reject; a defer until its
    C(defer_until)), it is reused and nobody is asked, also across reruns and controller crashes.
  - The shared decision always has an id - the agent's C(decision_id), or when its answer carries none one made
    by the collection from the agent id and the deployment id (stable for the deployment) - so that
    C(decision_ref) is never empty.
  - "Observed consent: an answer without a decision (a real CIRIS agent answers 200 C(status: initiated)) is
    V(pending): the agent decides as a task and shows its decision by acting. The explorer's wave (wave 1)
    observes it: stopped within O(stop_timeout) = accept; still working at the end = declined (nobody shuts down;
    not a failure). An explicit accept is observed the same way before anyone else is told."
  - A reject ends the rollout with no occurrence shut down (an answer, not an error); a defer does nothing now
    and reports when to ask again.
  - O(step=wave) runs one wave of an accepted decision, in its capacity batches. Each follower is sent the
    shutdown with C(decision_ref) set to the shared decision; then every occurrence of the batch must have
    B(stopped) (connection refused, or 502/503/504 from its proxy) within the wave's timeout. Answering with
    C(cognitive_state=shutdown) is draining, not stopped; a timeout is no evidence. Occurrences already stopped
    are not asked.
  - "Safety: a failure in the explorer or early-adopter wave stops the rollout before the next batch and wave;
    in the general wave failures are reported and the other batches proceed. A follower that answers with its own
    reject (an agent that does not understand C(decision_ref)) stops the rollout in any wave."
  - Every call rewrites the JSON report (per occurrence - group, wave, what it was asked, its answer, its final
    state) and appends audit lines. Runs on the controller (action plugin).
  - An unfinished shutdown of the same fleet key whose controller died is resumed under its own deployment id.
options:
  step:
    description: V(decide) (ask the explorer or reuse a decision) or V(wave) (send and verify one wave).
    type: str
    required: true
    choices: [decide, wave]
  plan:
    description: The result of M(agentfleet.rollout.occurrence_plan) (required with O(step=decide)).
    type: dict
  deployment_id:
    description:
      - The id of this shutdown (idempotency key sent to the agents, key of the state and the report).
      - An interrupted shutdown of the same agent is resumed under its own id instead.
    type: str
    required: true
  max_age:
    description:
      - Seconds a recorded shared decision of the agent stays valid for reuse, measured from when it was made.
      - Also bounds an interrupted deployment that is resumed; when its own decision is older, that deployment is
        closed (V(aborted), with the reason) and the explorer is asked anew in a new deployment.
    type: float
    default: 3600.0
  stop_timeout:
    description:
      - Seconds the explorer has to stop after it was asked (the explorer wave's timeout). A silent explorer
        (decision V(pending)) still working at the end has declined; one that drains but has not exited, or an
        explicit accept that has not stopped, fails the explorer wave.
    type: float
    default: 600.0
  fresh_decision:
    description:
      - Ask the explorer anew even when a shared decision younger than O(max_age) exists (for instance after the
        reason changed); an interrupted deployment of the agent is closed, as with a stale decision.
    type: bool
    default: false
  wave:
    description: The wave to run (1-based; required with O(step=wave)).
    type: int
  poll_interval:
    description: Seconds between termination probes.
    type: float
    default: 1.0
  fail_on_partial:
    description:
      - Mark the final wave's result with C(should_fail) when occurrences of the general wave did not terminate
        (the others still shut down).
    type: bool
    default: true
extends_documentation_fragment:
  - agentfleet.rollout.state
  - agentfleet.rollout.connection
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.CONTROLLER
  - agentfleet.rollout.attributes.IDEMPOTENT
attributes:
  check_mode:
    details: Reads the state (if it exists) to say whether a decision would be reused or whom it would ask; asks nobody.
  idempotent:
    details:
      - Sending a shutdown is not idempotent by nature; the shared decision (reused within O(max_age)), the
        deployment id and the state make a rerun ask nobody again and send nothing to occurrences already down.
"""

EXAMPLES = r"""
- name: Plan
  agentfleet.rollout.occurrence_plan:
    group: agents
    reason: "host maintenance"
  register: plan

- name: Decide once for all occurrences
  agentfleet.rollout.occurrence_shutdown:
    step: decide
    plan: "{{ plan }}"
    deployment_id: "shutdown-datum-202601011200"
  register: decision

- name: Shut down wave by wave
  agentfleet.rollout.occurrence_shutdown:
    step: wave
    wave: "{{ item.index }}"
    deployment_id: "{{ decision.deployment_id }}"
  loop: "{{ decision.waves if decision.proceed else [] }}"
"""

RETURN = r"""
deployment_id:
  description: The deployment id actually used (an interrupted one being resumed keeps its id).
  returned: success
  type: str
  sample: shutdown-datum-202601011200
decision:
  description:
    - The shared decision (V(accept), V(pending) - observed by the explorer wave, V(reject), V(defer)); null when
      nothing serves. The report's decision is the settled one (V(accept) or V(declined) after the explorer wave).
  returned: step=decide
  type: str
  sample: accept
decided:
  description: The shared decision in full.
  returned: step=decide
  type: dict
  sample: {"decision": "accept", "decision_id": "dec-1a2b", "decision_id_origin": "agent", "decided_by": "datum-default",
           "decided_at": "2026-01-01T12:00:00.000000Z", "reason": "ok", "defer_until": null, "reused": false}
reused:
  description: Whether a recorded decision was reused (nobody asked).
  returned: step=decide
  type: bool
  sample: false
asked:
  description: Occurrences asked to deliberate (at most the explorer).
  returned: step=decide
  type: list
  elements: str
  sample: ["datum-default"]
proceed:
  description: Whether the waves should run (an accepted or pending decision of a running deployment).
  returned: step=decide
  type: bool
  sample: true
waves:
  description:
    - The effective waves (index, name, size, delay, batch sizes, member names) to run, one O(step=wave) call each
      (the playbook's waves play has one Ansible batch per wave, its hosts the members).
  returned: step=decide
  type: list
  elements: dict
  sample: [{"index": 1, "name": "explorer", "size": 1, "delay": 0.0, "batches": [1], "members": ["datum-default"]}]
outcome:
  description: What happened, in one sentence.
  returned: always
  type: str
  sample: accepted by datum-default for all occurrences of datum
wave:
  description: The wave run.
  returned: step=wave
  type: int
  sample: 2
name:
  description: The wave's group.
  returned: step=wave
  type: str
  sample: early_adopter
status:
  description:
    - V(passed), V(partial) (general wave with failures), V(failed) (stopped), V(declined) (the silent explorer went
      on working - nobody shuts down); for decide the deployment status.
  returned: success
  type: str
  sample: passed
skipped:
  description:
    - The wave did not run (deployment stopped or finished, wave already done); nobody was asked and there was no
      delay. Only present (and true) then.
  returned: step=wave, when the wave did not run
  type: bool
  sample: true
outcomes:
  description:
    - Occurrence -> its outcome in this wave, for its own task result (PLAY RECAP row, see
      M(agentfleet.rollout.agent_result) with C(from_result)) - C(result) (V(stopped), V(already_down),
      V(kept_running), V(not_touched), V(failed), V(rejected), V(deferred), V(planned) in check mode),
      C(changed) (it stopped because of this run), C(failed) (it did not terminate or refused - not for the general
      wave with O(fail_on_partial=false)), C(detail).
    - A wave that did not run gives each of its occurrences its recorded result, neither changed nor failed.
  returned: step=wave
  type: dict
  sample: {"datum-occ-1": {"result": "stopped", "changed": true, "failed": false, "detail": "stopped 0.4 s after it was asked"}}
halt:
  description:
    - The rollout stops here (a failed or refused wave, the explorer declined, or the deployment was already over);
      the later waves are skipped.
  returned: step=wave
  type: bool
  sample: false
aborted:
  description: The rollout was stopped (here or earlier).
  returned: step=wave
  type: bool
  sample: false
finished:
  description: The deployment is finished (stopped or final wave done).
  returned: step=wave
  type: bool
  sample: false
failures:
  description: Occurrence -> why it did not terminate (or its reject/defer).
  returned: step=wave
  type: dict
  sample: {"datum-occ-7": "did not terminate within 300 s: still draining (cognitive_state shutdown)"}
batches:
  description:
    - Per batch, who was sent, who was already stopped or already draining, who stopped (C(terminated)) or failed,
      and the serving fraction.
  returned: step=wave
  type: list
  elements: dict
  sample: [{"index": 1, "members": ["datum-occ-1"], "sent": ["datum-occ-1"], "serving_before": 8,
            "serving_fraction": 0.875, "terminated": ["datum-occ-1"], "failed": []}]
line:
  description: One progress line for the wave.
  returned: step=wave
  type: str
  sample: "wave 2 early_adopter: 3 terminated, 0 already down, 0 failed"
should_fail:
  description: Present and true when the finished rollout stopped or left occurrences that did not terminate.
  returned: when finished with failures
  type: bool
  sample: true
failed_occurrences:
  description: Occurrences that failed, rejected or deferred, when the deployment finished.
  returned: when finished
  type: list
  elements: str
  sample: ["datum-occ-7"]
report:
  description: The final report (also written to the report path).
  returned: when finished
  type: dict
  sample: {"status": "completed", "occurrences": []}
report_path:
  description: Where the report was written.
  returned: success and not check mode
  type: str
  sample: /home/u/.agentfleet/reports/shutdown-datum-202601011200.json
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._module import run_module
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.specs import SHUTDOWN_REQUIRED_IF
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.specs import SHUTDOWN_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.steps import STEP_ERRORS
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.steps import shutdown_step


def main():
    run_module(AnsibleModule, SHUTDOWN_SPEC, shutdown_step, STEP_ERRORS, required_if=SHUTDOWN_REQUIRED_IF)


if __name__ == "__main__":
    main()
