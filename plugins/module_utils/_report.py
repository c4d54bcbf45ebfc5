# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reports and audit lines: JSON written atomically, secrets redacted.

Every writer takes the secrets it must never emit (tokens, AWS keys) and
scrubs them from keys named like secrets and from any string value: the
collection's one masker, ``_secrets.redact``.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import threading
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Protocol, Sequence, Union, overload

from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import MASK
from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import redact
from ansible_collections.agentfleet.rollout.plugins.module_utils._version import COLLECTION_VERSION

# the mask of reports and audit lines: the collection's one (``_secrets.MASK``)
REDACTED = MASK

_audit_lock = threading.Lock()

# a JSON object as the state store and the reports hold it
Row = Dict[str, Any]


class ReportStore(Protocol):
    """What :func:`build_report` reads of a state store (``_state.StateStore``)."""

    def get_deployment(self, deployment_id: str) -> Optional[Row]: ...

    def agents(self, deployment_id: str) -> List[Row]: ...

    def waves(self, deployment_id: str) -> List[Row]: ...


def utcnow_iso(ts: Optional[float] = None) -> str:
    """ISO-8601 UTC with a Z suffix; ``ts`` is a unix time (default now)."""
    if ts is None:
        dt = datetime.datetime.now(datetime.timezone.utc)
    else:
        dt = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ensure_parent(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, exist_ok=True)


def write_json_atomic(path: str, data: Any, secrets: Iterable[Any] = ()) -> None:
    """Write ``data`` as pretty JSON to ``path`` atomically (temp file + rename; one PUT for ``s3://``)."""
    payload = json.dumps(redact(data, secrets), indent=2, sort_keys=True, default=str)
    if str(path).startswith("s3://"):
        from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_objects import write_text

        write_text(path, payload + "\n")
        return
    _ensure_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_report(path: str, report: Mapping[str, Any], secrets: Iterable[Any] = ()) -> str:
    """Write a rollout report (a dict) to ``path``; returns the path."""
    write_json_atomic(path, report, secrets)
    return path


def append_audit(path: Optional[str], events: Union[Row, Sequence[Row]], secrets: Iterable[Any] = ()) -> None:
    """Append one JSON line per event to the audit log at ``path``.

    ``events`` is a dict or a list of dicts; each gets a ``ts`` (ISO UTC)
    when it has none. Lines are appended under a lock and flushed.
    """
    if not path:
        return
    if isinstance(events, dict):
        events = [events]
    lines: List[str] = []
    for event in events:
        event = dict(event)
        event.setdefault("ts", utcnow_iso())
        lines.append(json.dumps(redact(event, secrets), sort_keys=True, default=str))
    if not lines:
        return
    if str(path).startswith("s3://"):
        from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_objects import append_lines

        with _audit_lock:
            append_lines(path, lines)
        return
    _ensure_parent(path)
    with _audit_lock:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
            handle.flush()


def decision_auditor(audit_path: Optional[str], deployment_id: str, agents: Iterable[Row],
                     secrets: Iterable[Any]) -> Optional[Callable[[Mapping[str, Row]], None]]:
    """An ``on_answers`` callback writing one audit line per decision (or None without an audit path)."""
    if not audit_path:
        return None
    members = dict((a["name"], a) for a in agents)

    def audit(round_answers: Mapping[str, Row]) -> None:
        lines: List[Row] = []
        for name, ans in round_answers.items():
            m = members.get(name, {})
            lines.append({"event": "decision", "deployment_id": deployment_id, "host": name,
                          "agent_id": m.get("agent_id"), "cohort": m.get("cohort"), "wave": m.get("wave"),
                          "decision": ans.get("decision"), "reason": ans.get("reason"),
                          "defer_until": utcnow_iso(ans["defer_until"]) if ans.get("defer_until") else None,
                          "http_status": ans.get("http_status"),
                          # the transport's account: asked once more after a lost answer, and why
                          "resent": bool(ans.get("resent")), "note": ans.get("note")})
        append_audit(audit_path, lines, secrets)

    return audit


# ----------------------------------------------------------------------------- one report, every kind

REPORT_SCHEMA = 2


def iso_or_none(ts: Optional[float]) -> Optional[str]:
    """``utcnow_iso(ts)`` for a recorded time, None when nothing was recorded."""
    return utcnow_iso(ts) if ts else None


def agent_entry(row: Row) -> Row:
    """One agent (or occurrence) of a deployment as every report shows it, from its state row."""
    extra = row.get("extra") or {}
    asked = extra.get("asked") or {}
    return {
        "host": row["host"], "agent_id": row.get("agent_id"), "occurrence_id": row.get("occurrence_id"),
        "agent_url": row.get("agent_url"), "cohort": row.get("cohort"), "wave": row.get("wave"),
        "decision": row.get("decision"), "decision_reason": row.get("decision_reason"),
        "decision_id": row.get("decision_id"), "defer_until": iso_or_none(row.get("defer_until")),
        "asked_count": row.get("asked_count"),
        "asked_at": asked.get("at") or iso_or_none(row.get("asked_at")),
        "answered_at": iso_or_none(row.get("answered_at")),
        "result": row.get("result"), "detail": row.get("result_detail"),
        "version_before": row.get("version_before"), "version_after": row.get("version_after"),
        "updated_at": iso_or_none(row.get("updated_at")), "finished_at": iso_or_none(row.get("finished_at")),
    }


@overload
def count_totals(counts: Mapping[Optional[str], int], results: Iterable[str], unfinished: str) -> Dict[str, int]:
    ...


@overload
def count_totals(counts: Mapping[Optional[str], int], *, unfinished: str) -> Dict[str, int]:
    ...


@overload
def count_totals(counts: Mapping[Optional[str], int], results: Iterable[str] = (),
                 unfinished: Optional[str] = None) -> Dict[Optional[str], int]:
    ...


def count_totals(counts: Mapping[Optional[str], int], results: Iterable[str] = (),
                 unfinished: Optional[str] = None) -> Union[Dict[str, int], Dict[Optional[str], int]]:
    """A report's ``totals`` from ``{result: count}`` (None: agents without a result, counted as ``unfinished``);
    ``results`` are always present, zero included."""
    totals: Dict[Optional[str], int] = dict((r, 0) for r in results)
    for result, n in counts.items():
        key = result or unfinished
        totals[key] = totals.get(key, 0) + n
    return totals


def build_report(store: ReportStore, deployment_id: str, kind: str, results: Iterable[str] = (),
                 unfinished: Optional[Callable[[Row], Optional[str]]] = None,
                 agent_fields: Optional[Callable[[Row], Row]] = None, fields: Optional[Row] = None) -> Optional[Row]:
    """The JSON report of one deployment, rebuilt from the state: one schema for rollouts, shutdowns and wakeups.

    Every report has the same top level (``schema``, ``kind``, the deployment, ``status``, ``limit``,
    ``totals``, ``waves``, ``agents``) and the same keys per agent (`agent_entry`); a kind adds its own
    top-level ``fields`` and, per agent, ``agent_fields(row)``. ``results`` are the results ``totals``
    always counts (zero included); ``unfinished(dep)`` names the result of an agent without one.
    Returns None for an unknown deployment.
    """
    dep = store.get_deployment(deployment_id)
    if dep is None:
        return None
    params = dep.get("params") or {}
    fallback = unfinished(dep) if unfinished else None
    counts: Dict[Optional[str], int] = {}
    agents: List[Row] = []
    for row in store.agents(deployment_id):
        entry = agent_entry(row)
        counts[entry["result"]] = counts.get(entry["result"], 0) + 1
        entry["result"] = entry["result"] or fallback
        if agent_fields:
            entry.update(agent_fields(row))
        agents.append(entry)
    report = {
        "schema": REPORT_SCHEMA, "kind": kind, "collection_version": COLLECTION_VERSION,
        "deployment_id": deployment_id, "fleet_key": dep["fleet_key"],
        "strategy": dep.get("strategy"), "target_version": dep.get("target_version"), "status": dep["status"],
        "message": dep.get("message"), "limit": params.get("limit"),
        "created_at": iso_or_none(dep["created_at"]), "started_at": iso_or_none(dep.get("started_at")),
        "finished_at": iso_or_none(dep.get("finished_at")), "generated_at": utcnow_iso(),
        "totals": count_totals(counts, results, fallback),
        "waves": [{"wave": w["wave"], "name": w["name"], "status": w["status"],
                   "started_at": iso_or_none(w.get("started_at")), "finished_at": iso_or_none(w.get("finished_at")),
                   "summary": w.get("summary")} for w in store.waves(deployment_id)],
        "agents": agents,
    }
    report.update(fields or {})
    return report
