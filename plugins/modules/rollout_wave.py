#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rollout_wave
short_description: Run one rollout wave (ask, observe the stop, update in rounds, health gate, judge, revert, record)
version_added: 0.1.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - Runs one wave of a deployment that M(agentfleet.rollout.deployment) with
    O(agentfleet.rollout.deployment#module:state=running) recorded in the state file O(state_path). The rollout
    playbooks run one wave per Ansible batch of their waves play (C(serial) is the plan's wave sizes) and call this
    once per batch (C(run_once)); the C(agentfleet.rollout.rollout) role's C(wave) and C(wave_tasks) task files do.
  - Between phases the data travels through the rollout state (answers, observed stops, update results, wave
    start and summary), not through the playbook.
  - "O(phase=all), for O(driver=none) (the agent's own supervisor starts the new version), runs the whole wave in
    one call. 1. Ask: the wave is marked started, the reason text is built and every member of O(wave) is asked for
    consent, as M(agentfleet.rollout.notify) does with O(agentfleet.rollout.notify#module:skip_if_on_target=true)
    and the state file. An agent whose accept, reject or decline is recorded, or that answered without a decision
    before, is not asked again; deferring agents are re-asked until O(reask_until)."
  - "2. Observe (observed consent, PROTOCOL.md): every agent that accepted, or answered HTTP 200/202 without a
    decision (V(pending), what real CIRIS agents answer), is watched until it has stopped, for at most
    O(stop_timeout) seconds. Stopped means gone (nothing listens, or its proxy answers HTTP 502/503/504); with
    O(driver=none), whose agents' own supervisor restarts them, also seen draining (C(cognitive_state) C(shutdown))
    or already back on the target version. A pending agent that stopped is recorded as having accepted; one still working at the
    end has declined and is recorded C(declined) (an answer, not a failure; never updated). An explicit accepter
    that did not stop, one still draining, and one that stopped answering with timeouts are recorded C(failed)
    and not updated. Nothing acts on an agent that has not stopped."
  - "3. Update: with O(driver=none) nothing is started (the agent's own supervisor does); the agents that stopped
    are recorded C(updated)."
  - "4. Gate: the agents handed to the driver in this run are watched as M(agentfleet.rollout.health_gate) does
    (O(expected_states), O(min_healthy_time), O(healthy_deadline), O(poll_interval), O(grace)), with the target
    version required when O(require_target_version=true). Without O(grace) every agent is watched until it is
    stable or O(healthy_deadline) ends."
  - "5. Judge, the one verdict of a wave: it passes when at least ceil(O(success_threshold) x (accepted +
    unreachable)) of its agents are healthy on the target, counted over the state (this run and earlier runs of the
    same deployment; observed accepts count as accepted). Unreachable agents count as failures; rejects, defers and
    declines are answers and never fail a wave. A wave where nobody accepted and nobody was unreachable passes."
  - "6. Revert: O(driver=none) cannot start a previous version, so nothing is reverted and RV(revert_note) says so."
  - "7. Record: each gated agent is recorded C(updated) (stable), C(failed) (not stable, with the cause) or
    C(reverted); the wave is recorded C(passed) or C(failed) with its RV(rollout_wave_summary). A failed wave halts the rollout
    (RV(halt), RV(halt_reason)). When the wave failed or O(last=true), the deployment is closed (its status, the
    report at O(report_path), an audit line) and RV(rollout_deployment_summary) returned. RV(outcomes) gives every
    member its outcome, for its own task result (M(agentfleet.rollout.agent_result))."
  - "O(driver=tasks) and O(driver=docker) run the user's tasks (or the collection's docker task) on each agent's
    host, as a per-agent pipeline in rounds: an agent's update starts as soon as that agent has stopped, not when
    the slowest agent of its wave has. O(phase=ask) runs step 1, sorts out what an earlier run of this wave left (an
    agent working on the target is taken as updated and gated without a stop wait; one that is down, or that was
    seen stopping and works on its old version, gets its update; nobody is asked again), then watches the agents
    that consented until at least one has stopped (gathering others that stop within a fraction of a second) and
    hands those over: RV(update_hosts), RV(update_map) and RV(round), with RV(done=false)."
  - "O(phase=round), given the RV(round) of the previous call, records what the previous round's tasks did (the
    action plugin reads each of its hosts' C(_rollout_task_error) and C(_rollout_driver_results) facts; a host that
    left the batch failed) and hands over the next agents that stopped. Once none is left to watch (all stopped,
    or O(stop_timeout) passed: the others have declined or failed as in step 2), it runs steps 4 and 5; a failed
    wave with O(auto_revert=true) is handed over once more with purpose C(revert) (RV(needs_revert)), and so is
    every agent whose update tasks failed, whatever O(auto_revert) and the verdict (it stopped because it was
    asked: never left down; its row fails, C(reverted)); then step 7, and RV(done=true): the result is the wave's."
  - "Never left down: an error while asking (a refused token, a malformed answer) or an operator's C(fail) of the
    deployment stops the wave, but the agents that stopped because they were asked are still handed to the tasks
    (on the target; a rerun gates them) for up to 10 s of further stops, and the deployment then ends C(failed) with
    the error and who was started again (RV(halt_reason)). An operator's C(pause) lets the wave end; the next wave
    is not started."
  - Every call returns the same keys whatever happened (check mode, a paused or closed deployment, an error, an
    empty wave); RV(lines) is what the playbook shows.
  - Runs on the controller (action plugin), without forking a Python interpreter per task; while it waits it prints
    a progress line every few seconds.
options:
  state_path:
    description:
      - The rollout state (a SQLite path, C(sqlite:///path) or C(s3://bucket/prefix)) where O(deployment_id) was
        recorded; answers, observed stops, update results and the wave summary are recorded in it.
      - The task fails when O(deployment_id) is not in it.
    type: path
    required: true
  deployment_id:
    description:
      - The deployment, as recorded by M(agentfleet.rollout.deployment) with
        O(agentfleet.rollout.deployment#module:state=running). Its target version is the version the wave updates to.
      - Sent to every agent as the idempotency key.
    type: str
    required: true
  wave:
    description:
      - The wave, one of the RV(agentfleet.rollout.deployment#module:waves) returned by
        O(agentfleet.rollout.deployment#module:state=running) (or of the RV(agentfleet.rollout.wave_split#module:waves)
        of the plan), with C(index) (1-based), C(name) (its cohort) and C(members).
      - Every member needs a C(name) and an C(agent_url) (C(http://) or C(https://)), and carries the fields
        described in O(agentfleet.rollout.notify#module:agents).
    type: dict
    required: true
  wave_count:
    description: How many waves the deployment has, named in the reason text and the wave's RV(line).
    type: int
    required: true
  last:
    description:
      - This is the last wave of the run (the C(last) of the RV(agentfleet.rollout.deployment#module:waves)
        entry). Once it is recorded, the deployment is closed and RV(rollout_deployment_summary) returned.
      - A failed wave closes the deployment whatever O(last) says.
    type: bool
    default: false
  next_wave:
    description:
      - The plan's next wave (an entry of RV(agentfleet.rollout.deployment#module:waves)), for O(phase=all) with
        O(driver=none).
      - Once this wave has passed, and while the deployment still runs, its agents are asked before this call
        returns (nobody twice). They drain and restart while Ansible writes this wave's results, and the next
        wave's own call finds their answers recorded and watches them stop.
      - Leave it out when the playbook does something between the waves (a hook, a wait, an approval). Ignored
        with O(last=true), another driver, or a blue-green wave.
    type: dict
  phase:
    description:
      - The part of the wave to run (see the description).
      - V(all) asks, observes, gates, judges and records, with O(driver=none).
      - V(ask) and V(round) are the calls of the per-agent pipeline of O(driver=tasks) and O(driver=docker).
      - With O(strategy=blue_green) and O(driver=tasks) the steps are V(candidates) (which agents get one), V(retire)
        (gate the candidates of O(candidate_urls), ask the primaries) and V(finish) (record; O(update_hosts) are the
        promoted agents).
    type: str
    default: all
    choices: [all, ask, round, finish, candidates, retire]
  strategy:
    description:
      - The rollout strategy named in the reason text.
      - V(blue_green) runs a blue-green wave (see O(phase)).
    type: str
    default: canary
  candidate_urls:
    description:
      - With O(strategy=blue_green) and O(phase=retire), the agent URL of each agent's candidate (host name to URL), as
        the user's candidate tasks set it (C(rollout_candidate_url)).
    type: dict
    default: {}
  analysis:
    description:
      - Analysis checks run once the wave's agents are stable (C(rollout_analysis), docs/analysis.md) - each with
        C(name), one source (C(prometheus) C({url, query}), C(http) C({url, method, headers, body, json_path}) or
        C(agent) C({path, json_path})), C(success_condition) / C(failure_condition), C(interval), C(count),
        C(failure_limit), C(inconclusive_limit), C(initial_delay) and C(dry_run).
      - A failed check fails the wave (as a failed gate does); an inconclusive one pauses the deployment.
      - The tasks, docker and none drivers' waves; not yet the blue-green candidates.
    type: list
    elements: dict
    default: []
  telemetry_check:
    description:
      - Also require no incident in each updated agent's last hour (CIRIS's C(GET /v1/telemetry/overview),
        C(data.recent_incidents)), as CIRISManager's gate does - an analysis check C(telemetry-incidents) of the
        C(agent) kind (C(rollout_telemetry_check)).
    type: bool
    default: false
  release_notes:
    description: What changes in the new version; added to the reason text as C(Changes) text.
    type: str
  force:
    description:
      - Sent to the agents as C(force); marks the update as an emergency in the reason text.
      - The agents still decide, and are still watched until they stop.
    type: bool
    default: false
  reask_until:
    description:
      - A unix time (seconds since the epoch) until which deferring agents are asked again, each once its
        C(defer_until) has come.
      - When not set, nobody is asked twice in one task.
    type: float
  stop_timeout:
    description:
      - Seconds to watch the agents that accepted or answered without a decision until they have stopped
        (observed consent), from O(phase=all) or O(phase=ask); between 0 and 1000000.
      - An agent that answered without a decision and is still working at the end has declined (result
        C(declined)); an explicit accepter that did not stop, or one still draining, is C(failed). Neither is updated.
    type: float
    default: 600.0
  audit_path:
    description:
      - Append JSON lines to this audit log, C(event=wave_started), one C(event=decision) per answer, one
        C(event=consent_observed) per watched agent, C(event=wave_passed) or C(event=wave_failed) with the wave
        summary and, when the deployment is closed, C(event=deployment_<status>). The token is never written.
    type: path
  report_path:
    description:
      - Where the deployment's JSON report is written when this wave closes the deployment (O(last=true) or a failed
        wave); see O(agentfleet.rollout.deployment#module:report_path).
      - Not written when not set.
    type: path
  driver:
    description:
      - What starts the new version on an agent that stopped.
      - V(none) - nothing; the agent's own supervisor does. The agents are recorded C(updated) and gated.
      - V(tasks) - the user's tasks, run by the playbook on each agent's host in the rounds of O(phase=ask) and
        O(phase=round).
      - V(docker) - like V(tasks), with the collection's own task (M(agentfleet.rollout.docker_agent_update)) that
        recreates each agent's container from the new image.
    type: str
    default: none
    choices: [none, tasks, docker]
  round:
    description:
      - With O(phase=round), the RV(round) returned by the previous call (O(phase=ask) or O(phase=round)), passed
        back as it is; the pipeline's state (the agents handed over last, the stop deadline, the progress deadline,
        an error that stops the wave).
    type: dict
    default: {}
  require_target_version:
    description: In the gate, an agent counts as healthy only when it reports the deployment's target version.
    type: bool
    default: true
  success_threshold:
    description:
      - The fraction (between 0 and 1) of the wave's agents that accepted or were unreachable that must be healthy on
        the target for the wave to pass, rounded up to whole agents (see the description). The gate uses it for its
        own RV(gate) result over the gated agents.
    type: float
    default: 0.8
  auto_revert:
    description:
      - Put the agents of a failed wave back on their previous version (C(version_before), recorded when they
        were asked).
      - With O(driver=tasks) and O(driver=docker) the tasks run once more with purpose C(revert); O(driver=none)
        cannot.
    type: bool
    default: false
  update_hosts:
    description:
      - With O(strategy=blue_green) and O(phase=finish), the promoted agents.
    type: list
    elements: str
    default: []
  update_failed:
    description:
      - With O(phase=round), the agents of the previous round whose tasks failed, mapped to the error; the action
        plugin reads them from the hosts (set it only when running the module directly). They are recorded
        C(failed) (a rerun of the deployment retries them) and not gated.
    type: dict
    default: {}
  driver_results:
    description:
      - With O(phase=round), what the driver reported for each agent of the previous round (for O(driver=docker),
        the images before and after), mapped by agent name; read from the hosts by the action plugin. It is recorded
        in the agent's C(driver) entry of the deployment's report, as C(update) or C(revert).
    type: dict
    default: {}
  gate:
    description:
      - With O(strategy=blue_green) and O(phase=finish), the RV(gate) result returned by O(phase=retire).
      - Required with O(phase=finish).
    type: dict
  reverted_hosts:
    description:
      - With O(strategy=blue_green) and O(phase=finish), the agents put back; they are recorded C(reverted).
    type: list
    elements: str
    default: []
  progress_deadline:
    description:
      - Seconds the wave may take without passing, counted from its start (O(phase=all) or O(phase=ask)); V(0) means
        no deadline. The wait for the agents to stop and the health gate end at it at the latest; a wave that reaches
        it with agents not stopped or not stable fails (the one verdict), and so does the deployment. An agent still
        not stopped then is C(failed) (not declined); with O(auto_revert) the wave's updated agents are put back.
    type: float
    default: 0
extends_documentation_fragment:
  - agentfleet.rollout.gate
  - agentfleet.rollout.connection
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.CONTROLLER
  - agentfleet.rollout.attributes.PARTIAL
attributes:
  check_mode:
    details:
      - In check mode the wave is not run; nothing is asked, watched, started, probed or reverted, and the state file
        is neither read nor written. The task returns C(changed=true), RV(halt=false), one RV(outcomes) entry per
        member with result V(planned) (C(would be asked in wave 2 of 4 [early_adopters])) and the same as
        RV(plan_lines).
  idempotent:
    details:
      - Asking for consent and starting agents are not idempotent by nature; every run reports C(changed=true).
      - What makes a rerun safe is the state file O(state_path) with the same O(deployment_id). Agents whose accept,
        reject or decline is recorded, or that answered without a decision, are never asked again (an agent that
        answered without a decision is watched again). Agents recorded C(updated), C(reverted) or C(declined) are not
        updated again; agents handed to a driver whose update or gate failed are updated and gated again.
      - A rerun judges the wave again over the state and records its summary anew.
notes:
  - The wave stops with the C(ansible-playbook) that started it. Before every request and around every wait it checks
    that its controller still lives (Ansible's workers leave the playbook's process group, so a C(kill -9) of the
    group does not reach them) and that no newer run of the deployment has taken over (the lease generation); a wave
    whose controller died stops at once and sends nothing more. Every request carries the run's id in the
    C(X-Agentfleet-Run) header. See docs/reliability.md.
  - The RV(update_hosts) and RV(update_map) of O(phase=ask) and O(phase=round) say which agents to start (or put
    back), on which version, and what they ran before.
  - A deferring agent is not updated in this wave; its deferral is recorded and counted in the wave's summary.
seealso:
  - module: agentfleet.rollout.deployment
  - module: agentfleet.rollout.agent_result
  - module: agentfleet.rollout.notify
  - module: agentfleet.rollout.health_gate
  - module: agentfleet.rollout.wave_split
"""

EXAMPLES = r"""
# In a play over the agents whose batches are the waves (serial: plan.batches, hosts: plan.order),
# with plan the result of agentfleet.rollout.deployment (state: running) and wave the batch's wave:
#   wave: "{{ plan.waves[plan.wave_of[ansible_play_batch[0]]] }}"
- name: Run the batch's wave (the agents' own supervisor starts the new version)
  agentfleet.rollout.rollout_wave:
    phase: all
    state_path: /var/lib/agentfleet/rollout.db
    deployment_id: "{{ plan.deployment_id }}"
    wave: "{{ wave }}"
    wave_count: "{{ (plan.plan | default(plan.waves)) | length }}"
    last: "{{ wave.last }}"
    release_notes: Faster memory consolidation
    stop_timeout: 300
    min_healthy_time: 30
    report_path: /var/log/agentfleet/{{ plan.deployment_id }}.json
    token: "{{ rollout_token }}"
  register: wave_result
  run_once: true

- name: Each agent's own result (its PLAY RECAP row)
  agentfleet.rollout.agent_result:
    from_result: wave_result

# The tasks driver, as the agentfleet.rollout.rollout role runs it (roles/rollout/tasks/wave_tasks.yml and
# wave_round.yml): ask once, then rounds until done; each round's agents run the update tasks on their own hosts.
- name: Ask the wave, then hand over the first agents that stopped
  agentfleet.rollout.rollout_wave:
    phase: ask
    state_path: /var/lib/agentfleet/rollout.db
    deployment_id: "{{ plan.deployment_id }}"
    wave: "{{ wave }}"
    wave_count: "{{ (plan.plan | default(plan.waves)) | length }}"
    last: "{{ wave.last }}"
    driver: tasks
  register: wave_result
  run_once: true

- name: Update each agent as it stops (round.yml includes itself while not done)
  ansible.builtin.include_tasks: round.yml
  when: not wave_result.done

# round.yml:
# - name: The update tasks of the agents handed over in this round
#   when: inventory_hostname in wave_result.update_hosts
#   block:
#     - name: Update this agent
#       ansible.builtin.include_tasks: update-agent.yml
#       vars:
#         rollout_update_version: "{{ wave_result.update_map[inventory_hostname].version }}"
#   rescue:
#     - name: Remember the failed tasks (this agent only; read by the next round)
#       ansible.builtin.set_fact:
#         _rollout_task_error: {round: "{{ wave_result.round.id }}", msg: "{{ ansible_failed_result.msg }}"}
# - name: Record the round, then the next agents that stopped (or gate, judge and record the wave)
#   agentfleet.rollout.rollout_wave:
#     phase: round
#     round: "{{ wave_result.round }}"
#     state_path: /var/lib/agentfleet/rollout.db
#     deployment_id: "{{ plan.deployment_id }}"
#     wave: "{{ wave }}"
#     wave_count: "{{ (plan.plan | default(plan.waves)) | length }}"
#     last: "{{ wave.last }}"
#     driver: tasks
#   register: wave_result
#   run_once: true
# - name: The next round
#   ansible.builtin.include_tasks: round.yml
#   when: not wave_result.done
"""

RETURN = r"""
changed:
  description: Always V(true), in check mode as well (a wave asks agents, starts them and records its state).
  returned: always
  type: bool
  sample: true
phase_done:
  description:
    - The step the call ended with. V(round) when it handed agents over (RV(done=false)); V(finish) when the wave was
      recorded; V(stopped) when the wave ended early (an error, an operator's fail) or asked nobody (the deployment
      is paused or closed); V(check) in check mode; V(interrupted) when SIGTERM or SIGINT stopped the wave.
  returned: always
  type: str
  sample: finish
done:
  description:
    - V(false) while the pipeline of O(driver=tasks) and O(driver=docker) has agents to hand over; the playbook runs
      their tasks and calls O(phase=round) with RV(round). V(true) once the wave is recorded (or asked nobody); the
      result is then the wave's.
  returned: always
  type: bool
  sample: true
round:
  description: The pipeline's state, to pass back as O(round) to the next O(phase=round) call; its C(id) tags the round's task errors.
  returned: always
  type: dict
lines:
  description: What the playbook shows for this wave (its line, the plan in check mode, the failed gate's table, notes, the deployment's summary table).
  returned: always
  type: list
  elements: str
asked_ahead:
  description: The agents of O(next_wave) this call asked as the wave passed (empty when nothing was asked ahead).
  returned: always
  type: list
  elements: str
go_on:
  description: V(true) when the rollout goes on with a next wave (the wave is done, did not halt and is not the last).
  returned: always
  type: bool
error:
  description: The error that stopped the wave early (a refused token, a malformed answer, an operator's fail), else null.
  returned: always
  type: str
notes:
  description: What the wave did beyond its line (who was started again after an early stop, agents left for a rerun).
  returned: always
  type: list
  elements: str
interrupted:
  description:
    - "V(true) when SIGTERM or SIGINT (an AWX cancel, Ctrl-C) stopped the wave between two steps. The agents that had
      stopped for the update were started again by their supervisor (O(driver=none)) or are named for the rerun,
      whose first round starts them (O(driver=tasks), O(driver=docker)), the deployment is recorded
      C(interrupted) with where it stopped (RV(msg)), and a rerun resumes it."
  returned: when interrupted
  type: bool
  sample: true
counts:
  description:
    - Number of the wave's agents per answer of this ask (recorded answers included), before the stops are observed
      (C(pending) counts the agents that answered without a decision).
  returned: phase=all or phase=ask, not in check mode
  type: dict
  sample: {"accepted": 2, "pending": 1, "declined": 0, "deferred": 1, "rejected": 0, "unreachable": 1, "skipped": 0}
asked:
  description: Names of the agents this task sent a shutdown request to (re-asked deferring agents appear again).
  returned: phase=all or phase=ask, not in check mode
  type: list
  elements: str
  sample: ["agent-000", "agent-001", "agent-002", "agent-003"]
reason:
  description: The reason text sent to the agents.
  returned: phase=all or phase=ask, not in check mode
  type: str
  sample: "Update to version 2.0.0 is available (deployment deploy-20260101-120000, canary rollout). You are in the
    explorers group (wave 1 of 4). You are among the first to receive this version. Accept to shut down gracefully
    so the new version can start; defer if you are busy; reject to decline."
update_hosts:
  description:
    - The agents handed over in this round (O(phase=ask), O(phase=round)); the playbook runs their tasks on their
      hosts now. Empty when RV(done).
  returned: always
  type: list
  elements: str
  sample: [datum, sage]
update_map:
  description: For each agent of RV(update_hosts), C(version) (to start), C(previous_version) and C(purpose) (C(update) or C(revert)).
  returned: always
  type: dict
  sample: {datum: {version: 2.0.0, previous_version: 1.9.0, purpose: update}}
line:
  description: The wave's summary as one line.
  returned: when the wave is recorded (phase_done=finish)
  type: str
  sample: "wave 1/4 explorers: 1 agents | accepted 1, declined 0, deferred 0, rejected 0, unreachable 0 | healthy 1/1
    | 12.4s | passed"
passed:
  description:
    - Whether the wave passed, that is at least ceil(O(success_threshold) x (accepted + unreachable)) of its agents
      are healthy on the target, counted over the state; rejects, defers and declines never fail a wave.
    - Null until the wave is judged.
  returned: always
  type: bool
  sample: true
halt:
  description:
    - Whether the rollout stops after this wave (the wave failed); the playbook ends its play on it.
    - Always V(false) in check mode.
  returned: when the wave is recorded (phase_done=finish), and in check mode
  type: bool
  sample: false
halt_reason:
  description: Why the failed wave stops the rollout (null when it passed, and in check mode).
  returned: when the wave is recorded (phase_done=finish), and in check mode
  type: str
  sample: "wave 2 (early_adopters) failed its health gate: 1/3 healthy, 3 required; 1 unreachable (reverted)"
table:
  description:
    - When the wave failed, one line per gated agent that did not become stable, with its version, cognitive state
      and cause, after a header line. Empty when the wave passed.
  returned: when the wave is recorded (phase_done=finish)
  type: list
  elements: str
  sample: ["agent                            version    state        cause",
           "agent-003                        -          -            connection refused"]
outcomes:
  description:
    - Per member of O(wave), its outcome for its own task result (M(agentfleet.rollout.agent_result)). C(result) is
      the recorded result (V(updated), V(declined), V(deferred), V(rejected), V(failed), V(reverted), V(skipped);
      V(pending) for an answer without a result; V(not asked); V(planned) in check mode); C(changed) when it was
      updated in this run; C(failed) when its update or gate failed, it did not stop after accepting, it was
      unreachable or it was reverted; C(detail); C(decision), C(version_before) and C(version_after) as recorded.
  returned: when the wave is recorded (phase_done=finish), and in check mode
  type: dict
  sample: {"agent-000": {"result": "updated", "changed": true, "failed": false, "detail": null, "decision": "accept",
                         "version_before": "1.9.0", "version_after": "2.0.0"},
           "agent-001": {"result": "declined", "changed": false, "failed": false,
                         "detail": "did not stop within 600s: declined or still busy", "decision": "declined",
                         "version_before": "1.9.0", "version_after": null}}
rollout_wave_summary:
  description:
    - The wave for the progress callback C(agentfleet.rollout.rollout_progress), which prints one line per wave from
      it. C(deployment_id) and the wave summary's keys C(wave), C(wave_count), C(name), C(size), C(accepted),
      C(declined), C(deferred), C(rejected), C(unreachable), C(skipped), C(healthy), C(updated), C(failed),
      C(elapsed), C(passed), C(halt_reason), C(line) and C(analysis) (the wave's analysis with O(analysis), else
      null; docs/analysis.md).
  returned: when the wave is recorded (phase_done=finish)
  type: dict
  sample: {"deployment_id": "deploy-20260101-120000", "wave": 1, "wave_count": 4, "name": "explorers", "size": 1,
           "accepted": 1, "declined": 0, "deferred": 0, "rejected": 0, "unreachable": 0, "skipped": 0, "healthy": 1,
           "updated": 1, "failed": 0, "elapsed": 12.4, "passed": true, "halt_reason": null,
           "line": "wave 1/4 explorers: 1 agents | accepted 1, declined 0, deferred 0, rejected 0, unreachable 0 |
           healthy 1/1 | 12.4s | passed"}
rollout_deployment_summary:
  description:
    - The closed deployment, when this wave ended the rollout (it failed, or O(last=true)). C(deployment_id),
      C(status), C(target_version), C(strategy), C(totals) (agents per result), C(report_path), C(message) (why it
      halted, or which agents a C(--limit) left out) and C(summary_table).
    - C(status) is V(failed) after a failed wave; V(paused) when some agent of the plan was not in this run (a
      C(--limit)); V(completed_with_failures) when some agent failed (a rerun retries exactly those); else
      V(completed).
    - The progress callback prints its table after PLAY RECAP.
  returned: when the deployment was closed
  type: dict
  sample: {"deployment_id": "deploy-20260101-120000", "status": "completed", "target_version": "2.0.0",
           "strategy": "canary", "totals": {"updated": 9, "declined": 1, "deferred": 0, "rejected": 0, "failed": 0,
           "reverted": 0, "skipped": 0, "pending": 0}, "report_path": "/var/log/agentfleet/deploy-20260101-120000.json",
           "message": null, "summary_table": ["deployment deploy-20260101-120000 (canary -> 2.0.0): completed"]}
needs_revert:
  description: V(true) when this round hands agents back to the tasks with purpose C(revert) (a failed wave's with
    O(auto_revert=true), and those whose update tasks failed).
  returned: always
  type: bool
  sample: false
revert_hosts:
  description: The agents of a revert round (the same as RV(update_hosts) then); empty otherwise.
  returned: always
  type: list
  elements: str
gate:
  description:
    - The health gate's result over the gated agents, as M(agentfleet.rollout.health_gate) returns it (C(passed),
      C(reason), C(stable), C(unstable), C(agents), C(total), C(stable_count), C(required), C(ratio), C(elapsed),
      C(table)).
    - With O(strategy=blue_green), pass it unchanged as O(gate) to O(phase=finish).
  returned: always (empty before the gate)
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
candidate_hosts:
  description: With O(strategy=blue_green) and O(phase=candidates), the agents of the batch that get a candidate.
  returned: phase=candidates
  type: list
  elements: str
  sample: ["agent-000", "agent-001"]
promote_hosts:
  description:
    - With O(strategy=blue_green) and O(phase=retire), the agents whose candidate was stable and whose primary
      consented and stopped - promote their candidates, then pass them as O(update_hosts) to O(phase=finish).
  returned: phase=retire
  type: list
  elements: str
  sample: ["agent-000"]
discard_hosts:
  description:
    - With O(strategy=blue_green) and O(phase=retire), the agents whose candidate must be discarded (not stable, or
      the primary did not retire); all candidates when the candidates failed their gate (the wave is then recorded).
  returned: phase=retire
  type: list
  elements: str
  sample: ["agent-001"]
promotion_note:
  description:
    - When the wave was the canary wave of a deployment that waits for promotion (RV(agentfleet.rollout.wave_split#module:promote_after))
      and passed, that the deployment is now C(staged) and how to promote it.
  returned: when the canary wave passed and the deployment awaits promotion
  type: str
  sample: "canary wave 1 (canary) passed: deployment deploy-agents-2.0.0 is staged, awaiting promotion (auto_promote is false). ..."
plan_lines:
  description: In check mode, one line per member, what it would go through.
  returned: check mode
  type: list
  elements: str
  sample: ["agent-000: would be asked in wave 1 of 4 (explorers)"]
msg:
  description: In check mode, that nobody is asked; on failure, the error.
  returned: check mode or failure
  type: str
  sample: "check mode: nobody is asked"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._module import run_module
from ansible_collections.agentfleet.rollout.plugins.module_utils import _argspecs
from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners
from ansible_collections.agentfleet.rollout.plugins.module_utils._wave import run_wave


def main():
    run_module(AnsibleModule, _argspecs.WAVE_SPEC, run_wave, _runners.ENGINE_ERRORS, required_if=_argspecs.WAVE_REQUIRED_IF)


if __name__ == "__main__":
    main()
