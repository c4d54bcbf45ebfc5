#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: occurrence_wakeup
short_description: Wake a multi-occurrence agent up in gated waves (explorer first)
version_added: 0.1.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - The controller-side steps of a wakeup wave; starting the occurrences in between is the update driver's job
    (C(tasks) or C(none); the playbook C(agentfleet.rollout.wakeup) runs one Ansible batch per wave
    over the occurrences, the C(tasks) driver's tasks on each occurrence's host).
  - O(step=prepare) opens (wave 1) or continues the deployment, waits the wave's delay and returns in RV(to_start)
    the occurrences of the wave that have stopped. An occurrence still draining (C(cognitive_state=shutdown) while
    it answers) or not answering is waited for, up to the wave's timeout, and is never started before it has
    stopped (connection refused, or 502/503/504 from its proxy); one that runs but is not in an expected state is
    not restarted, only gated.
  - O(step=gate) waits until every started occurrence of the wave reaches an expected state (C(work)) within the
    wave's timeout. An unhealthy explorer aborts and leaves the others down; a failed early-adopter wave stops
    before the general wave; general failures are reported.
  - Every gate rewrites the JSON report. Runs on the controller (action plugin).
options:
  step:
    description:
      - V(prepare) before starting a wave, V(gate) after.
      - V(abort) when the update driver failed to start the wave - records O(hosts) as C(failed) with O(reason),
        closes the deployment C(failed) (the later waves are left down), writes the report and returns C(should_fail).
    type: str
    required: true
    choices: [prepare, gate, abort]
  plan:
    description: The result of M(agentfleet.rollout.occurrence_plan) with C(purpose=wakeup) (needed for wave 1).
    type: dict
  deployment_id:
    description: The id of this wakeup (key of the state and the report).
    type: str
    required: true
  wave:
    description: The wave (1-based).
    type: int
    required: true
  expected_states:
    description: Cognitive states that count as awake.
    type: list
    elements: str
    default: [work]
  target_version:
    description: Start (and expect) this version; default the version each occurrence last ran.
    type: str
  hosts:
    description: With O(step=abort), the occurrences the update driver was starting.
    type: list
    elements: str
    default: []
  reason:
    description: With O(step=abort), why the start failed (recorded per occurrence and in the outcome).
    type: str
  min_healthy_time:
    description: Seconds an occurrence must stay healthy to pass the gate.
    type: float
    default: 0.0
  poll_interval:
    description: Seconds between health probes (the gate, and the wait for draining occurrences to stop).
    type: float
    default: 1.0
  fail_on_partial:
    description: Mark the final gate with C(should_fail) when general occurrences did not wake up.
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
    details: Starts nothing and waits for nothing; returns what it would start.
  idempotent:
    details: Occurrences already awake are not started again.
"""

EXAMPLES = r"""
- name: Which occurrences of wave 1 need starting
  agentfleet.rollout.occurrence_wakeup:
    step: prepare
    wave: 1
    plan: "{{ plan }}"
    deployment_id: "wakeup-datum-202601011300"
  register: prep

- name: Start them (your own task; here a systemd unit per occurrence)
  ansible.builtin.systemd_service:
    name: "ciris-agent@{{ item.name }}"
    state: started
  loop: "{{ prep.to_start }}"
  become: true

- name: Gate on work
  agentfleet.rollout.occurrence_wakeup:
    step: gate
    wave: 1
    deployment_id: "{{ prep.deployment_id }}"
"""

RETURN = r"""
deployment_id:
  description: The deployment id used.
  returned: success and not check mode
  type: str
  sample: wakeup-datum-202601011300
wave:
  description: The wave.
  returned: always
  type: int
  sample: 1
name:
  description: The wave's group.
  returned: success
  type: str
  sample: explorer
to_start:
  description: Occurrences to start (member dicts with name, agent_url, version ...).
  returned: step=prepare
  type: list
  elements: dict
  sample: [{"name": "datum-default", "agent_url": "http://127.0.0.1:20001", "version": "1.0.0"}]
already_up:
  description: Occurrences of the wave already awake (not started again).
  returned: step=prepare
  type: list
  elements: str
  sample: []
running:
  description: Occurrences of the wave that run but are not in an expected state; not restarted, gated.
  returned: step=prepare and the wave ran
  type: list
  elements: str
  sample: []
not_stopped:
  description:
    - Occurrences of the wave still draining or not answering at the end of the wait; not started, recorded
      C(unhealthy) (the gate counts them as failures).
  returned: step=prepare and the wave ran
  type: list
  elements: str
  sample: []
skipped:
  description:
    - The wave did not run (deployment stopped or finished, wave already done); nobody was started. Only present
      (and true) then, so that C(changed_when) applies to a wave that ran.
  returned: when the wave did not run
  type: bool
  sample: true
outcomes:
  description:
    - Occurrence -> its outcome in this wave, for its own task result (PLAY RECAP row, see
      M(agentfleet.rollout.agent_result) with C(from_result)) - C(result) (V(awake), V(already_awake),
      V(unhealthy), V(failed), V(left_down), ...), C(changed) (this wave started it and it is awake), C(failed)
      (unhealthy, or its start failed - not for the general wave with O(fail_on_partial=false)), C(detail),
      C(version_before), C(version_after).
    - A wave that did not run gives each of its occurrences its recorded result, neither changed nor failed.
  returned: step=gate, step=abort, or step=prepare when the wave did not run
  type: dict
  sample: {"datum-default": {"result": "awake", "changed": true, "failed": false, "detail": "cognitive_state work",
                             "version_before": null, "version_after": "1.0.0"}}
halt:
  description: The wakeup stops here (an unhealthy explorer or early-adopter wave, a failed start, or the deployment
    was already over); the later waves are skipped.
  returned: step=gate, step=abort, or step=prepare when the wave did not run
  type: bool
  sample: false
status:
  description: V(passed), V(partial) (general failures) or V(failed) (stopped).
  returned: step=gate (or abort) and the wave ran
  type: str
  sample: passed
aborted:
  description: The wakeup was stopped.
  returned: step=gate or step=abort
  type: bool
  sample: false
finished:
  description: The deployment is finished.
  returned: step=gate or step=abort
  type: bool
  sample: false
failures:
  description: Occurrence -> why it did not wake up.
  returned: step=gate (or abort) and the wave ran
  type: dict
  sample: {"datum-default": "not work within 300s: status degraded"}
outcome:
  description: What happened, when the deployment finished.
  returned: step=gate (or abort) and the wave ran
  type: str
  sample: all occurrences of datum awake
line:
  description: One progress line for the wave.
  returned: always
  type: str
  sample: "wave 1 explorer: 1 awake, 0 unhealthy"
should_fail:
  description: Present and true when the finished wakeup stopped or left occurrences down.
  returned: when finished with failures
  type: bool
  sample: true
failed_occurrences:
  description: Occurrences that did not wake up, when the deployment finished.
  returned: when finished
  type: list
  elements: str
  sample: []
report:
  description: The final report.
  returned: when finished
  type: dict
  sample: {"status": "completed"}
report_path:
  description: Where the report was written.
  returned: step=gate (or abort) and the wave ran
  type: str
  sample: /home/u/.agentfleet/reports/wakeup-datum-202601011300.json
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._module import run_module
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.specs import WAKEUP_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.steps import STEP_ERRORS
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.steps import wakeup_step


def main():
    run_module(AnsibleModule, WAKEUP_SPEC, wakeup_step, STEP_ERRORS)


if __name__ == "__main__":
    main()
