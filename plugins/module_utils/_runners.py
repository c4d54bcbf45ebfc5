# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Entry points shared by each module and its action plugin.

``run_<name>(params, check_mode)`` takes validated parameters and returns the
result dict; both the module's ``main()`` and the controller-side action
plugin call it, so the two cannot drift apart. The argument specs that
validate those parameters are ``_argspecs``'.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from typing import Any
from typing import Callable
from typing import Dict
from typing import List
from typing import NoReturn
from typing import Optional
from typing import Tuple

from ansible_collections.agentfleet.rollout.plugins.module_utils._argspecs import OPERATOR_STATES
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import client_from_params
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import token_secrets
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import validate_agent_urls
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import gate_agents
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import validate_gate_params
from ansible_collections.agentfleet.rollout.plugins.module_utils import _lifecycle as lifecycle
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import report_totals as occurrence_totals
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import decision_auditor
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import iso_or_none
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import append_audit
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import write_report
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.errors import RolloutError
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.deployment import begin
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.ask import build_reason
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.report import build_report
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.deployment import close_deployment
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.ask import notify_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.verdict import record_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.report import report_totals
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.deployment import run_plan
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.verdict import start_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.report import summary_table
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateError
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import break_lock
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import lock_breaker
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import open_store
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import state_exists

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._run import Run
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateStore

ENGINE_ERRORS = (RolloutError, StateError, ValueError, lifecycle.LifecycleError)


def run_notify(params: Dict[str, Any], check_mode: bool = False, clock: Callable[[], float] = time.time,
               sleep: Callable[[float], None] = time.sleep, run: Optional[Run] = None) -> Dict[str, Any]:
    """The notify module; with a :class:`._run.Run` every request and wait checks it first."""
    agents = params["agents"]
    sleep = run.sleep if run is not None else sleep
    validate_agent_urls(agents)
    reason = params.get("reason") or build_reason(
        params["target_version"], params["deployment_id"], params.get("release_notes"), params.get("wave_name"),
        params.get("wave_index"), params.get("wave_count"), params.get("previous_waves"), params.get("force"),
        params.get("strategy") or "canary",
    )
    store = open_store(params["state_path"]) if params.get("state_path") and not check_mode else None
    audit = decision_auditor(params.get("audit_path"), params["deployment_id"], agents, token_secrets(params))
    try:
        with client_from_params(params, run=run) as client:
            result: Dict[str, Any] = notify_wave(
                client, agents, params["deployment_id"], params["target_version"], reason,
                force=params.get("force"), scope=params.get("scope"), decision_ref=params.get("decision_ref"),
                store=store, reask_until=params.get("reask_until"), skip_if_on_target=params.get("skip_if_on_target", True),
                check_mode=check_mode, clock=clock, sleep=sleep, on_answers=audit,
            )
    finally:
        if store is not None:
            store.close()
    result["reason"] = reason
    return result


def run_gate(params: Dict[str, Any], check_mode: bool = False, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep, run: Optional[Run] = None) -> Dict[str, Any]:
    """The health_gate module; with a :class:`._run.Run` every probe and wait checks it first."""
    agents = params["agents"]
    sleep = run.sleep if run is not None else sleep
    validate_agent_urls(agents)
    validate_gate_params(params)
    if check_mode:
        return {"changed": False, "passed": True, "skipped": True, "msg": "check mode: gate not waited for",
                "stable": [], "unstable": {}, "agents": {}, "total": len(agents), "stable_count": 0,
                "required": 0, "elapsed": 0.0, "reason": "check mode", "table": []}
    with client_from_params(params, run=run) as client:
        result: Dict[str, Any] = gate_agents(client, agents, params, params.get("target_version"), clock=clock, sleep=sleep)
    result["changed"] = False
    if not result["passed"] and params.get("fail_on_unhealthy", True):
        result["failed"] = True
        result["msg"] = "health gate failed: %d/%d stable, %d required (%s)\n%s" % (
            result["stable_count"], result["total"], result["required"], result["reason"], "\n".join(result["table"]))
    return result


def _read_only_store(state_path: str) -> Optional[StateStore]:
    """The state file opened for reading, or None when it does not exist (it is not created)."""
    if not state_exists(state_path):
        return None
    try:
        store: StateStore = open_store(state_path)
    except StateError:
        return None
    return store


def run_deployment(params: Dict[str, Any], check_mode: bool = False, clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> Dict[str, Any]:
    """The ``deployment`` module: bring one deployment to the state asked for.

    ``running`` records a new deployment, or resumes, retries or promotes one, and returns what to run;
    ``staged`` records the plan only; ``present`` stages it unless it is recorded already;
    ``promoted`` / ``resumed`` continue the key's staged or paused deployment; ``rolled_back`` records a
    new deployment back to an earlier completed version; ``paused`` / ``failed`` (without
    ``status_reason``) are the operator's (docs/lifecycle.md); ``closed`` ends it with the status its
    agents' results give; any other state ends it with that status.
    """
    state = params["state"]
    params = dict(params, actor=params.get("actor") or lifecycle.actor())
    if state in ("running", "staged"):
        return _open_deployment(params, stage=state == "staged", check_mode=check_mode)
    if state == "promoted":
        return _open_deployment(dict(params, promote=True), stage=False, check_mode=check_mode)
    if state == "present":
        return _present(params, check_mode)
    if state == "resumed":
        return _resume(params, check_mode)
    if state == "rolled_back":
        return _rollback(params, check_mode)
    if state in OPERATOR_STATES and params.get("status_reason") is None:
        return _operator(params, check_mode, clock, sleep)
    if check_mode:
        return {"changed": True, "msg": "check mode: deployment %s not closed" % params["deployment_id"]}
    dep_id = params["deployment_id"]
    with open_store(params["state_path"]) as store:
        if store.get_deployment(dep_id) is None:
            raise RolloutError("unknown deployment %s in %s" % (dep_id, params["state_path"]))
        summary = close_deployment(store, dep_id, halt_reason=params.get("status_reason"),
                                   report_path=params.get("report_path"), audit_path=params.get("audit_path"),
                                   secrets=token_secrets(params), status=None if state == "closed" else state)
        report = build_report(store, dep_id)
    return {"changed": True, "deployment_id": dep_id, "status": summary["status"], "report": report,
            "summary_table": summary["summary_table"], "report_path": params.get("report_path"),
            "deployment_summary": summary}


def _key(params: Dict[str, Any]) -> Optional[str]:
    key: Optional[str] = params.get("deployment_key") or params.get("fleet_key")
    return key


def _record(params: Dict[str, Any]) -> Dict[str, Any]:
    """The deployment record's fields of a new deployment (who, why, key, policy)."""
    return {"deployment_key": _key(params), "policy": params.get("policy") or {}, "actor": params.get("actor"),
            "reason": params.get("reason"), "rollback_to": params.get("rollback_to")}


def _present(params: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    store = _read_only_store(params["state_path"])
    try:
        dep = store.get_deployment(params["deployment_id"]) if store is not None else None
    finally:
        if store is not None:
            store.close()
    if dep is None:
        return _open_deployment(params, stage=True, check_mode=check_mode)
    with open_store(params["state_path"]) as store:
        out: Dict[str, Any] = lifecycle.record(store, dep)
    out.update(changed=False, mode="present")
    out.update(run_plan([], None))
    out["plan"] = [{"index": w["index"], "name": w["name"], "size": w["size"]} for w in dep["plan"]]
    return out


def _key_store(params: Dict[str, Any]) -> StateStore:
    """The state of a deployment key's lifecycle step (resume, rollback), or RolloutError when there is none."""
    store = _read_only_store(params["state_path"])
    if store is None:
        raise RolloutError("deployment_key: no deployment recorded for %r (no state file %s)"
                           % (_key(params), params["state_path"]))
    return store


def _resume(params: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    """Continue the key's paused (or interrupted) deployment: the pause is lifted for a rollout that has not
    stopped yet; else the plan to run again (the rerun continues where it stopped)."""
    store = _key_store(params)
    try:
        dep = lifecycle.resolve(store, _key(params), params.get("deployment_id"))
        if dep["status"] not in ("paused", "interrupted", "running"):
            raise RolloutError("deployment %s (version %s of %s) is %s: nothing to resume"
                               % (dep["deployment_id"], dep.get("version"), _key(params), dep["status"]))
        if dep["status"] == "paused" and not check_mode:
            lifted, dep = lifecycle.lift_pause(store, dep, params.get("reason"), params["actor"], params.get("audit_path"))
            if lifted:
                out = {"changed": True, "mode": "lifted", "deployment_id": dep["deployment_id"],
                       "target_version": dep["target_version"], "strategy": dep["strategy"], "status": dep["status"],
                       "already_complete": False, "started_epoch": dep.get("started_at") or dep["created_at"],
                       "resumed_after": None, "deployment_key": dep.get("deployment_key"), "version": dep.get("version"),
                       "msg": "the pause was lifted before the rollout stopped: it goes on"}
                out.update(run_plan([], None))
                out["plan"] = []
                return out
        if params.get("audit_path") and not check_mode:
            append_audit(params["audit_path"], {"event": "deployment_resume", "deployment_id": dep["deployment_id"],
                                                "deployment_key": dep.get("deployment_key"),
                                                "version": dep.get("version"), "actor": params["actor"],
                                                "reason": params.get("reason"), "continued": "a rerun"})
    finally:
        store.close()
    return _open_deployment(dict(params, deployment_id=dep["deployment_id"], fleet_key=dep["fleet_key"],
                                 strategy=dep["strategy"], target_version=dep["target_version"], waves=dep["plan"],
                                 promote=False), stage=False, check_mode=check_mode)


def _rollback(params: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    """A new deployment of the key back to version ``rollback_to``'s target (default: the key's rollback
    target), through the usual consent flow; ``waves`` is its plan (one wave to skip the canary)."""
    store = _key_store(params)
    try:
        key = _key(params)
        if not key:
            raise lifecycle.LifecycleError("deployment_key: a rollback needs a deployment key (deployment_key or fleet_key)")
        newest = store.history(key, limit=1)
        current = newest[0] if newest else None
        source = lifecycle.rollback_source(store, key, params.get("rollback_to"), latest=current)
        dep_id = params.get("deployment_id") or lifecycle.rollback_id(store, key, source)
    finally:
        store.close()
    record_params = dict(params, rollback_to=source["version"])
    out = _open_deployment(dict(record_params, deployment_id=dep_id, strategy="rollback",
                                target_version=source["target_version"], promote=False),
                           stage=False, check_mode=check_mode)
    out["rollback_to"] = source["version"]
    out["rollback_from"] = current["version"] if current else None
    return out


def _operator(params: Dict[str, Any], check_mode: bool, clock: Callable[[], float],
              sleep: Callable[[float], None]) -> Dict[str, Any]:
    """pause or fail, by deployment id or key (its newest version)."""
    state = params["state"]
    store = _read_only_store(params["state_path"])
    if store is None:
        if check_mode:
            return {"changed": True, "msg": "check mode: no state file %s yet" % params["state_path"]}
        raise RolloutError("deployment_key: no deployment recorded (no state file %s)" % params["state_path"])
    try:
        dep = lifecycle.resolve(store, _key(params), params.get("deployment_id"))
        if check_mode:
            would = dep["status"] in (lifecycle.PAUSABLE if state == "paused" else lifecycle.FAILABLE)
            return {"changed": would, "deployment_id": dep["deployment_id"], "status": dep["status"],
                    "msg": "check mode: deployment %s not %s" % (dep["deployment_id"], state)}
        if state == "paused":
            changed, dep = lifecycle.pause(store, dep, params.get("reason"), params["actor"], params.get("audit_path"))
            result: Dict[str, Any] = {"changed": changed}
        else:
            # the driver's revert(agents) -> (reverted names, {name: why not}) (lifecycle.fail)
            revert: Optional[Callable[[List[Dict[str, Any]]], Tuple[List[str], Dict[str, str]]]] = None
            if params.get("auto_revert"):
                revert = _reverter(params)
            result = lifecycle.fail(store, dep, params.get("reason"), params["actor"], params.get("audit_path"),
                                    revert=revert, wait=params["revert_wait"], clock=clock, sleep=sleep)
        out: Dict[str, Any] = lifecycle.record(store, lifecycle.reread(store, dep["deployment_id"]), detail=True)
        report = build_report(store, dep["deployment_id"])
    finally:
        store.close()
    if params.get("report_path"):
        write_report(params["report_path"], report)
    out.update(result)
    out.update(changed=result["changed"], report=report, summary_table=summary_table(report))
    return out


def _reverter(params: Dict[str, Any]) -> NoReturn:
    """An operator's fail cannot put agents back from outside a wave: no driver starts a version from the
    controller (the tasks and docker drivers run on the agents' hosts inside a wave, with rollout_auto_revert)."""
    raise ValueError("auto_revert: the %s driver cannot put agents back from outside a wave; a wave with "
                     "rollout_auto_revert reverts its own agents (the tasks and docker drivers), or roll back with "
                     "agentfleet.rollout.rollback" % params["driver"])


def _open_deployment(params: Dict[str, Any], stage: bool, check_mode: bool) -> Dict[str, Any]:
    dep_id = params.get("deployment_id")
    promote = bool(params.get("promote"))
    if stage and promote:
        raise ValueError("promote: a deployment cannot be staged and promoted at once (state: staged)")
    if not promote:
        if not dep_id:
            raise ValueError("deployment_id is required to start a deployment (unless promote: true)")
        if not params.get("target_version"):
            raise ValueError("target_version is required to start a deployment (unless promote: true)")
    args = (dep_id, params["fleet_key"], params["strategy"], params.get("target_version"),
            _checked_waves(params.get("waves") or []), params.get("params") or {})
    hosts, limit = params.get("play_hosts"), params.get("limit")
    if check_mode:
        # read-only: what a real run would do; a state file that does not exist yet is not created
        store = _read_only_store(params["state_path"])
        try:
            planned: Dict[str, Any] = begin(store, *args, check_mode=True, promote=promote, hosts=hosts, limit=limit)
            return planned
        finally:
            if store is not None:
                store.close()
    broken: Optional[Dict[str, Any]] = None
    if params.get("break_lock_reason"):
        broken = break_lock(params["state_path"], params["fleet_key"], params["break_lock_reason"], lock_breaker())
        if params.get("audit_path") and broken["broken"]:
            append_audit(params["audit_path"], {"event": "lock_broken", "fleet_key": params["fleet_key"],
                                                "deployment_id": broken["deployment_id"], "reason": broken["reason"],
                                                "by": broken["by"]})
    with open_store(params["state_path"], lock_ttl=params.get("lock_ttl")) as store:
        out: Dict[str, Any] = begin(store, *args, stage=stage, takeover=bool(params.get("takeover")), promote=promote, hosts=hosts,
                                    limit=limit, record=_record(params))
    if broken is not None:
        out["lock_broken"] = broken
    if params.get("audit_path") and out["mode"] != "complete":
        append_audit(params["audit_path"], {"event": "deployment_" + out["mode"], "deployment_id": out["deployment_id"],
                                            "strategy": out.get("strategy"), "target_version": out["target_version"],
                                            "deployment_key": out.get("deployment_key"), "version": out.get("version"),
                                            "actor": params.get("actor"), "reason": params.get("reason"),
                                            "waves": [(w["name"], w["size"]) for w in out["waves"]]})
    return out


def _checked_waves(waves: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The wave plan of ``waves`` (wave_split's result), checked: one clear error naming the field, else the plan
    with each wave's ``size``."""
    plan: List[Dict[str, Any]] = []
    for i, wave in enumerate(waves):
        where = "waves[%d]" % i
        if not isinstance(wave.get("index"), int) or isinstance(wave.get("index"), bool):
            raise ValueError("%s.index: an integer is required (use the waves of agentfleet.rollout.wave_split)" % where)
        if not isinstance(wave.get("name"), str) or not wave["name"]:
            raise ValueError("%s.name: a non-empty string is required" % where)
        members = wave.get("members")
        if not isinstance(members, list) or not all(isinstance(m, dict) and isinstance(m.get("name"), str) for m in members):
            raise ValueError("%s.members: a list of agents, each a dict with a name, is required" % where)
        plan.append(dict(wave, size=len(members)))
    return plan


def run_deployment_info(params: Dict[str, Any], check_mode: bool = False) -> Dict[str, Any]:
    """The ``deployment_info`` module: one deployment's report, and the deployments of a fleet, newest first."""
    if params["max_deployments"] < 1:
        raise ValueError("max_deployments must be at least 1, got %d" % params["max_deployments"])
    store = _read_only_store(params["state_path"])
    out: Dict[str, Any] = {"changed": False, "deployments": [], "report": None, "summary_table": [], "keys": [],
                           "status": None, "history": []}
    if store is None:
        return out
    try:
        dep_id = params.get("deployment_id")
        key = params.get("deployment_key")
        if key:
            out["status"] = lifecycle.status(store, key, dep_id, params.get("version"))
            out["history"] = lifecycle.history(store, key, limit=params["max_deployments"])
            out["status_lines"] = lifecycle.status_lines(out["status"])
            out["history_lines"] = lifecycle.history_lines(out["history"])
            dep_id = out["status"]["deployment_id"]
        if dep_id:
            dep = store.get_deployment(dep_id)
            if dep is None:
                raise RolloutError("unknown deployment %s in %s" % (dep_id, params["state_path"]))
            out["report"] = build_report(store, dep_id)
            out["summary_table"] = summary_table(out["report"])
            out["deployments"] = [_deployment_entry(store, dep, out["report"]["totals"])]
        else:
            deps = store.list_deployments(fleet_key=params.get("fleet_key"), limit=params["max_deployments"])
            out["deployments"] = [_deployment_entry(store, d) for d in deps]
            out["keys"] = lifecycle.keys(store)
            out["keys_lines"] = lifecycle.keys_lines(out["keys"])
    finally:
        store.close()
    return out


def _deployment_entry(store: StateStore, dep: Dict[str, Any], totals: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """One deployment as deployment_info lists it (the report's top level, without its agents); ``totals`` when
    the report is already built, else one counting query."""
    if totals is None:
        totals = (occurrence_totals if dep["strategy"] in ("shutdown", "wakeup") else report_totals)(store, dep)
    return {
        "deployment_id": dep["deployment_id"], "fleet_key": dep["fleet_key"], "strategy": dep["strategy"],
        "deployment_key": dep.get("deployment_key"), "version": dep.get("version"),
        "target_version": dep.get("target_version"), "status": dep["status"], "message": dep.get("message"),
        "limit": (dep.get("params") or {}).get("limit"), "active": store.lease_live(dep),
        "created_at": iso_or_none(dep["created_at"]), "started_at": iso_or_none(dep.get("started_at")),
        "finished_at": iso_or_none(dep.get("finished_at")),
        "totals": totals,
    }


def run_state(params: Dict[str, Any], check_mode: bool = False) -> Dict[str, Any]:
    """The ``rollout_state`` module: record a wave's start, agents' results and a wave's verdict."""
    if check_mode:
        return {"changed": False, "msg": "check mode: state not written"}
    op = params["op"]
    dep_id = params["deployment_id"]
    with open_store(params["state_path"]) as store:
        dep = store.get_deployment(dep_id)
        if dep is None:
            raise RolloutError("unknown deployment %s in %s" % (dep_id, params["state_path"]))
        if op == "wave_start":
            lines = start_wave(store, dep_id, params["wave"], params.get("wave_name"), params.get("audit_path"))
            return {"changed": True, "previous_waves": lines}
        if op == "mark":
            results = list(params.get("results") or [])
            if params.get("hosts"):
                if not params.get("result"):
                    raise ValueError("result: required when hosts is given (op=mark)")
                results += [{"host": h, "result": params["result"], "detail": params.get("detail")} for h in params["hosts"]]
            store.set_results(dep_id, results)
            store.heartbeat(dep_id)
            return {"changed": bool(results), "marked": len(results)}
        summary = record_wave(store, dep_id, params["wave"], params["wave_name"], params.get("wave_count") or len(dep["plan"]),
                              dep["target_version"], params.get("gate"), params.get("updated_hosts") or [],
                              params.get("reverted_hosts") or [], success_threshold=params.get("success_threshold"),
                              gate_skipped=params.get("gate") is None, audit_path=params.get("audit_path"))
        return {"changed": True, "summary": summary, "line": summary["line"], "passed": summary["passed"]}
