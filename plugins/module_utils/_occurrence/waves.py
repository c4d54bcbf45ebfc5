# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One shutdown wave (engine of ``occurrence_shutdown step=wave``): send, observe, judge.

Per capacity batch: probe who still works, send the followers the shutdown
with ``decision_ref`` (the explorer was asked by the decide step and is not
asked again), then wait until every one of them has *stopped*
(:func:`~.liveness.wait_for_stop`): answering with ``cognitive_state:
shutdown`` is draining, not stopped, and a timeout is no evidence.

Wave 1 is the explorer's: its wait is the stop timeout, and it settles a
decision the explorer did not state (PENDING): stopped = accept (the
followers are told from wave 2 on); still working at the end = declined
(nobody shuts down; not a failure).

Safety: explorer or early-adopter failures stop the rollout before the next
batch and wave; in the general wave failures are reported and the other
batches proceed. A follower's own reject stops the rollout in any wave.
"""

from __future__ import annotations

import time
from typing import Any
from typing import Callable
from typing import Dict
from typing import List
from typing import Mapping
from typing import Optional
from typing import Set
from typing import TYPE_CHECKING

from ansible_collections.agentfleet.rollout.plugins.module_utils._consent import probe_liveness
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import DEFAULT_STOP_TIMEOUT
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import DEFAULT_WAVE_TIMEOUT
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import secs
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import SHUTDOWN
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import ShutdownError
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.decision import PROCEED
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import all_failures
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import decision_ref_of
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import DOWN_RESULTS
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import finish_abort
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import finish_last_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import engine_resources
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import fence_run
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import record_timeline
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import recorded_decision
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import set_extra
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import set_results_not_touched
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import shared_for
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import write
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.liveness import StopTimeline
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.liveness import wait_for_stop
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.message import follower_message
from ansible_collections.agentfleet.rollout.plugins.module_utils._outcome import member_outcomes
from ansible_collections.agentfleet.rollout.plugins.module_utils._outcome import planned_outcomes
from ansible_collections.agentfleet.rollout.plugins.module_utils._outcome import SHUTDOWN_OUTCOMES
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import ACCEPT
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AUTH_ERROR
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DECLINED
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DEFER
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DRAINING
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import PENDING
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import REJECT
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import STOPPED
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import WORKING
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import utcnow_iso
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.verdict import canary_stop
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.verdict import deployment_should_fail
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.verdict import judge_occurrence_wave

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
    from ansible_collections.agentfleet.rollout.plugins.module_utils._run import Run
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateStore


def shutdown_wave(params: Mapping[str, Any], check_mode: bool = False, client: Optional[AgentClient] = None,
                  store: Optional[StateStore] = None, clock: Callable[[], float] = time.time,
                  sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic,
                  run: Optional[Run] = None) -> Dict[str, Any]:
    """Send one wave (in capacity batches) and verify that every occurrence stopped.

    ``run`` (a :class:`._run.Run`): checked before every request and wait, its ``sleep`` replaces ``sleep``.
    """
    with engine_resources(params, store, client, run=run) as (store, client):
        return _shutdown_wave(params, check_mode, client, store, clock, run.sleep if run else sleep, monotonic, run)


def _shutdown_wave(params: Mapping[str, Any], check_mode: bool, client: AgentClient, store: StateStore,
                   clock: Callable[[], float], sleep: Callable[[float], None], monotonic: Callable[[], float],
                   run: Optional[Run] = None) -> Dict[str, Any]:
    dep = store.get_deployment(params["deployment_id"])
    if dep is None:
        raise ShutdownError("no deployment %s in %s: run the decide step first" % (params["deployment_id"], store.path))
    if dep["status"] == "running" and not check_mode:
        fence_run(run, store, dep)
    deployment_id = dep["deployment_id"]
    index = int(params["wave"])
    plan = dep["plan"]
    if index < 1 or index > len(plan):
        raise ShutdownError("deployment %s has %d waves, no wave %d" % (deployment_id, len(plan), index))
    wave = plan[index - 1]
    decision = shared_for(store, dep)
    skip = _skip_reason(store, dep, index, decision)
    if skip or decision is None:
        skip = skip or "no accepted shared decision for this deployment"
        return {"changed": False, "skipped": True, "aborted": dep["status"] in ("failed", "aborted"), "wave": index,
                "name": wave["name"], "msg": skip, "line": "wave %d %s: skipped (%s)" % (index, wave["name"], skip),
                "status": dep["status"], "finished": dep["status"] != "running",
                "halt": dep["status"] != "running", "outcomes": skipped_outcomes(store, deployment_id, wave, skip)}
    if check_mode:
        return {"changed": True, "aborted": False, "wave": index, "name": wave["name"],
                "line": "wave %d %s: would shut down %d occurrence(s) in %d batch(es)" % (
                    index, wave["name"], wave["size"], len(wave["batches"])), "finished": False, "halt": False,
                "outcomes": planned_outcomes([m["name"] for m in wave["members"]],
                                             "would be shut down in wave %d (%s)" % (index, wave["name"]))}
    explorer_wave = index == 1
    timeout = float((params.get("stop_timeout") or DEFAULT_STOP_TIMEOUT) if explorer_wave
                    else (wave.get("timeout") or DEFAULT_WAVE_TIMEOUT))
    if index > 1 and float(wave.get("delay") or 0) > 0:
        sleep(float(wave["delay"]))
    store.wave_started(deployment_id, index)
    store.heartbeat(deployment_id)
    wave_run = _WaveRun(params, store, client, dep, wave, decision, timeout, clock, sleep, monotonic)
    for batch in wave["batches"]:
        if wave_run.stop_reason or wave_run.declined:
            break
        wave_run.batch(batch)
    return wave_run.finish(final_wave=index == len(plan))


def skipped_outcomes(store: StateStore, deployment_id: str, wave: Mapping[str, Any], reason: str) -> Dict[str, Dict[str, Any]]:
    """Each occurrence of a wave that did not run: its recorded result, never a change or a failure of this run."""
    rows = {r["host"]: r for r in store.agents(deployment_id)}
    return member_outcomes(rows, [m["name"] for m in wave["members"]], SHUTDOWN_OUTCOMES, skipped=reason)


def wave_outcomes(store: StateStore, deployment_id: str, wave: Mapping[str, Any], terminated: Set[str],
                  tolerate_failures: bool) -> Dict[str, Dict[str, Any]]:
    """Occurrence -> outcome (``result``, ``changed``, ``failed``, ``detail``) of one wave run, for its PLAY RECAP row
    (:func:`._outcome.member_outcomes` with :data:`._outcome.SHUTDOWN_OUTCOMES`).

    ``changed``: it stopped because of this run (``terminated``). ``failed``: it did not terminate, or refused
    (reject, defer) - unless ``tolerate_failures`` (a general wave with ``fail_on_partial=false``). Anything else
    (already down, kept running, not asked because the rollout stopped) is ``ok``.
    """
    rows = {r["host"]: r for r in store.agents(deployment_id)}
    return member_outcomes(rows, [m["name"] for m in wave["members"]], SHUTDOWN_OUTCOMES, this_run=terminated,
                           tolerate_failures=tolerate_failures)


def _skip_reason(store: StateStore, dep: Mapping[str, Any], index: int, decision: Optional[Mapping[str, Any]]) -> Optional[str]:
    stored = {w["wave"]: w for w in store.waves(dep["deployment_id"])}
    if dep["status"] != "running":
        return "deployment is %s: %s" % (dep["status"], dep.get("message") or "")
    if not decision or decision["decision"] not in PROCEED:
        return "no accepted shared decision for this deployment"
    if index > 1 and decision["decision"] != ACCEPT:
        return "the explorer's decision is not settled (%s): the explorer wave comes first" % decision["decision"]
    if stored.get(index, {}).get("status") not in (None, "pending", "running"):
        return "wave %d already %s" % (index, stored[index]["status"])
    return None


class _WaveRun:
    """The state of one wave call: its batches in turn, then the verdict."""

    def __init__(self, params: Mapping[str, Any], store: StateStore, client: AgentClient, dep: Mapping[str, Any],
                 wave: Mapping[str, Any], decision: Dict[str, Any], timeout: float, clock: Callable[[], float],
                 sleep: Callable[[float], None], monotonic: Callable[[], float]) -> None:
        self.params, self.store, self.client, self.dep, self.wave = params, store, client, dep, wave
        self.decision, self.timeout = decision, timeout
        self.clock, self.sleep, self.monotonic = clock, sleep, monotonic
        self.deployment_id: str = dep["deployment_id"]
        self.agent_id: str = dep["params"]["agent_id"]
        self.decision_ref = decision_ref_of(decision, self.agent_id)
        self.urls: Dict[str, str] = {m["name"]: m["agent_url"] for m in wave["members"]}
        self.batches: List[Dict[str, Any]] = []
        self.failures: Dict[str, str] = {}
        self.stop_reason: Optional[str] = None
        self.declined: Optional[str] = None
        self.events: List[Dict[str, Any]] = []
        self.sent_any = False
        self.terminated: Set[str] = set()

    def batch(self, batch: Mapping[str, Any]) -> None:
        store, deployment_id = self.store, self.deployment_id
        rows = {r["host"]: r for r in store.agents(deployment_id)}
        serving = len([r for r in rows.values() if r["result"] not in DOWN_RESULTS])
        todo = [n for n in batch["members"] if rows[n]["result"] not in DOWN_RESULTS]
        # who still works? (a rerun, a resumed run, an occurrence that went away or is draining by itself)
        timeline = StopTimeline()
        for n, probe in self.client.fan_out(lambda n: (n, probe_liveness(self.client, self.urls[n])), todo):
            timeline.observe(n, probe[0], probe[1], probe[2], self.clock())
        asked = [n for n in todo if rows[n]["decision"] in PROCEED]
        already = [n for n in todo if n not in asked and timeline.get(n)["state"] == STOPPED]
        draining = [n for n in todo if n not in asked and timeline.get(n)["state"] == DRAINING]
        if already:
            store.set_results(deployment_id, [{"host": n, "result": "already_down",
                                               "detail": "%s before being asked" % timeline.describe(n)} for n in already])
        todo = [n for n in todo if n not in already]
        to_send = [n for n in todo if n not in asked and n not in draining]
        set_extra(store, deployment_id, {n: {"batch": batch["index"]} for n in todo})
        answers = self._send(to_send) if to_send else {}
        refused = {n: a for n, a in answers.items() if a["decision"] in (REJECT, DEFER)}
        for n, a in refused.items():
            self.failures[n] = "%s: %s" % ("rejected" if a["decision"] == REJECT else "deferred", a.get("reason") or "no reason given")
        store.set_results(deployment_id, [{"host": n, "result": "rejected" if a["decision"] == REJECT else "deferred",
                                           "detail": a.get("reason")} for n, a in refused.items()])
        rejects = [n for n, a in refused.items() if a["decision"] == REJECT]
        if rejects:
            self.stop_reason = "occurrence %s rejected the shutdown (its own decision): %s" % (
                ", ".join(rejects), "; ".join(refused[n].get("reason") or "no reason" for n in rejects))
        verify = [n for n in todo if n not in refused]
        rec: Dict[str, Any] = {"index": batch["index"], "members": batch["members"], "sent": to_send, "already_down": already,
                               "already_draining": draining, "serving_before": serving,
                               "serving_fraction": round((serving - len(todo)) / float(serving), 4) if serving else 0.0,
                               "fleet_serving_fraction": (round((serving - len(todo)) / float(self.dep["params"]["serving"]), 4)
                                                          if self.dep["params"].get("serving") else None)}
        if verify:
            self._verify(verify, timeline, rec)
        self.batches.append(rec)
        if not self.stop_reason:
            self.stop_reason = canary_stop(self.wave["name"], self.failures)

    def _send(self, to_send: List[str]) -> Dict[str, Dict[str, Any]]:
        store, deployment_id, wave = self.store, self.deployment_id, self.wave
        reason = self.dep["params"].get("reason") or ""
        text = follower_message(self.agent_id, self.decision, wave, reason, self.decision_ref)
        body = {"reason": text, "force": False, "confirm": True, "deployment_id": deployment_id,
                "scope": "occurrence", "decision_ref": self.decision_ref}
        store.mark_asked(deployment_id, to_send)
        set_extra(store, deployment_id, {n: {"asked": {"scope": "occurrence", "decision_ref": self.decision_ref,
                                                       "at": utcnow_iso(self.clock())}} for n in to_send})
        results = self.client.fan_out(lambda n: (n, self.client.ask(self.urls[n], body)), to_send)
        self.sent_any = True
        answers: Dict[str, Dict[str, Any]] = {}
        recs: List[Dict[str, Any]] = []
        for n, ans in results:
            answers[n] = ans
            own = bool(ans.get("decision_id")) and ans.get("decision_id") != self.decision_ref
            recs.append(dict(ans, host=n, wave=wave["index"], cohort=wave["name"]))
            if own:
                set_extra(store, deployment_id, {n: {"own_decision": True}})
            self.events.append({"event": "follower_answer", "host": n, "decision": ans["decision"],
                                "decision_id": ans.get("decision_id"), "own_decision": own, "reason": ans.get("reason")})
        store.record_answers(deployment_id, recs)
        auth = [n for n, a in answers.items() if a["decision"] == AUTH_ERROR]
        if auth:
            msg = "authentication failed for %s: check the token; rollout stopped" % ", ".join(auth)
            finish_abort(store, deployment_id, msg)
            write(store, self.params, deployment_id, {"outcome": msg}, self.events)
            raise ShutdownError(msg)
        return answers

    def _verify(self, verify: List[str], timeline: StopTimeline, rec: Dict[str, Any]) -> None:
        """Wait until every one of ``verify`` stopped; record each one's timeline and result."""
        store, deployment_id = self.store, self.deployment_id
        start = self.monotonic()
        result = wait_for_stop(self.client, self.urls, verify, self.timeout, self.params.get("poll_interval") or 1.0,
                               timeline, self.clock, self.sleep, self.monotonic)[0]
        rec["verify_seconds"] = round(self.monotonic() - start, 3)
        record_timeline(store, deployment_id, timeline, verify)
        done: List[Dict[str, Any]] = []
        bad: List[Dict[str, Any]] = []
        for n in verify:
            if n in result["stable"]:
                done.append({"host": n, "result": "stopped", "detail": timeline.describe(n)})
            elif self._declines(n, timeline):
                self.declined = "did not stop within %s s: declined or still busy (%s)" % (secs(self.timeout), timeline.describe(n))
            else:
                self.failures[n] = "did not terminate within %s s: %s" % (secs(self.timeout), timeline.describe(n))
                bad.append({"host": n, "result": "failed", "detail": self.failures[n]})
        store.set_results(deployment_id, done + bad)
        rec["terminated"] = [d["host"] for d in done]
        self.terminated.update(rec["terminated"])
        rec["failed"] = [b["host"] for b in bad]
        if self.wave["index"] == 1 and self.decision["decision"] == PENDING and done:
            self._settle_accept(done[0]["host"], timeline)

    def _declines(self, name: str, timeline: StopTimeline) -> bool:
        """A silent explorer still working at the end of its stop timeout has declined."""
        entry = timeline.get(name)
        return (self.wave["index"] == 1 and self.decision["decision"] == PENDING and entry["state"] == WORKING
                and entry["drained_at"] is None)

    def _settle_accept(self, explorer: str, timeline: StopTimeline) -> None:
        """The silent explorer stopped: its decision was accept, from when it was first seen going down."""
        entry = timeline.get(explorer)
        when = entry["drained_at"] or entry["exited_at"]
        drained = ("drained at %s, " % utcnow_iso(entry["drained_at"])) if entry["drained_at"] else ""
        reason = "observed: %s%s" % (drained, "stopped at %s" % utcnow_iso(entry["exited_at"]))
        d = self.decision
        self.store.record_shared_decision(self.agent_id, self.deployment_id, SHUTDOWN, ACCEPT, d.get("decision_id"),
                                          d.get("decided_by") or explorer, reason, None, decided_at=when)
        self.decision = recorded_decision(self.store, self.agent_id, SHUTDOWN, self.deployment_id)
        self.events.append({"event": "explorer_accepted_by_stopping", "host": explorer, "decision_id": d.get("decision_id"),
                            "reason": reason})

    def finish(self, final_wave: bool) -> Dict[str, Any]:
        """Judge the wave (:func:`._rollout.verdict.judge_occurrence_wave`), record it and, where it ends the
        deployment, the deployment; write the report."""
        store, deployment_id, wave, index = self.store, self.deployment_id, self.wave, self.wave["index"]
        verdict = judge_occurrence_wave(wave["name"], len(self.terminated), self.failures,
                                        self.params.get("fail_on_partial", True), self.stop_reason, self.declined)
        status = verdict["status"]
        store.wave_finished(deployment_id, index, status, {"batches": self.batches, "failures": self.failures,
                                                           "stop_reason": self.stop_reason, "declined": self.declined})
        self.events.append({"event": "wave_" + status, "wave": index, "name": wave["name"], "failures": self.failures})
        outcome = None
        if self.declined:
            outcome = self._finish_declined()
        elif self.stop_reason:
            outcome = "rollout stopped at wave %d (%s): %s" % (index, wave["name"], self.stop_reason)
            finish_abort(store, deployment_id, outcome)
        elif final_wave:
            outcome = finish_last_wave(store, deployment_id, "all occurrences of %s shut down" % self.agent_id)
        finished = bool(outcome)
        report, path = write(store, self.params, deployment_id, {"outcome": outcome} if outcome else None, self.events)
        counts: Dict[str, int] = {}
        for b in self.batches:
            for key in ("terminated", "failed", "already_down"):
                counts[key] = counts.get(key, 0) + len(b.get(key) or [])
        if self.declined:
            line = "wave %d %s: %s -> nobody shuts down" % (index, wave["name"], self.declined)
        else:
            line = "wave %d %s: %d terminated, %d already down, %d failed%s%s" % (
                index, wave["name"], counts.get("terminated", 0), counts.get("already_down", 0), len(self.failures),
                (" in %d batches" % len(self.batches)) if len(self.batches) > 1 else "",
                (" -> STOP: %s" % self.stop_reason) if self.stop_reason else "")
        out: Dict[str, Any] = {"changed": self.sent_any, "wave": index, "name": wave["name"], "status": status,
                               "aborted": bool(self.stop_reason), "finished": finished, "failures": self.failures,
                               "batches": self.batches, "line": line, "outcome": outcome, "report_path": path,
                               "deployment_id": deployment_id, "halt": verdict["halt"],
                               "outcomes": wave_outcomes(store, deployment_id, wave, self.terminated, verdict["tolerate_failures"])}
        if finished:
            out["report"] = report
            out["failed_occurrences"] = sorted(all_failures(store, deployment_id))
            if deployment_should_fail(self.stop_reason, out["failed_occurrences"], self.params.get("fail_on_partial", True)):
                out["should_fail"] = True
        return out

    def _finish_declined(self) -> str:
        """The silent explorer went on working: declined for all occurrences, nobody shuts down (not a failure)."""
        store, deployment_id = self.store, self.deployment_id
        d = self.decision
        explorer = self.wave["members"][0]["name"]
        store.record_shared_decision(self.agent_id, deployment_id, SHUTDOWN, DECLINED, d.get("decision_id"),
                                     d.get("decided_by") or explorer, self.declined, None)
        store.set_results(deployment_id, [{"host": explorer, "result": "kept_running", "detail": self.declined}])
        msg = "declined by %s for all occurrences of %s: %s; no occurrence shuts down" % (explorer, self.agent_id, self.declined)
        store.set_status(deployment_id, "completed", msg)
        set_results_not_touched(store, deployment_id, "kept_running")
        for w in store.waves(deployment_id):
            if w["status"] == "pending":
                store.wave_finished(deployment_id, w["wave"], "skipped", {"reason": "the explorer declined"})
        self.events.append({"event": "explorer_declined", "host": explorer, "reason": self.declined})
        return msg
