# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deployment bookkeeping (the deployment and rollout_state modules): open a deployment and close it.

:func:`begin` creates, stages, promotes, resumes or retries a deployment and says what to run;
:func:`close_deployment` ends it: its status, the report and the audit line.
"""

from __future__ import annotations

import time
from typing import Any
from typing import Dict
from typing import Iterable
from typing import List
from typing import Mapping
from typing import Optional
from typing import Sequence
from typing import Set
from typing import TYPE_CHECKING

from ansible_collections.agentfleet.rollout.plugins.module_utils._policy import waves_to_run
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import append_audit
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import write_report
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.errors import RolloutError
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.report import build_report
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.report import summary_table

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateStore


def begin(store: Optional[StateStore], deployment_id: Optional[str], fleet_key: str, strategy: str,
          target_version: Optional[str], waves: List[Dict[str, Any]], params: Optional[Mapping[str, Any]],
          stage: bool = False, promote: bool = False, takeover: bool = False, check_mode: bool = False,
          hosts: Optional[Iterable[str]] = None, limit: Optional[str] = None,
          record: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Create, stage, promote, resume or retry a deployment; return what to run.

    ``waves`` is the freshly computed plan; on resume, retry or promote the plan
    stored with the deployment wins (membership is fixed per deployment).
    ``hosts`` are the play's hosts (after ``--limit``): the waves to run keep
    only those members, and ``order`` / ``batches`` give the play its hosts in
    wave order and its ``serial`` batch sizes (one batch per non-empty wave).
    ``limit`` (the ``--limit`` pattern) is recorded with the deployment. ``record``: the deployment
    record's fields of a new deployment (see :meth:`._state.StateStore.create_or_resume`).
    """
    if promote:
        # check mode without a state file (store None): nothing staged to promote
        existing = None if store is None else store.get_deployment(deployment_id) if deployment_id else (
            store.promotable_for_fleet(fleet_key) or store.promoted_for_fleet(fleet_key))
        if existing is None or existing["status"] not in ("staged", "running", "paused", "interrupted", "completed_with_failures",
                                                          "failed", "completed"):
            raise RolloutError("no staged deployment %sfor fleet %r to promote: run agentfleet.rollout.manual first"
                               % ((deployment_id + " ") if deployment_id else "", fleet_key))
        deployment_id = existing["deployment_id"]
        target_version = existing["target_version"]
        strategy = existing["strategy"]
        waves = existing["plan"]
    params = dict(params or {}, limit=limit or None)
    if check_mode:
        existing = store.get_deployment(deployment_id) if store is not None and deployment_id is not None else None
        plan = existing["plan"] if existing else waves
        out: Dict[str, Any] = {"changed": existing is None or existing["status"] not in ("completed", "aborted"),
                               "mode": "check", "deployment_id": deployment_id, "target_version": target_version,
                               "already_complete": bool(existing and existing["status"] in ("completed", "aborted")),
                               "started_epoch": time.time(), "status": existing["status"] if existing else "new"}
        out.update(_run_plan(plan, hosts))
        return out
    if store is None:
        # only check mode runs without the state (a file that does not exist yet)
        raise RolloutError("deployment %s: no rollout state to record it in" % deployment_id)
    if deployment_id is None or target_version is None:
        # the caller requires both unless promote, which takes them from the deployment it promotes
        raise RolloutError("deployment_id and target_version are required to start a deployment (unless promote: true)")
    before = store.get_deployment(deployment_id)
    dep, mode = store.create_or_resume(deployment_id, fleet_key, strategy, target_version, waves, params,
                                       stage_only=stage, takeover=takeover, record=record, promote=promote)
    if mode in ("resumed", "retry", "promoted"):
        store.update_params(deployment_id, dict({"limit": params["limit"]}, **({"promoted": True} if promote else {})))
        resumed = store.get_deployment(deployment_id)
        if resumed is None:
            raise RolloutError("deployment %s is gone from the rollout state" % deployment_id)
        dep = resumed
    out = {
        "changed": mode in ("new", "staged", "promoted", "resumed", "retry"),
        "mode": mode,
        "deployment_id": deployment_id,
        "target_version": dep["target_version"],
        "strategy": dep["strategy"],
        "status": dep["status"],
        "already_complete": mode == "complete",
        "started_epoch": dep.get("started_at") or dep["created_at"],
        "resumed_after": _resumed_after(before) if mode in ("resumed", "promoted") else None,
        "deployment_key": dep.get("deployment_key"),
        "version": dep.get("version"),
    }
    out.update(_run_plan(waves_to_run(dep["plan"], dep["params"], promote) if mode not in ("complete", "staged") else [],
                         hosts))
    out["plan"] = [{"index": w["index"], "name": w["name"], "size": w["size"]} for w in dep["plan"]]
    return out


def run_plan(plan: Sequence[Mapping[str, Any]], hosts: Optional[Iterable[str]]) -> Dict[str, Any]:
    """The waves of ``plan`` restricted to ``hosts`` (None: all), their play order and batch sizes."""
    return _run_plan(plan, hosts)


def _resumed_after(before: Optional[Mapping[str, Any]]) -> Optional[str]:
    """Why the run before this resume ended early: its interrupt message, or its controller's death."""
    if before is None:
        return None
    if before["status"] in ("interrupted", "paused"):
        why: str = before.get("message") or before["status"]
        return why
    if before["status"] in ("running", "paused") and before.get("owner_pid"):
        return "its controller (pid %s on %s) ended before the deployment did" % (
            before["owner_pid"], before.get("owner_host"))
    return None


def _run_plan(plan: Sequence[Mapping[str, Any]], hosts: Optional[Iterable[str]]) -> Dict[str, Any]:
    """The waves of ``plan`` restricted to ``hosts`` (None: all), their play order and batch sizes."""
    wanted = None if hosts is None else set(hosts)
    waves: List[Dict[str, Any]] = []
    planned: Set[str] = set()
    for w in plan:
        members = [m for m in w["members"] if wanted is None or m["name"] in wanted]
        planned.update(m["name"] for m in w["members"])
        if members:
            waves.append(dict(w, members=members, size=len(members), planned_size=w.get("size", len(w["members"]))))
    for i, w in enumerate(waves):
        w["last"] = i == len(waves) - 1
    order = [m["name"] for w in waves for m in w["members"]]
    return {
        "waves": waves,
        "order": order,
        "batches": [w["size"] for w in waves],
        # wave index of each host, for the play's batches
        "wave_of": dict((m["name"], i) for i, w in enumerate(waves) for m in w["members"]),
        "not_in_plan": sorted(set(hosts or []) - planned) if plan else [],
    }


def close_deployment(store: StateStore, deployment_id: str, halt_reason: Optional[str] = None,
                     report_path: Optional[str] = None, audit_path: Optional[str] = None, secrets: Sequence[str] = (),
                     status: Optional[str] = None) -> Dict[str, Any]:
    """End a deployment: its status from the agents' results, the report and the audit line.

    ``failed`` when a wave halted it (``halt_reason``); ``completed_with_failures`` when some agent
    failed (its update or gate, or unreachable: a rerun retries exactly those) or was put back on its previous
    version after its update tasks failed (``reverted``: final, not retried); ``paused`` when some
    agent of the plan was never asked in this run (a ``--limit``); else ``completed``. Returns the
    deployment summary the playbooks and the progress callback show.
    """
    current = store.get_deployment(deployment_id) or {}
    if status is None and current.get("status") == "failed":
        # an operator failed it meanwhile (agentfleet.rollout.fail): the end of the run does not undo that
        status = "failed"
        halt_reason = halt_reason or current.get("message")
    if status is None:
        rows = store.agents(deployment_id)
        if halt_reason:
            status = "failed"
        elif any(not r.get("decision") and not r.get("result") for r in rows):
            status = "paused"
            halt_reason = "%d agents of the plan were not in this run (--limit): rerun without a limit to go on" % sum(
                1 for r in rows if not r.get("decision") and not r.get("result"))
        elif any(r.get("result") in ("failed", "reverted") for r in rows):
            # reverted in a wave that passed: its update tasks failed and it was put back on its previous version
            status = "completed_with_failures"
        else:
            status = "completed"
    store.set_status(deployment_id, status, halt_reason)
    report = build_report(store, deployment_id)
    if report_path:
        write_report(report_path, report, secrets)
    if audit_path:
        append_audit(audit_path, {"event": "deployment_" + status, "deployment_id": deployment_id,
                                  "totals": report["totals"], "message": halt_reason}, secrets)
    return {"deployment_id": deployment_id, "status": status, "target_version": report["target_version"],
            "strategy": report["strategy"], "totals": report["totals"], "report_path": report_path,
            "message": halt_reason, "summary_table": summary_table(report)}
