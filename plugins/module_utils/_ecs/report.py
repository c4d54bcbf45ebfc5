# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ECS rollout report and audit lines (written through the shared _report writer)."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, TypedDict

from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import ArgumentSpec
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import Event
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import Params
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import (
    append_audit,
    utcnow_iso,
    write_report,
)

REPORT_ARGUMENT_SPEC: ArgumentSpec = dict(
    deployment_id=dict(type="str"),
    report_path=dict(type="path"),
    audit_path=dict(type="path"),
    report_extra=dict(type="dict"),
)


class Target(TypedDict):
    """The report's ``target``: the task definition rolled out."""

    family: Optional[str]
    revision: Optional[int]
    image: Optional[str]


def event(name: str, **fields: Any) -> Event:
    """An event for the report and the audit log."""
    out: Event = {"event": name, "ts": utcnow_iso()}
    out.update(dict((k, v) for k, v in fields.items() if v is not None))
    return out


def build_report(deployment_id: Optional[str], mode: Optional[str], target: Target, previous: Optional[str],
                 task_definition: Optional[str], rollout_state: Optional[str], events: Iterable[Event], started_at: str,
                 result: str, extra: Optional[Mapping[str, Any]] = None, check_mode: bool = False) -> Dict[str, Any]:
    """The report's shape, shared with the canary rollout's:

    deployment_id, strategy "ecs", mode, target {family, revision, image},
    previous_task_definition, task_definition, rollout_state, events,
    started_at, finished_at, result (succeeded | failed | rolled_back | started).
    ``extra`` (from the playbook) is merged in; its ``events`` come first.
    """
    extra = dict(extra or {})
    earlier = list(extra.pop("events", None) or [])
    report: Dict[str, Any] = {
        "deployment_id": deployment_id,
        "strategy": "ecs",
        "mode": extra.pop("mode", None) or "full",
        "started_at": extra.pop("started_at", None) or started_at,
    }
    report.update(extra)
    report.update({
        "target": target,
        "previous_task_definition": previous,
        "task_definition": task_definition,
        "rollout_state": rollout_state,
        "events": earlier + list(events),
        "finished_at": utcnow_iso(),
        "result": result,
        "check_mode": bool(check_mode),
    })
    if mode:
        report["mode"] = mode
    return report


def emit(params: Params, report: Mapping[str, Any], new_events: Iterable[Event], secrets: Sequence[str] = ()) -> Dict[str, str]:
    """Write the report and append this module's events to the audit log (if paths are set)."""
    written: Dict[str, str] = {}
    audit_path = params.get("audit_path")
    if audit_path:
        lines = []
        for item in new_events:
            line: Dict[str, Any] = {"deployment_id": params.get("deployment_id"), "strategy": "ecs"}
            line.update(item)
            lines.append(line)
        append_audit(audit_path, lines, secrets)
        written["audit_path"] = audit_path
    if params.get("report_path"):
        write_report(params["report_path"], report, secrets)
        written["report_path"] = params["report_path"]
    return written
