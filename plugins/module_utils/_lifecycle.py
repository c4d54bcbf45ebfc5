# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deployment lifecycle (docs/lifecycle.md): records, status, history, and what an operator does.

A deployment key (``rollout_deployment_key``, default the fleet key) has versions 1, 2, 3, ...: one per
deployment created for it, never reused, never edited back (a rollback is a new version whose target is
an earlier completed version's target). This file reads those records (:func:`record`, :func:`status`,
:func:`history`, :func:`keys`) and carries out the operator's actions that need no agent
(:func:`pause`, :func:`lift_pause`, :func:`fail`, :func:`rollback_source`). A running rollout notices a
pause or a fail through the state (``_wave``'s guard); resuming, promoting and rolling back run the
rollout playbooks again (``_runners.run_deployment``).

Every action appends an audit line with who (:func:`actor`: the AWX job, else the local user), when and why.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from typing import Any
from typing import Callable
from typing import Dict
from typing import Iterable
from typing import List
from typing import Mapping
from typing import Optional
from typing import Tuple
from typing import TYPE_CHECKING

from ansible_collections.agentfleet.rollout.plugins.module_utils._report import append_audit
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import iso_or_none
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.report import report_totals
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import ROLLBACK_STATUSES
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import Deadline
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import poll

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateStore

    # the update driver's revert: agents (name, agent_url, version) -> (reverted names, {name: why it failed})
    Revert = Callable[[List[Dict[str, Any]]], Tuple[List[str], Dict[str, str]]]

# environment variables that name the AWX / Tower job running us
JOB_ENV = ("JOB_ID", "AWX_JOB_ID", "TOWER_JOB_ID")
PAUSABLE = ("pending", "staged", "running", "interrupted")
FAILABLE = ("pending", "staged", "running", "paused", "interrupted")
# how long fail waits for a running rollout to stop before it reverts its agents
FAIL_WAIT = 60.0


class LifecycleError(Exception):
    """An operator's action that cannot be done (unknown key or version, wrong status)."""


def actor(job_id: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> str:
    """Who acts: ``awx job <id>`` (``job_id``, e.g. ``tower_job_id``, else JOB_ID / AWX_JOB_ID / TOWER_JOB_ID),
    else ``<local user>@<host>``."""
    env = os.environ if env is None else env
    job = job_id or next((env[k] for k in JOB_ENV if env.get(k)), None)
    if job:
        return "awx job %s" % job
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "uid %d" % os.getuid()
    return "%s@%s" % (user, socket.gethostname())


def resolve(store: StateStore, key: Optional[str] = None, deployment_id: Optional[str] = None,
            version: Optional[int] = None) -> Dict[str, Any]:
    """The deployment asked for: by id, by key and version, or the key's newest version."""
    if deployment_id:
        dep: Optional[Dict[str, Any]] = store.get_deployment(deployment_id)
        if dep is None:
            raise LifecycleError("deployment_id: no deployment %s in the state" % deployment_id)
        return dep
    if not key:
        raise LifecycleError("deployment_key: a deployment key (or a deployment id) is required")
    if version:
        dep = store.version(key, version)
        if dep is None:
            raise LifecycleError("version: deployment key %r has no version %s (%s)" % (key, version, _versions(store, key)))
        return dep
    newest: List[Dict[str, Any]] = store.history(key, limit=1)
    if not newest:
        raise LifecycleError("deployment_key: no deployment recorded for key %r" % key)
    return newest[0]


def _versions(store: StateStore, key: str) -> str:
    found = [d["version"] for d in store.history(key)]
    return "versions: %s" % ", ".join(str(v) for v in sorted(found)) if found else "no versions"


# -- reading ---------------------------------------------------------------------------------------------

def counts(totals: Mapping[str, Any]) -> Dict[str, int]:
    """CIRISManager's counts (total, updated, deferred, declined, rejected, failed), plus reverted, skipped
    and pending, from a report's ``totals``."""
    out = dict((k, int(totals.get(k, 0))) for k in ("updated", "deferred", "declined", "rejected", "failed",
                                                    "reverted", "skipped", "pending"))
    out["total"] = sum(int(v) for v in totals.values())
    return out


def health(store: StateStore, dep: Mapping[str, Any]) -> Dict[str, Any]:
    """The health summary of a deployment, from its waves' verdicts."""
    waves = store.waves(dep["deployment_id"])
    summaries = [w["summary"] for w in waves if w.get("summary")]
    failed = [w for w in waves if w["status"] == "failed"]
    return {
        "waves": len(waves),
        "waves_passed": sum(1 for w in waves if w["status"] == "passed"),
        "waves_failed": len(failed),
        "healthy": sum(int(s.get("healthy") or 0) for s in summaries),
        "gated": sum(int(s.get("accepted") or 0) + int(s.get("unreachable") or 0) for s in summaries),
        "last_failure": (failed[-1].get("summary") or {}).get("gate_reason") if failed else None,
    }


def phase(store: StateStore, dep: Mapping[str, Any]) -> str:
    """Where the deployment is, in words: ``wave 2/4 (early_adopters)``, ``awaiting promotion``, ..."""
    status: str = dep["status"]
    waves = store.waves(dep["deployment_id"])
    count = len(waves)
    if status == "staged":
        return "staged: awaiting promotion"
    if status in ("running", "paused", "interrupted"):
        current = next((w for w in waves if w["status"] == "running"), None) or \
            next((w for w in waves if w["status"] == "pending"), None)
        where = ("wave %d/%d (%s)" % (current["wave"], count, current["name"])) if current else "after the last wave"
        return where if status == "running" else "%s in %s" % (status, where)
    return status


def record(store: StateStore, dep: Mapping[str, Any], detail: bool = False) -> Dict[str, Any]:
    """One deployment record (docs/lifecycle.md): identity, versions, status, counts, phase, health; with
    ``detail`` also its events and per-agent results."""
    totals = report_totals(store, dep)
    target = store.rollback_target(dep["deployment_key"], before=dep["version"]) if dep.get("version") else None
    out: Dict[str, Any] = {
        "deployment_key": dep.get("deployment_key"), "version": dep.get("version"),
        "deployment_id": dep["deployment_id"], "fleet_key": dep["fleet_key"], "strategy": dep["strategy"],
        "status": dep["status"], "phase": phase(store, dep),
        "source_version": dep.get("source_version"), "target_version": dep.get("target_version"),
        "policy": dep.get("policy") or {}, "rollback_to": dep.get("rollback_to"),
        "rollback_target": {"version": target["version"], "target_version": target["target_version"]} if target else None,
        "actor": dep.get("actor"), "reason": dep.get("reason"), "message": dep.get("message"),
        "active": store.lease_live(dep),
        "created_at": iso_or_none(dep["created_at"]), "started_at": iso_or_none(dep.get("started_at")),
        "finished_at": iso_or_none(dep.get("finished_at")),
        "counts": counts(totals), "health": health(store, dep),
    }
    if detail:
        out["events"] = [{"ts": iso_or_none(e["ts"]), "event": e["event"], "data": e.get("data")}
                         for e in store.events(dep["deployment_id"]) if e["event"] != "decision"]
        out["agents"] = [{"host": a["host"], "wave": a.get("wave"), "cohort": a.get("cohort"),
                          "decision": a.get("decision"), "result": a.get("result"), "detail": a.get("result_detail"),
                          "version_before": a.get("version_before"), "version_after": a.get("version_after")}
                         for a in store.agents(dep["deployment_id"])]
    return out


def status(store: StateStore, key: Optional[str] = None, deployment_id: Optional[str] = None,
           version: Optional[int] = None) -> Dict[str, Any]:
    """The record of the key's newest version (or of the deployment / version asked for), in detail."""
    return record(store, resolve(store, key, deployment_id, version), detail=True)


def history(store: StateStore, key: str, limit: Optional[int] = None) -> List[Dict[str, Any]]:
    """Every version of ``key``, newest first."""
    found = store.history(key, limit=limit)
    if not found:
        raise LifecycleError("deployment_key: no deployment recorded for key %r" % key)
    return [record(store, d) for d in found]


def keys(store: StateStore) -> List[Dict[str, Any]]:
    """Every deployment key with its newest version's record."""
    return [record(store, dep) for dummy, dep in store.keys()]


# -- acting ------------------------------------------------------------------------------------------------

def _audit(audit_path: Optional[str], event: str, dep: Mapping[str, Any], who: str, why: Optional[str], **extra: Any) -> None:
    line: Dict[str, Any] = {"event": event, "deployment_id": dep["deployment_id"], "deployment_key": dep.get("deployment_key"),
                            "version": dep.get("version"), "actor": who, "reason": why}
    line.update(extra)
    append_audit(audit_path, line)


def reread(store: StateStore, deployment_id: str) -> Dict[str, Any]:
    """The deployment as the state now holds it (deployments are never deleted: LifecycleError if it is gone)."""
    dep = store.get_deployment(deployment_id)
    if dep is None:
        raise LifecycleError("deployment %s is gone from the rollout state" % deployment_id)
    return dep


def pause(store: StateStore, dep: Dict[str, Any], why: Optional[str] = None, who: Optional[str] = None,
          audit_path: Optional[str] = None) -> Tuple[bool, Dict[str, Any]]:
    """Pause ``dep``: a rollout running it stops at its next health-gate wait or before its next wave, and
    exits with the deployment ``paused``; a rerun (resume) continues. Returns ``(changed, deployment)``."""
    who = who or actor()
    if dep["status"] == "paused":
        return False, dep
    if dep["status"] not in PAUSABLE:
        raise LifecycleError("deployment %s (version %s) is %s: only a %s deployment can be paused"
                             % (dep["deployment_id"], dep.get("version"), dep["status"], "/".join(PAUSABLE)))
    message = "paused by %s%s" % (who, (": %s" % why) if why else "")
    if not store.set_status(dep["deployment_id"], "paused", message, data={"actor": who, "reason": why},
                            only_from=PAUSABLE):
        raise LifecycleError("deployment %s changed while it was being paused: look again" % dep["deployment_id"])
    _audit(audit_path, "deployment_pause", dep, who, why, previous_status=dep["status"])
    return True, reread(store, dep["deployment_id"])


def lift_pause(store: StateStore, dep: Dict[str, Any], why: Optional[str] = None, who: Optional[str] = None,
               audit_path: Optional[str] = None) -> Tuple[bool, Dict[str, Any]]:
    """Resume a paused deployment whose rollout has not stopped yet (the run goes on as if never paused).

    Returns ``(lifted, deployment)``; ``lifted`` False when the run has already stopped: then a rerun
    (agentfleet.rollout.resume) continues it.
    """
    who = who or actor()
    if dep["status"] != "paused":
        raise LifecycleError("deployment %s (version %s) is %s, not paused" % (dep["deployment_id"], dep.get("version"),
                                                                               dep["status"]))
    if not store.lease_live(dep):
        return False, dep
    message = "resumed by %s%s" % (who, (": %s" % why) if why else "")
    if not store.set_status(dep["deployment_id"], "running", message, data={"actor": who, "reason": why},
                            only_from=("paused",)):
        return False, reread(store, dep["deployment_id"])
    _audit(audit_path, "deployment_resume", dep, who, why, continued="the running rollout")
    return True, reread(store, dep["deployment_id"])


def fail(store: StateStore, dep: Mapping[str, Any], why: Optional[str] = None, who: Optional[str] = None,
         audit_path: Optional[str] = None, revert: Optional[Revert] = None, wait: float = FAIL_WAIT,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Dict[str, Any]:
    """Mark ``dep`` failed (a running rollout stops at its next health-gate wait or before its next wave).

    ``revert(agents)``: with auto_revert, the update driver's revert, called with the agents this deployment
    updated (``name``, ``agent_url``, ``version`` = their version before) once the rollout has stopped
    (waiting at most ``wait`` seconds); returns ``(reverted, failed)``. The deployment then ends
    ``rolled_back`` when every updated agent went back. Returns a dict: ``changed``, ``status``,
    ``reverted``, ``revert_failed``, ``message``.
    """
    who = who or actor()
    deployment_id = dep["deployment_id"]
    reverted: List[str] = []
    revert_failed: Dict[str, str] = {}
    changed = False
    # failing ends the lease: who ran it is remembered to wait for it
    owner_pid = dep.get("owner_pid") if dep["status"] in ("running", "paused") else None
    if dep["status"] in FAILABLE:
        message = "failed by %s%s" % (who, (": %s" % why) if why else "")
        if not store.set_status(deployment_id, "failed", message, data={"actor": who, "reason": why},
                                only_from=FAILABLE):
            raise LifecycleError("deployment %s changed while it was being failed: look again" % deployment_id)
        _audit(audit_path, "deployment_fail", dep, who, why, previous_status=dep["status"])
        changed = True
    elif dep["status"] != "failed" or revert is None:
        raise LifecycleError("deployment %s (version %s) is %s: only a %s deployment can be failed"
                             % (deployment_id, dep.get("version"), dep["status"], "/".join(FAILABLE)))
    if revert is not None:
        # the run that held it stops at its next check: wait for it, so that nothing starts the target again
        stopped = poll(lambda: _run_alive(store, deployment_id, owner_pid), lambda alive, now: not alive,
                       Deadline(wait, clock), 0.2, sleep)[0]
        if not stopped:
            raise LifecycleError("deployment %s is failed, but its rollout (pid %s) has not stopped within %ss: "
                                 "run fail again to revert its agents" % (deployment_id, owner_pid, wait))
        agents = [{"name": a["host"], "agent_url": a["agent_url"], "version": a["version_before"]}
                  for a in store.agents(deployment_id) if a.get("result") == "updated" and a.get("version_before")]
        if agents:
            reverted, revert_failed = revert(agents)
            before = dict((a["name"], a["version"]) for a in agents)
            store.set_results(deployment_id, [{"host": h, "result": "reverted", "version_after": before[h],
                                               "detail": "reverted to %s after the deployment was failed" % before[h]}
                                              for h in reverted])
            _audit(audit_path, "deployment_revert", dep, who, why, reverted=sorted(reverted),
                   revert_failed=revert_failed)
            changed = True
        if reverted and not revert_failed:
            store.set_status(deployment_id, "rolled_back", "%s; %d agents reverted" % (
                reread(store, deployment_id)["message"], len(reverted)), data={"actor": who, "reason": why})
    final = reread(store, deployment_id)
    return {"changed": changed, "status": final["status"], "message": final.get("message"),
            "reverted": sorted(reverted), "revert_failed": revert_failed}


def _run_alive(store: StateStore, deployment_id: str, owner_pid: Optional[int]) -> bool:
    """Whether the rollout that ran the deployment before it was failed (``owner_pid``) still lives."""
    if owner_pid is None:
        return False
    dep = reread(store, deployment_id)
    # lease_live looks at running/paused deployments only; a failed one's owner may still be stopping
    alive: bool = store.lease_live(dict(dep, status="running", owner_pid=owner_pid))
    return alive


def rollback_source(store: StateStore, key: str, version: Optional[int] = None,
                    latest: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The version a rollback returns to: ``version`` of ``key`` (it must have completed), else the key's
    rollback target (its last completed version before the newest)."""
    if version:
        src: Optional[Dict[str, Any]] = store.version(key, version)
        if src is None:
            raise LifecycleError("rollout_rollback_to: deployment key %r has no version %s (%s)"
                                 % (key, version, _versions(store, key)))
        if src["status"] not in ROLLBACK_STATUSES:
            raise LifecycleError("rollout_rollback_to: version %s of %r is %s; a rollback returns to a completed "
                                 "version" % (version, key, src["status"]))
        return src
    newest: Optional[Mapping[str, Any]] = latest
    if not newest:
        versions = store.history(key, limit=1)
        newest = versions[0] if versions else None
    if newest is None:
        raise LifecycleError("deployment_key: no deployment recorded for key %r" % key)
    target: Optional[Dict[str, Any]] = store.rollback_target(key, before=newest["version"])
    if target is None:
        raise LifecycleError("rollout_rollback_to: deployment key %r has no completed version before version %s to "
                             "roll back to" % (key, newest["version"]))
    return target


def rollback_id(store: StateStore, key: str, source: Mapping[str, Any]) -> str:
    """The deployment id of a rollback of ``key`` to ``source``: an unfinished rollback to the same version is
    resumed; else a new one, named after the version it will get."""
    recent = store.history(key, limit=5)  # newest first
    for dep in recent:
        if dep.get("rollback_to") == source["version"] and dep["status"] in ("running", "paused", "interrupted"):
            found: str = dep["deployment_id"]
            return found
    nxt = (recent[0]["version"] + 1) if recent else 1
    return ("rollback-%s-v%d-to-v%d" % (key, nxt, source["version"])).replace("/", "-").replace(" ", "-")


# -- text for people (the CLI and the status / history playbooks print the same lines) ---------------------

def _counts_text(c: Mapping[str, int]) -> str:
    return "total %d: %d updated, %d deferred, %d declined, %d rejected, %d failed%s%s" % (
        c["total"], c["updated"], c["deferred"], c["declined"], c["rejected"], c["failed"],
        (", %d reverted" % c["reverted"]) if c.get("reverted") else "",
        (", %d pending" % c["pending"]) if c.get("pending") else "")


def status_lines(rec: Mapping[str, Any]) -> List[str]:
    """A deployment record as lines of text."""
    lines = ["%s version %s: %s (%s)" % (rec["deployment_key"], rec["version"], rec["status"], rec["phase"]),
             "  deployment %s, %s, %s -> %s" % (rec["deployment_id"], rec["strategy"], rec["source_version"] or "?",
                                                rec["target_version"])]
    if rec.get("rollback_to"):
        lines.append("  rollback to version %s" % rec["rollback_to"])
    lines.append("  counts: %s" % _counts_text(rec["counts"]))
    h = rec["health"]
    lines.append("  health: %d/%d waves passed, %d failed; %d/%d agents healthy" % (
        h["waves_passed"], h["waves"], h["waves_failed"], h["healthy"], h["gated"]))
    if rec.get("rollback_target"):
        lines.append("  rollback target: version %s (%s)" % (rec["rollback_target"]["version"],
                                                             rec["rollback_target"]["target_version"]))
    if rec.get("message"):
        lines.append("  message: %s" % rec["message"])
    lines.append("  created %s by %s%s" % (rec["created_at"], rec.get("actor") or "?",
                                           (": %s" % rec["reason"]) if rec.get("reason") else ""))
    for event in rec.get("events") or []:
        data = event.get("data") or {}
        who = (" by %s" % data["actor"]) if data.get("actor") else ""
        why = (": %s" % data["reason"]) if data.get("reason") else ""
        lines.append("  %s %s%s%s" % (event["ts"], event["event"], who, why))
    return lines


def history_lines(records: Iterable[Mapping[str, Any]]) -> List[str]:
    """A key's versions as a table, newest first."""
    lines = ["%-7s %-23s %-10s %-10s %-10s %-10s %s" % ("version", "status", "strategy", "from", "to", "updated",
                                                        "created")]
    for rec in records:
        lines.append("%-7s %-23s %-10s %-10s %-10s %-10s %s" % (
            rec["version"], rec["status"], rec["strategy"], rec["source_version"] or "-", rec["target_version"],
            "%d/%d" % (rec["counts"]["updated"], rec["counts"]["total"]), rec["created_at"]))
    return lines


def keys_lines(records: Iterable[Mapping[str, Any]]) -> List[str]:
    """Every key with its newest version."""
    lines = ["%-20s %-7s %-23s %-10s %s" % ("key", "version", "status", "target", "phase")]
    for rec in records:
        lines.append("%-20s %-7s %-23s %-10s %s" % (rec["deployment_key"], rec["version"], rec["status"],
                                                    rec["target_version"], rec["phase"]))
    return lines
