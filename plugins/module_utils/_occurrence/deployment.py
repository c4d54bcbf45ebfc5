# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A shutdown or wakeup deployment in the rollout state, and its JSON report.

Everything the engines need from :mod:`._state` goes through here (public
store methods only): opening the store, creating or resuming the deployment,
per-occurrence extras (asked / drained / exited), closing it, and the report
rebuilt from state after every step.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any
from typing import Callable
from typing import Dict
from typing import Iterable
from typing import Iterator
from typing import Mapping
from typing import Optional
from typing import Sequence
from typing import Tuple
from typing import TYPE_CHECKING

from ansible_collections.agentfleet.rollout.plugins.module_utils._common import client_from_params
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import token_secrets
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import DEFAULT_STATE_PATH
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import EPS
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import fallback_decision_id
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import SHUTDOWN
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import ShutdownError
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.plan import lowest_fractions
from ansible_collections.agentfleet.rollout.plugins.module_utils._outcome import OCCURRENCE_FAILURES
from ansible_collections.agentfleet.rollout.plugins.module_utils import _report
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import append_audit
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import utcnow_iso
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import write_report
from ansible_collections.agentfleet.rollout.plugins.module_utils._run import Interrupted
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import open_store
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import state_exists

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.liveness import StopTimeline
    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
    from ansible_collections.agentfleet.rollout.plugins.module_utils._run import Run
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateStore

# results after which an occurrence no longer serves (a shutdown does not ask it again)
DOWN_RESULTS = ("stopped", "already_down")
# results that make a finished deployment fail (and the occurrence's PLAY RECAP row)
FAILED_RESULTS = OCCURRENCE_FAILURES


def open_state(params: Mapping[str, Any], create: bool = True) -> Optional[StateStore]:
    """The rollout state of ``params["state_path"]``; None when ``create`` is False and there is none."""
    path = params.get("state_path") or DEFAULT_STATE_PATH
    if not create and not state_exists(path):
        return None
    return _open(params)


def _open(params: Mapping[str, Any]) -> StateStore:
    """The rollout state of ``params["state_path"]``, created when there is none."""
    store: StateStore = open_store(params.get("state_path") or DEFAULT_STATE_PATH)
    return store


@contextlib.contextmanager
def engine_store(params: Mapping[str, Any], store: Optional[StateStore] = None, run: Optional[Run] = None) -> Iterator[StateStore]:
    """The store of one engine call: the caller's when given, else opened here and closed when the call ends.

    A deployment the engine fenced (:func:`fence_run`) is recorded ``interrupted`` when SIGTERM or SIGINT
    stops the call.
    """
    opened = store if store is not None else _open(params)
    try:
        yield opened
    except Interrupted as exc:
        _record_interrupted(opened, run, str(exc))
        raise
    finally:
        if store is None:
            opened.close()


@contextlib.contextmanager
def engine_resources(params: Mapping[str, Any], store: Optional[StateStore] = None, client: Optional[AgentClient] = None,
                     run: Optional[Run] = None) -> Iterator[Tuple[StateStore, AgentClient]]:
    """``(store, client)`` of one engine call: the caller's when given (tests, one action doing several
    steps), else opened here and closed when the call ends (:func:`engine_store` for the store).

    With a :class:`._run.Run` the client carries the run's id and checks it before every request;
    a deployment the engine fenced (:func:`fence_run`) is recorded ``interrupted`` when SIGTERM or
    SIGINT stops the call.
    """
    with engine_store(params, store, run) as opened:
        if client is not None:
            yield opened, client
            return
        own: AgentClient = client_from_params(params, run=run)
        try:
            yield opened, own
        finally:
            own.close()


def fence_run(run: Optional[Run], store: StateStore, dep: Optional[Mapping[str, Any]]) -> None:
    """From now on ``run`` (when given) refuses every write and request once a newer run of ``dep`` took over."""
    if run is None or dep is None:
        return
    store.fence(dep["deployment_id"], dep["generation"])
    run.fence = store.check_fence
    run.deployment_id = dep["deployment_id"]


def _record_interrupted(store: StateStore, run: Optional[Run], why: str) -> None:
    deployment_id = getattr(run, "deployment_id", None)
    if not deployment_id:
        return
    dep = store.get_deployment(deployment_id)
    if dep is not None and dep["status"] == "running":
        store.set_status(deployment_id, "interrupted", "%s; rerun the playbook to resume deployment %s"
                         % (why, deployment_id))


def begin(store: StateStore, params: Mapping[str, Any], plan: Mapping[str, Any], kind: str,
          clock: Callable[[], float]) -> Tuple[Dict[str, Any], str, Optional[str]]:
    """Create, resume or find the deployment of this run: ``(deployment, mode, resumed_from)``.

    A deployment of the same kind for the same fleet key that was interrupted
    (its controller is gone) is resumed under its own id, so that a rerun
    after a controller crash continues it instead of starting over.
    """
    fleet_key = plan["fleet_key"]
    deployment_id = params["deployment_id"]
    resumed_from = None
    for other in store.active_for_fleet(fleet_key, exclude=deployment_id):
        if other["strategy"] == kind and not store.lease_live(other):
            resumed_from = deployment_id
            deployment_id = other["deployment_id"]
            break
    stored_params = {
        "kind": kind, "agent_id": plan["agent_id"], "reason": plan.get("reason"), "message": plan.get("message"),
        "left_out": plan.get("left_out") or [], "unknown": plan.get("unknown") or [], "total": plan.get("total"),
        "serving": plan.get("serving"), "min_serving_fraction": plan.get("min_serving_fraction") or 0.0,
        "below_floor": plan.get("below_floor"), "limit": plan.get("limit"),
        "max_age": params.get("max_age"),
        "stop_timeout": params.get("stop_timeout"),
    }
    dep, mode = store.create_or_resume(deployment_id, fleet_key, kind, "", plan["waves"], stored_params,
                                       takeover=bool(params.get("takeover")))
    return dep, mode, resumed_from


def shared_for(store: StateStore, dep: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The shared decision recorded for this deployment (None before anyone decided)."""
    params = dep["params"]
    decision: Optional[Dict[str, Any]] = store.shared_decision(params["agent_id"], params["kind"], deployment_id=dep["deployment_id"])
    return decision


def current_deployment(store: StateStore, deployment_id: str) -> Dict[str, Any]:
    """The deployment as the state holds it now (ShutdownError for an unknown one)."""
    dep = store.get_deployment(deployment_id)
    if dep is None:
        raise ShutdownError("unknown deployment %s" % deployment_id)
    return dep


def recorded_decision(store: StateStore, agent_id: str, kind: str, deployment_id: str) -> Dict[str, Any]:
    """The shared decision just recorded for ``deployment_id`` (ShutdownError in the impossible case it is gone)."""
    decision = store.shared_decision(agent_id, kind, deployment_id=deployment_id)
    if decision is None:
        raise ShutdownError("deployment %s: the shared decision just recorded is missing from the state" % deployment_id)
    return decision


def set_extra(store: StateStore, deployment_id: str, items: Mapping[str, Mapping[str, Any]]) -> None:
    """Merge per-occurrence extras (what it was asked, its batch, drained/exited times...) into state."""
    if items:
        store.merge_agent_extra(deployment_id, items)


def record_timeline(store: StateStore, deployment_id: str, timeline: StopTimeline, names: Iterable[str]) -> None:
    """Store ``drained_at`` / ``exited_at`` (first seen draining / stopped) of ``names`` from a timeline."""
    items: Dict[str, Dict[str, Optional[str]]] = {}
    for n in names:
        entry = timeline.get(n)
        data: Dict[str, Optional[str]] = {}
        for key in ("drained_at", "exited_at"):
            if entry[key] is not None:
                data[key] = utcnow_iso(entry[key])
        if data:
            items[n] = data
    set_extra(store, deployment_id, items)


def set_results_not_touched(store: StateStore, deployment_id: str, result: str = "not_touched",
                            detail: Optional[str] = None) -> None:
    rows = [r for r in store.agents(deployment_id) if not r["result"]]
    if rows:
        store.set_results(deployment_id, [{"host": r["host"], "result": result, "detail": detail} for r in rows])


def all_failures(store: StateStore, deployment_id: str) -> Dict[str, str]:
    """Occurrence -> why it failed, over the whole deployment (what makes a finished deployment fail)."""
    return {r["host"]: r["result_detail"] or r["result"] for r in store.agents(deployment_id)
            if r["result"] in FAILED_RESULTS}


def finish_last_wave(store: StateStore, deployment_id: str, done: str) -> str:
    """Close a deployment after its last wave: ``completed`` (``done`` says so) or, when some occurrence
    failed (:func:`all_failures`), ``failed`` with ``completed with failures: ...``; returns the outcome."""
    failures = all_failures(store, deployment_id)
    outcome = ("completed with failures: %s" % "; ".join("%s %s" % kv for kv in sorted(failures.items()))
               if failures else done)
    store.set_status(deployment_id, "failed" if failures else "completed", outcome)
    return outcome


def finish_abort(store: StateStore, deployment_id: str, msg: str, status: str = "failed") -> None:
    store.set_status(deployment_id, status, msg)
    set_results_not_touched(store, deployment_id)
    for w in store.waves(deployment_id):
        if w["status"] == "pending":
            store.wave_finished(deployment_id, w["wave"], "skipped", {"reason": "rollout stopped"})


def decision_ref_of(decision: Mapping[str, Any], agent_id: str) -> str:
    """The ``decision_ref`` followers are sent: the recorded id, never empty."""
    ref: str = decision.get("decision_id") or fallback_decision_id(agent_id, decision.get("deployment_id"))
    return ref


def decision_out(decision: Optional[Mapping[str, Any]], reused: bool, agent_id: Optional[str] = None) -> Optional[Dict[str, Any]]:
    if not decision:
        return None
    agent_id = agent_id or decision.get("agent_id")
    made_here = decision.get("decision_id") == fallback_decision_id(agent_id, decision.get("deployment_id"))
    return {
        "decision": decision["decision"],
        "decision_id": decision.get("decision_id"),
        "decision_id_origin": "collection" if made_here else "agent",
        "decided_by": decision.get("decided_by"),
        "decided_at": utcnow_iso(decision["decided_at"]) if decision.get("decided_at") else None,
        "reason": decision.get("reason"),
        "defer_until": utcnow_iso(decision["defer_until"]) if decision.get("defer_until") else None,
        "reused": bool(reused),
        "from_deployment": decision.get("deployment_id"),
    }


# ----------------------------------------------------------------------------- the report

def report_paths(params: Mapping[str, Any], deployment_id: str) -> Tuple[str, str]:
    report = os.path.expanduser(params.get("report_path") or "~/.agentfleet/reports/%s.json" % deployment_id)
    audit = params.get("audit_path")
    if not audit:
        audit = (report[:-5] if report.endswith(".json") else report) + ".audit.jsonl"
    return report, os.path.expanduser(audit)


def write(store: StateStore, params: Mapping[str, Any], deployment_id: str, extra: Optional[Mapping[str, Any]] = None,
          events: Optional[Sequence[Mapping[str, Any]]] = None) -> Tuple[Dict[str, Any], str]:
    """Rebuild the report from state, write it and append the audit ``events``: ``(report, path)``."""
    report_path, audit_path = report_paths(params, deployment_id)
    report = build_report(store, deployment_id, extra)
    secrets = token_secrets(params)
    write_report(report_path, report, secrets)
    if events:
        append_audit(audit_path, [dict(e, deployment_id=deployment_id) for e in events], secrets)
    return report, report_path


NOT_TOUCHED = "not_touched"  # an occurrence the deployment never reached


def build_report(store: StateStore, deployment_id: str, extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The JSON report of a shutdown or wakeup deployment: `_report.build_report` of kind ``shutdown`` or
    ``wakeup`` (one schema with the rollouts'), plus the plan, the shared decision and (shutdown) capacity."""
    dep = current_deployment(store, deployment_id)
    params = dep["params"]
    kind = params.get("kind", SHUTDOWN)
    decision = shared_for(store, dep) if kind == SHUTDOWN else None
    events = store.events(deployment_id)
    fields: Dict[str, Any] = {
        "agent_id": params.get("agent_id"),
        "outcome": (extra or {}).get("outcome") or dep.get("message"),
        "reason": params.get("reason"),
        "plan_message": params.get("message"),
        "decision": decision_out(decision, any(e["event"] == "shared_decision_reused" for e in events),
                                 params.get("agent_id")) if decision else None,
        "stop_timeout": params.get("stop_timeout"),
        "plan": [{"wave": w["index"], "name": w["name"], "size": w["size"], "delay": w.get("delay"),
                  "timeout": w.get("timeout"),
                  "batches": [b["members"] for b in (w.get("batches") or [])]} for w in dep["plan"]],
        "not_in_plan": params.get("left_out") or [],
        "unknown_agents": params.get("unknown") or [],
        "replaced_deployment": next((e["data"] for e in events if e["event"] == "replaced_stale_deployment"), None),
    }
    if kind == SHUTDOWN:
        fields["capacity"] = _capacity(params, store.waves(deployment_id))
    fields.update({k: v for k, v in (extra or {}).items() if k != "outcome"})
    report = _report.build_report(store, deployment_id, kind, unfinished=_not_touched,
                                  agent_fields=_occurrence_fields, fields=fields)
    if report is None:
        raise ShutdownError("unknown deployment %s" % deployment_id)
    return report


def _not_touched(dep: Mapping[str, Any]) -> str:
    """The result of an occurrence without one in a shutdown's or wakeup's report: never reached."""
    del dep
    return NOT_TOUCHED


def report_totals(store: StateStore, dep: Mapping[str, Any]) -> Dict[str, int]:
    """A shutdown's or wakeup's report ``totals``, from one counting query (no report built)."""
    totals: Dict[str, int] = _report.count_totals(store.result_counts(dep["deployment_id"]), unfinished=NOT_TOUCHED)
    return totals


def _occurrence_fields(row: Mapping[str, Any]) -> Dict[str, Any]:
    """What an occurrence's report entry adds: its batch, the request it got and its shutdown timeline."""
    extra = row.get("extra") or {}
    return {"batch": extra.get("batch"), "asked": extra.get("asked"), "own_decision": extra.get("own_decision", False),
            "drained_at": extra.get("drained_at"), "exited_at": extra.get("exited_at")}


def _capacity(params: Mapping[str, Any], waves: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    batches_by_wave = [[b for b in ((w.get("summary") or {}).get("batches") or [])
                        if b.get("sent") or b.get("serving_fraction") is not None] for w in waves]
    low, low_final = lowest_fractions(batches_by_wave)
    low_batch = lowest_fractions(batches_by_wave, "serving_fraction")[0]
    floor = float(params.get("min_serving_fraction") or 0.0)
    return {
        "min_serving_fraction": params.get("min_serving_fraction") or 0.0,
        "serving_at_start": params.get("serving"),
        # of the occurrences serving at the start (the whole fleet that was serving)
        "lowest_serving_fraction": low,
        "lowest_serving_fraction_final_wave": low_final,
        # of the occurrences still serving when a batch started: what the floor bounds
        "lowest_batch_serving_fraction": low_batch,
        "floor_kept_before_final_wave": (low_batch is None or low_batch + EPS >= floor),
        "below_floor_allowed": params.get("below_floor"),
    }
