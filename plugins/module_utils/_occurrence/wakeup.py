# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wakeup waves (engine of ``occurrence_wakeup``): prepare, (the driver starts), gate; or abort.

:func:`wakeup_prepare` finds who of a wave needs starting. Only a STOPPED
occurrence is started: one still draining (``cognitive_state: shutdown``,
answering) or not answering is waited for, up to the wave timeout, and never
started while it has not stopped; one that runs but is not (yet) in an
expected state is not restarted, only gated. :func:`wakeup_gate` then waits
for the started ones to reach ``work``; :func:`wakeup_abort` records a
driver that could not start them.
"""

from __future__ import annotations

import time
from typing import Any
from typing import Callable
from typing import Dict
from typing import List
from typing import Mapping
from typing import Optional
from typing import Sequence
from typing import Tuple
from typing import TYPE_CHECKING

from ansible_collections.agentfleet.rollout.plugins.module_utils._health import health_check_fn
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import wait_for_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import DEFAULT_WAVE_TIMEOUT
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import secs
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import ShutdownError
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import WAKEUP
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import all_failures
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import begin
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import finish_abort
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import finish_last_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import engine_resources
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import engine_store
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import fence_run
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import set_extra
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import write
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.liveness import probe_health
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.liveness import StopTimeline
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.liveness import wait_for_stop
from ansible_collections.agentfleet.rollout.plugins.module_utils._outcome import member_outcomes
from ansible_collections.agentfleet.rollout.plugins.module_utils._outcome import WAKEUP_OUTCOMES
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import STOPPED
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import WORKING
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import utcnow_iso
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.verdict import deployment_should_fail
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.verdict import judge_occurrence_wave

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
    from ansible_collections.agentfleet.rollout.plugins.module_utils._run import Run
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateStore

MEMBER_KEYS = ("name", "agent_url", "agent_id", "occurrence_id", "cohort", "wave", "version")


def wakeup_prepare(params: Mapping[str, Any], check_mode: bool = False, client: Optional[AgentClient] = None,
                   store: Optional[StateStore] = None, clock: Callable[[], float] = time.time,
                   sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic,
                   run: Optional[Run] = None) -> Dict[str, Any]:
    """Before starting a wakeup wave: (wave 1) open the deployment, wait the
    wave's delay, wait for occurrences still draining to stop, and find which
    occurrences need starting.

    Returns ``to_start`` (member dicts for the update driver), ``already_up``,
    ``running`` (up but not in an expected state: gated, not restarted) and
    ``not_stopped`` (still draining or not answering at the end of the wait:
    not started, recorded unhealthy).
    """
    index = int(params["wave"])
    expected = tuple(params.get("expected_states") or ("work",))
    if check_mode:
        waves = (params.get("plan") or {}).get("waves") or []
        wave = waves[index - 1] if 0 < index <= len(waves) else None
        if wave is None:
            raise ShutdownError("the plan has no wave %d" % index)
        return {"changed": True, "wave": index, "name": wave["name"], "to_start": wave["members"],
                "already_up": [], "line": "wave %d %s: would start %d occurrence(s)" % (index, wave["name"], wave["size"])}
    sleep = run.sleep if run is not None else sleep
    with engine_resources(params, store, client, run=run) as (store, client):
        dep = store.get_deployment(params["deployment_id"])
        if index == 1 or dep is None:
            if not params.get("plan"):
                raise ShutdownError("wave 1 of a wakeup needs the plan")
            dep = begin(store, params, params["plan"], WAKEUP, clock)[0]
        if dep["status"] == "running":
            fence_run(run, store, dep)
        deployment_id = dep["deployment_id"]
        plan = dep["plan"]
        if index < 1 or index > len(plan):
            raise ShutdownError("deployment %s has %d waves, no wave %d" % (deployment_id, len(plan), index))
        wave = plan[index - 1]
        skip = _skip_reason(store, dep, index)
        if skip:
            return {"changed": False, "skipped": True, "wave": index, "name": wave["name"], "to_start": [],
                    "already_up": [], "deployment_id": deployment_id, "halt": dep["status"] != "running",
                    "outcomes": wakeup_outcomes(store, deployment_id, wave, skipped=True),
                    "line": "wave %d %s: skipped (%s)" % (index, wave["name"], skip)}
        if index > 1 and float(wave.get("delay") or 0) > 0:
            sleep(float(wave["delay"]))
        store.wave_started(deployment_id, index)
        store.heartbeat(deployment_id)
        members = wave["members"]
        target = params.get("target_version")
        probes = dict(client.fan_out(lambda m: (m["name"], probe_health(client, m["agent_url"], expected, target)),
                                     members))
        up = [m for m in members if probes[m["name"]][0] == WORKING and probes[m["name"]][3]]
        running = [m for m in members if probes[m["name"]][0] == WORKING and not probes[m["name"]][3]]
        # draining or not answering: not stopped yet; nothing starts an occurrence that has not stopped
        waiting = [m for m in members if probes[m["name"]][0] not in (WORKING, STOPPED)]
        timeline = StopTimeline()
        waited = 0.0
        if waiting:
            for m in waiting:
                state, cause, info = probes[m["name"]][:3]
                timeline.observe(m["name"], state, cause, info, clock())
            start = monotonic()
            wait_for_stop(client, {m["name"]: m["agent_url"] for m in waiting}, [m["name"] for m in waiting],
                          float(wave.get("timeout") or DEFAULT_WAVE_TIMEOUT), params.get("poll_interval") or 1.0,
                          timeline, clock, sleep, monotonic)
            waited = round(monotonic() - start, 3)
        not_stopped = [m for m in waiting if not timeline.stopped(m["name"])]
        to_start = [m for m in members if probes[m["name"]][0] == STOPPED or (m in waiting and m not in not_stopped)]
        results = [{"host": m["name"], "result": "already_awake", "version_before": probes[m["name"]][2].get("version")}
                   for m in up]
        results += [{"host": m["name"], "result": "unhealthy",
                     "detail": "did not stop within %s s: %s; not started (it has not stopped)"
                               % (secs(wave.get("timeout") or DEFAULT_WAVE_TIMEOUT), timeline.describe(m["name"]))}
                    for m in not_stopped]
        if results:
            store.set_results(deployment_id, results)
        set_extra(store, deployment_id, {m["name"]: {"asked": {"action": "none", "at": utcnow_iso(clock()),
                                                               "state_before": "running: %s" % probes[m["name"]][4]}}
                                         for m in running})
        if to_start:
            _versions_for(store, dep, to_start, params.get("target_version"))
            store.mark_asked(deployment_id, [m["name"] for m in to_start])
            set_extra(store, deployment_id, {m["name"]: _start_extra(m["name"], probes, timeline, waiting, waited, clock)
                                             for m in to_start})
        return {"changed": bool(to_start), "wave": index, "name": wave["name"],
                "deployment_id": deployment_id,
                "to_start": [{k: m.get(k) for k in MEMBER_KEYS if m.get(k) is not None} for m in to_start],
                "already_up": [m["name"] for m in up],
                "running": [m["name"] for m in running],
                "not_stopped": [m["name"] for m in not_stopped],
                "line": "wave %d %s: starting %d occurrence(s), %d already up%s%s" % (
                    index, wave["name"], len(to_start), len(up),
                    (", %d waited for until stopped (%ss)" % (len(waiting) - len(not_stopped), secs(waited)))
                    if len(waiting) > len(not_stopped) else "",
                    (", %d not stopped: not started" % len(not_stopped)) if not_stopped else "")}


def _skip_reason(store: StateStore, dep: Mapping[str, Any], index: int) -> Optional[str]:
    stored = {w["wave"]: w for w in store.waves(dep["deployment_id"])}
    if dep["status"] != "running":
        return "deployment is %s: %s" % (dep["status"], dep.get("message") or "")
    if stored.get(index, {}).get("status") not in (None, "pending", "running"):
        return "wave %d already %s" % (index, stored[index]["status"])
    return None


def _start_extra(name: str, probes: Mapping[str, Any], timeline: StopTimeline, waiting: Sequence[Mapping[str, Any]],
                 waited: float, clock: Callable[[], float]) -> Dict[str, Any]:
    asked: Dict[str, Any] = {"action": "start", "at": utcnow_iso(clock()), "state_before": probes[name][1]}
    if name in [m["name"] for m in waiting]:
        entry = timeline.get(name)
        asked["state_before"] = "%s, then stopped" % probes[name][1]
        asked["waited_for_stop_seconds"] = waited
        return {"asked": asked, "exited_at": utcnow_iso(entry["exited_at"]),
                "drained_at": utcnow_iso(entry["drained_at"]) if entry["drained_at"] else None}
    return {"asked": asked}


def _versions_for(store: StateStore, dep: Mapping[str, Any], to_start: Sequence[Dict[str, Any]],
                  target_version: Optional[str]) -> None:
    """Set the version each occurrence is started on: the wanted one or the one it last ran."""
    versions = _last_known_versions(store, dep)
    missing = []
    for m in to_start:
        m["version"] = target_version or m.get("version") or versions.get(m["name"])
        if not m["version"]:
            missing.append(m["name"])
    if missing:
        raise ShutdownError("no version known to start %s: set wakeup_version" % ", ".join(missing[:10]))


def wakeup_gate(params: Mapping[str, Any], check_mode: bool = False, client: Optional[AgentClient] = None,
                store: Optional[StateStore] = None, clock: Callable[[], float] = time.time,
                sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic,
                run: Optional[Run] = None) -> Dict[str, Any]:
    """Gate a wakeup wave: every started (or running) occurrence must reach an
    expected state (``work``) within the wave timeout. An unhealthy explorer
    aborts and leaves the others down; a failed early-adopter wave stops
    before general; general failures are reported.
    """
    index = int(params["wave"])
    if check_mode:
        return {"changed": False, "skipped": True, "wave": index, "aborted": False, "finished": False,
                "line": "wave %d: would gate on %s" % (index, "|".join(params.get("expected_states") or ["work"]))}
    sleep = run.sleep if run is not None else sleep
    with engine_resources(params, store, client, run=run) as (store, client):
        dep = store.get_deployment(params["deployment_id"])
        if dep is None:
            raise ShutdownError("no deployment %s: run the prepare step first" % params["deployment_id"])
        if dep["status"] == "running":
            fence_run(run, store, dep)
        deployment_id = dep["deployment_id"]
        plan = dep["plan"]
        wave = plan[index - 1]
        stored = {w["wave"]: w for w in store.waves(deployment_id)}
        if dep["status"] != "running" or stored.get(index, {}).get("status") not in ("running",):
            return {"changed": False, "skipped": True, "wave": index, "name": wave["name"], "aborted": dep["status"] == "failed",
                    "finished": dep["status"] != "running", "deployment_id": deployment_id,
                    "halt": dep["status"] != "running", "outcomes": wakeup_outcomes(store, deployment_id, wave, skipped=True),
                    "line": "wave %d %s: skipped (deployment %s)" % (index, wave["name"], dep["status"])}
        rows = {r["host"]: r for r in store.agents(deployment_id)}
        # already awake: nothing to gate; not stopped (recorded by prepare): a failure already
        failures = {m["name"]: rows[m["name"]]["result_detail"] for m in wave["members"]
                    if rows[m["name"]]["result"] == "unhealthy"}
        gated = [m["name"] for m in wave["members"] if rows[m["name"]]["result"] not in ("already_awake", "unhealthy")]
        urls = {m["name"]: m["agent_url"] for m in wave["members"]}
        expected = tuple(params.get("expected_states") or ("work",))
        result = None
        if gated:
            timeout = float(wave.get("timeout") or DEFAULT_WAVE_TIMEOUT)
            result = wait_for_wave(gated, health_check_fn(client, urls, expected, params.get("target_version")),
                                   min_stable_time=float(params.get("min_healthy_time") or 0.0), success_threshold=1.0,
                                   deadline=timeout, poll_interval=float(params.get("poll_interval") or 1.0), grace=0.0,
                                   clock=monotonic, sleep=sleep)
            ok = [{"host": n, "result": "awake", "version_after": result["agents"][n].get("version"),
                   "detail": "cognitive_state %s" % result["agents"][n].get("cognitive_state")} for n in result["stable"]]
            late = {n: "not %s within %ss: %s" % ("|".join(expected), secs(timeout), cause)
                    for n, cause in result["unstable"].items()}
            failures.update(late)
            store.set_results(deployment_id, ok + [{"host": n, "result": "unhealthy", "detail": d} for n, d in late.items()])
        return _gate_verdict(params, store, dep, wave, gated, failures, result, expected)


def _gate_verdict(params: Mapping[str, Any], store: StateStore, dep: Mapping[str, Any], wave: Mapping[str, Any],
                  gated: List[str], failures: Dict[str, str], result: Optional[Mapping[str, Any]],
                  expected: Tuple[str, ...]) -> Dict[str, Any]:
    """Judge a gated wave (:func:`._rollout.verdict.judge_occurrence_wave`), record it and, where it ends the
    deployment, the deployment; write the report."""
    deployment_id, index, plan = dep["deployment_id"], wave["index"], dep["plan"]
    agent_id = dep["params"]["agent_id"]
    awake = len([n for n in gated if n not in failures])
    verdict = judge_occurrence_wave(wave["name"], awake, failures, params.get("fail_on_partial", True), failed="unhealthy")
    stop_reason = verdict["stop_reason"]
    if index == 1 and not failures:
        explorer = wave["members"][0]
        store.record_shared_decision(agent_id, deployment_id, WAKEUP, "completed", None, explorer["name"],
                                     "explorer reached %s" % "|".join(expected))
    status = verdict["status"]
    store.wave_finished(deployment_id, index, status, {"failures": failures, "stop_reason": stop_reason,
                                                       "gated": gated, "elapsed": result["elapsed"] if result else 0})
    finished = False
    outcome = None
    if stop_reason:
        outcome = "wakeup stopped at wave %d (%s): %s; the later waves are left down" % (index, wave["name"], stop_reason)
        finish_abort(store, deployment_id, outcome)
        _mark_left_down(store, deployment_id)
        finished = True
    elif index == len(plan):
        outcome = finish_last_wave(store, deployment_id, "all occurrences of %s awake" % agent_id)
        finished = True
    report, path = write(store, params, deployment_id, {"outcome": outcome} if outcome else None,
                         [{"event": "wave_" + status, "wave": index, "name": wave["name"], "failures": failures}])
    out: Dict[str, Any] = {"changed": False, "wave": index, "name": wave["name"], "status": status,
                           "aborted": bool(stop_reason), "finished": finished, "failures": failures, "outcome": outcome,
                           "deployment_id": deployment_id, "report_path": path, "halt": verdict["halt"],
                           "outcomes": wakeup_outcomes(store, deployment_id, wave, tolerate_failures=verdict["tolerate_failures"]),
                           "line": "wave %d %s: %d awake, %d unhealthy%s" % (index, wave["name"], awake, len(failures),
                                                                             (" -> STOP: %s" % stop_reason) if stop_reason else "")}
    if finished:
        out["report"] = report
        out["failed_occurrences"] = sorted(all_failures(store, deployment_id))
        if deployment_should_fail(stop_reason, out["failed_occurrences"], params.get("fail_on_partial", True)):
            out["should_fail"] = True
    return out


def wakeup_abort(params: Mapping[str, Any], check_mode: bool = False, store: Optional[StateStore] = None) -> Dict[str, Any]:
    """The update driver failed to start a wave: record the occurrences it was
    starting (``hosts``) as failed with ``reason``, close the deployment
    failed (later waves left down) and write the report.
    """
    index = int(params["wave"])
    if check_mode:
        return {"changed": False, "skipped": True, "wave": index, "aborted": True, "finished": True,
                "line": "wave %d: would record the failed start" % index}
    with engine_store(params, store) as store:
        dep = store.get_deployment(params["deployment_id"])
        if dep is None:
            raise ShutdownError("no deployment %s: run the prepare step first" % params["deployment_id"])
        deployment_id = dep["deployment_id"]
        plan = dep["plan"]
        if index < 1 or index > len(plan):
            raise ShutdownError("deployment %s has %d waves, no wave %d" % (deployment_id, len(plan), index))
        wave = plan[index - 1]
        hosts = list(params.get("hosts") or [])
        cause = params.get("reason") or "the update driver failed"
        failures = {h: cause for h in hosts}
        if hosts:
            store.set_results(deployment_id, [{"host": h, "result": "failed", "detail": cause} for h in hosts])
        stop_reason = "%s wave could not be started (%s): %s" % (wave["name"], ", ".join(hosts) or "no occurrence", cause)
        outcome = "wakeup stopped at wave %d (%s): %s; the later waves are left down" % (index, wave["name"], stop_reason)
        store.wave_finished(deployment_id, index, "failed", {"failures": failures, "stop_reason": stop_reason})
        finish_abort(store, deployment_id, outcome)
        _mark_left_down(store, deployment_id)
        report, path = write(store, params, deployment_id, {"outcome": outcome},
                             [{"event": "wave_failed", "wave": index, "name": wave["name"], "failures": failures}])
        return {"changed": True, "wave": index, "name": wave["name"], "status": "failed", "aborted": True, "halt": True,
                "outcomes": wakeup_outcomes(store, deployment_id, wave),
                "finished": True, "failures": failures, "outcome": outcome, "deployment_id": deployment_id,
                "report_path": path, "report": report, "failed_occurrences": sorted(all_failures(store, deployment_id)),
                "should_fail": True, "line": "wave %d %s: start failed -> STOP: %s" % (index, wave["name"], stop_reason)}


def wakeup_outcomes(store: StateStore, deployment_id: str, wave: Mapping[str, Any], tolerate_failures: bool = False,
                    skipped: bool = False) -> Dict[str, Dict[str, Any]]:
    """Occurrence -> outcome (``result``, ``changed``, ``failed``, ``detail``) of one wakeup wave, for its PLAY
    RECAP row (:func:`._outcome.member_outcomes` with :data:`._outcome.WAKEUP_OUTCOMES`): ``changed`` when this
    wave started it and it is awake, ``failed`` when it is unhealthy or its start failed unless
    ``tolerate_failures``, ``ok`` otherwise (already awake, left down, a wave that did not run: ``skipped``).
    """
    rows = {r["host"]: r for r in store.agents(deployment_id)}
    started = [name for name, row in rows.items() if ((row.get("extra") or {}).get("asked") or {}).get("action") == "start"]
    return member_outcomes(rows, [m["name"] for m in wave["members"]], WAKEUP_OUTCOMES, this_run=started,
                           tolerate_failures=tolerate_failures, skipped="skipped" if skipped else None)


def _last_known_versions(store: StateStore, dep: Mapping[str, Any]) -> Dict[str, str]:
    """The version each occurrence last ran, from the newest shutdown plans of this fleet key."""
    out: Dict[str, str] = {}
    for other in store.list_deployments(fleet_key=dep["fleet_key"], limit=20):
        for wave in other.get("plan") or []:
            for m in wave.get("members") or []:
                if m.get("version") and m["name"] not in out:
                    out[m["name"]] = m["version"]
    return out


def _mark_left_down(store: StateStore, deployment_id: str) -> None:
    rows = [r for r in store.agents(deployment_id) if r["result"] == "not_touched"]
    if rows:
        store.set_results(deployment_id, [{"host": r["host"], "result": "left_down", "detail": "wakeup stopped before its wave"} for r in rows])
