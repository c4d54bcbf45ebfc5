# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout's report (docs/reports.md) and its summary table."""

from __future__ import annotations

from ansible_collections.agentfleet.rollout.plugins.module_utils import _report
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.errors import RolloutError

RESULTS = ("updated", "deferred", "declined", "rejected", "failed", "reverted", "skipped")
# an agent without a result in a deployment that ended (failed, cancelled, ...) before it was reached:
# not ``skipped``, which means "already on the target"
NOT_ASKED = "not_asked"


def _driver_result(row):
    """What the update driver reported for the agent (docker: images before and after), by purpose, or None."""
    extra = row.get("extra") or {}
    out = dict((k[len("driver_"):], v) for k, v in extra.items() if k in ("driver_update", "driver_revert"))
    return out or None


def build_report(store, deployment_id):
    """The rollout's JSON report (docs/reports.md): `_report.build_report` of kind ``rollout``."""
    report = _report.build_report(store, deployment_id, "rollout", results=RESULTS + ("pending", NOT_ASKED),
                                  unfinished=_unfinished_result,
                                  agent_fields=lambda row: {"driver": _driver_result(row)})
    if report is None:
        raise RolloutError("unknown deployment %s" % deployment_id)
    return report


def report_totals(store, dep):
    """The rollout's report ``totals``, from one counting query (no report built)."""
    return _report.count_totals(store.result_counts(dep["deployment_id"]), RESULTS + ("pending", NOT_ASKED),
                                _unfinished_result(dep))


def _unfinished_result(dep):
    """An agent without a result: ``pending`` while the deployment is open, else ``not_asked`` (never reached)."""
    return "pending" if dep["status"] in ("running", "paused", "staged", "interrupted") else NOT_ASKED


def summary_table(report):
    lines = ["deployment %s (%s -> %s): %s" % (report["deployment_id"], report["strategy"], report["target_version"], report["status"])]
    lines.append("%-4s %-16s %5s %8s %8s %8s %8s %8s %8s" % (
        "wave", "cohort", "size", "updated", "declined", "deferred", "rejected", "failed", "reverted"))
    per_wave = {}
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
