# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout's report (docs/reports.md) and its summary table."""

from __future__ import annotations

from typing import Any
from typing import Dict
from typing import List
from typing import Mapping
from typing import Optional
from typing import Tuple
from typing import TYPE_CHECKING

from ansible_collections.agentfleet.rollout.plugins.module_utils import _report
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.errors import RolloutError

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateStore

RESULTS = ("updated", "deferred", "declined", "rejected", "failed", "reverted", "skipped")
# an agent without a result in a deployment that ended (failed, cancelled, ...) before it was reached:
# not ``skipped``, which means "already on the target"
NOT_ASKED = "not_asked"


def _driver_result(row: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """What the update driver reported for the agent (docker: images before and after), by purpose, or None."""
    extra: Mapping[str, Any] = row.get("extra") or {}
    out = dict((k[len("driver_"):], v) for k, v in extra.items() if k in ("driver_update", "driver_revert"))
    return out or None


def build_report(store: StateStore, deployment_id: str) -> Dict[str, Any]:
    """The rollout's JSON report (docs/reports.md): `_report.build_report` of kind ``rollout``."""
    report: Optional[Dict[str, Any]] = _report.build_report(store, deployment_id, "rollout", results=RESULTS + ("pending", NOT_ASKED),
                                                            unfinished=_unfinished_result, agent_fields=_agent_fields)
    if report is None:
        raise RolloutError("unknown deployment %s" % deployment_id)
    return report


def _agent_fields(row: Mapping[str, Any]) -> Dict[str, Any]:
    """What a rollout's report entry of an agent adds: what the update driver reported."""
    return {"driver": _driver_result(row)}


def report_totals(store: StateStore, dep: Mapping[str, Any]) -> Dict[str, int]:
    """The rollout's report ``totals``, from one counting query (no report built)."""
    totals: Dict[str, int] = _report.count_totals(store.result_counts(dep["deployment_id"]), RESULTS + ("pending", NOT_ASKED),
                                                  _unfinished_result(dep))
    return totals


def _unfinished_result(dep: Mapping[str, Any]) -> str:
    """An agent without a result: ``pending`` while the deployment is open, else ``not_asked`` (never reached)."""
    return "pending" if dep["status"] in ("running", "paused", "staged", "interrupted") else NOT_ASKED


def summary_table(report: Mapping[str, Any]) -> List[str]:
    """The report as a table: one row per wave and cohort, then the totals."""
    lines = ["deployment %s (%s -> %s): %s" % (report["deployment_id"], report["strategy"], report["target_version"], report["status"])]
    lines.append("%-4s %-16s %5s %8s %8s %8s %8s %8s %8s" % (
        "wave", "cohort", "size", "updated", "declined", "deferred", "rejected", "failed", "reverted"))
    per_wave: Dict[Tuple[Any, Any], Dict[str, int]] = {}
    for a in report["agents"]:
        key = (a.get("wave"), a.get("cohort"))
        counts = per_wave.setdefault(key, dict((r, 0) for r in RESULTS + ("pending", NOT_ASKED)))
        counts[a["result"]] = counts.get(a["result"], 0) + 1
    for (wave, cohort), c in sorted(per_wave.items(), key=lambda kv: (kv[0][0] or 0)):
        lines.append("%-4s %-16s %5d %8d %8d %8d %8d %8d %8d" % (wave, cohort, sum(c.values()), c["updated"], c["declined"],
                                                                 c["deferred"], c["rejected"], c["failed"], c["reverted"]))
    t = report["totals"]
    lines.append("total: %d agents: %d updated, %d declined, %d deferred, %d rejected, %d failed, %d reverted, %d skipped%s%s"
                 % (len(report["agents"]), t["updated"], t["declined"], t["deferred"], t["rejected"], t["failed"],
                    t["reverted"], t["skipped"], (", %d pending" % t["pending"]) if t.get("pending") else "",
                    (", %d not asked" % t[NOT_ASKED]) if t.get(NOT_ASKED) else ""))
    return lines
