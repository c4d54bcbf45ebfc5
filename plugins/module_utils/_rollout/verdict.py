# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A wave in the state: started, counted, judged (the one verdict, :func:`judge_wave`) and recorded.

:func:`judge_wave` judges every wave: a rollout's on its health gate (:func:`record_wave`), a shutdown's or a
wakeup's on its occurrences (:func:`judge_occurrence_wave`: every one must stop, or wake up).
"""

from __future__ import annotations

import math
from typing import Any
from typing import Collection
from typing import Dict
from typing import List
from typing import Mapping
from typing import Optional
from typing import Sequence
from typing import Tuple
from typing import TYPE_CHECKING
from typing import TypedDict

from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import EARLY_ADOPTER
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import EXPLORER
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import ACCEPT
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DECLINED
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DEFER
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import PENDING
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import REJECT
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import UNREACHABLE
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import append_audit
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.report import RESULTS

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateStore

# the waves whose failures stop a shutdown or a wakeup (before its next batch and wave)
CANARY_WAVES = (EXPLORER, EARLY_ADOPTER)


class OccurrenceVerdict(TypedDict):
    """The verdict of a shutdown or wakeup wave (:func:`judge_occurrence_wave`)."""

    passed: bool
    status: str
    stop_reason: Optional[str]
    halt: bool
    tolerate_failures: bool


def wave_counts(store: StateStore, deployment_id: str, wave: int) -> Dict[str, Any]:
    """What a wave's agents answered and became, from the state: what a wave is judged on."""
    counts: Dict[str, Any] = {"size": 0, "accepted": 0, "pending": 0, "declined": 0, "deferred": 0, "rejected": 0, "unreachable": 0,
                              "skipped": 0, "healthy": 0, "failed": 0}
    key = {ACCEPT: "accepted", PENDING: "pending", DECLINED: "declined", DEFER: "deferred", REJECT: "rejected",
           UNREACHABLE: "unreachable"}
    results: Dict[str, int] = dict((r, 0) for r in RESULTS)
    for row in store.agents(deployment_id, wave=wave):
        counts["size"] += 1
        if row.get("decision") in key:
            counts[key[row["decision"]]] += 1
        elif row.get("result") == "skipped":
            counts["skipped"] += 1
        if row.get("result") in results:
            results[row["result"]] += 1
        if row.get("decision") == ACCEPT and row.get("result") == "updated":
            counts["healthy"] += 1
        if row.get("result") == "failed":
            counts["failed"] += 1
    counts["results"] = results
    return counts


def judge_wave(counts: Mapping[str, Any], success_threshold: Optional[float],
               blocked: bool = False) -> Tuple[bool, int]:
    """THE verdict of a wave: ``(passed, required)``.

    A ``blocked`` wave fails whatever its counts: it reached its progress deadline
    (``rollout_progress_deadline``), or its blue-green candidates failed their gate.

    Over the wave's agents as recorded in the state (this run and earlier
    runs of the same deployment): the agents that accepted (observed or
    explicit) and the unreachable ones must be healthy on the target, at least
    ``ceil(threshold x (accepted + unreachable))`` of them. Unreachable agents
    count as failures (PROTOCOL.md: unreachable is a failure, not a decision);
    rejects, defers and declines are answers and never fail a wave.
    """
    accepted = int(counts.get("accepted", 0))
    unreachable = int(counts.get("unreachable", 0))
    healthy = int(counts.get("healthy", 0))
    threshold = 0.8 if success_threshold is None else float(success_threshold)
    required = int(math.ceil(threshold * (accepted + unreachable) - 1e-9))
    return healthy >= required and not blocked, required


def canary_stop(wave_name: str, failures: Mapping[str, str], failed: str = "failed") -> Optional[str]:
    """Why a shutdown or wakeup stops: failures (``{occurrence: why}``) in the explorer or early-adopter wave
    (``<wave> wave <failed>: <occurrence> <why>; ...``), else None."""
    if failures and wave_name in CANARY_WAVES:
        return "%s wave %s: %s" % (wave_name, failed, "; ".join("%s %s" % kv for kv in sorted(failures.items())))
    return None


def judge_occurrence_wave(wave_name: str, ended_well: int, failures: Mapping[str, str], fail_on_partial: bool = True,
                          stop_reason: Optional[str] = None, declined: Optional[str] = None,
                          failed: str = "failed") -> OccurrenceVerdict:
    """THE verdict of a shutdown or wakeup wave, :func:`judge_wave` over its occurrences: all of them must end
    well (``ended_well``: stopped, or awake; ``failures``: ``{occurrence: why}``).

    ``status``: ``passed``; ``declined`` (the silent explorer kept working: nobody shuts down); ``failed`` when
    the wave stops the deployment (``stop_reason``: given, e.g. a follower's reject, or failures in a canary
    wave, :func:`canary_stop`); else ``partial`` (failures in the general wave: reported, the others go on).
    ``halt``: no later wave runs. ``tolerate_failures``: the general wave's failures are no failed PLAY RECAP
    rows (``fail_on_partial=false``).
    """
    stop_reason = stop_reason or canary_stop(wave_name, failures, failed)
    passed = judge_wave({"accepted": ended_well + len(failures), "healthy": ended_well}, 1.0)[0]
    if declined:
        status = "declined"
    else:
        status = "passed" if passed else ("failed" if stop_reason else "partial")
    return {"passed": passed, "status": status, "stop_reason": stop_reason, "halt": bool(stop_reason or declined),
            "tolerate_failures": not stop_reason and wave_name not in CANARY_WAVES and not fail_on_partial}


def deployment_should_fail(stop_reason: Optional[str], failed_occurrences: Collection[str], fail_on_partial: bool = True) -> bool:
    """Whether a finished shutdown or wakeup fails its task: it stopped, or (``fail_on_partial``) some
    occurrence failed."""
    return bool(stop_reason) or (bool(failed_occurrences) and fail_on_partial)


def wave_done(store: StateStore, deployment_id: str, wave: int, name: str, wave_count: int, target_version: str,
              gate: Optional[Mapping[str, Any]], updated_hosts: Sequence[str], reverted_hosts: Collection[str] = (),
              gate_skipped: bool = False, success_threshold: Optional[float] = None) -> Dict[str, Any]:
    """Record each gated agent's result from the gate, judge the wave, return its summary."""
    gate = gate or {}
    agents_state: Mapping[str, Any] = gate.get("agents") or {}
    results: List[Dict[str, Any]] = []
    for host in updated_hosts:
        info = agents_state.get(host) or {}
        if host in reverted_hosts:
            results.append({"host": host, "result": "reverted",
                            "detail": "reverted after failed gate" + ((": " + info["cause"]) if info.get("cause") else ""),
                            "version_after": None})
        elif gate_skipped or info.get("stable"):
            results.append({"host": host, "result": "updated", "detail": None, "version_after": info.get("version", target_version if gate_skipped else None)})
        else:
            results.append({"host": host, "result": "failed", "detail": "not stable: %s" % (info.get("cause") or "unknown"),
                            "version_after": info.get("version")})
    if results:
        store.set_results(deployment_id, results)
    counts = wave_counts(store, deployment_id, wave)
    passed, required = judge_wave(counts, success_threshold, blocked=bool(gate.get("blocked")))
    summary: Dict[str, Any] = {
        "wave": wave, "name": name, "wave_count": wave_count, "size": counts["size"], "target_version": target_version,
        "accepted": counts["accepted"], "declined": counts["declined"], "deferred": counts["deferred"],
        "rejected": counts["rejected"], "unreachable": counts["unreachable"], "skipped": counts["skipped"],
        "updated": counts["accepted"], "healthy": counts["healthy"], "failed": counts["failed"],
        "required": required, "passed": passed,
        "gate_reason": gate.get("reason") if passed else _fail_reason(counts, required, gate),
        "reverted": len(reverted_hosts), "results": counts["results"],
    }
    if gate.get("analysis"):
        # the wave's analysis (rollout_analysis): its verdict per check and every measurement, in the report
        summary["analysis"] = gate["analysis"]
    waves = dict((w["wave"], w) for w in store.waves(deployment_id))
    started = (waves.get(wave) or {}).get("started_at")
    summary["elapsed"] = round(store.clock() - started, 3) if started else None
    store.wave_finished(deployment_id, wave, "passed" if passed else "failed", summary)
    summary["line"] = wave_line(summary)
    return summary


def _fail_reason(counts: Mapping[str, Any], required: int, gate: Mapping[str, Any]) -> str:
    parts = ["%d/%d healthy, %d required" % (counts["healthy"], counts["accepted"] + counts["unreachable"], required)]
    if counts["unreachable"]:
        parts.append("%d unreachable" % counts["unreachable"])
    if gate.get("reason"):
        parts.append("gate: %s" % gate["reason"])
    return "; ".join(parts)


def wave_line(s: Mapping[str, Any]) -> str:
    elapsed = ("%.1fs" % s["elapsed"]) if s.get("elapsed") is not None else "-"
    return ("wave %s/%s %s: %d agents | accepted %d, declined %d, deferred %d, rejected %d, unreachable %d%s | "
            "healthy %d/%d | %s | %s"
            % (s["wave"], s["wave_count"], s["name"], s["size"], s["accepted"], s.get("declined", 0), s["deferred"],
               s["rejected"], s["unreachable"], (", skipped %d" % s["skipped"]) if s.get("skipped") else "",
               s["healthy"], s["accepted"] + s["unreachable"], elapsed,
               "passed" if s["passed"] else "FAILED (%s)" % (s.get("gate_reason") or "gate"))
            + ((" | analysis %s" % s["analysis"]["phase"]) if s.get("analysis") else ""))


def wave_line_for_previous(summary: Optional[Mapping[str, Any]]) -> Optional[str]:
    """``explorers: 2/2 healthy on 2.0.0`` from a stored wave summary."""
    if not summary:
        return None
    text = "%s: %s/%s healthy on %s" % (summary.get("name"), summary.get("healthy", 0), summary.get("updated", 0),
                                        summary.get("target_version"))
    extra = []
    for key in ("deferred", "rejected", "unreachable"):
        if summary.get(key):
            extra.append("%d %s" % (summary[key], key))
    if extra:
        text += " (%s)" % ", ".join(extra)
    return text


def previous_wave_lines(store: StateStore, deployment_id: str, before_wave: int) -> List[Optional[str]]:
    lines = []
    for w in store.waves(deployment_id):
        if w["wave"] < before_wave and w.get("summary"):
            lines.append(wave_line_for_previous(w["summary"]))
    return lines


def start_wave(store: StateStore, deployment_id: str, index: int, name: Optional[str], audit_path: Optional[str] = None,
               secrets: Sequence[str] = ()) -> List[Optional[str]]:
    """Mark a wave started, renew the lease, audit it; returns the earlier waves' lines for the reason text."""
    store.wave_started(deployment_id, index)
    store.heartbeat(deployment_id)
    if audit_path:
        append_audit(audit_path, {"event": "wave_started", "deployment_id": deployment_id, "wave": index, "name": name}, secrets)
    return previous_wave_lines(store, deployment_id, index)


def record_wave(store: StateStore, deployment_id: str, index: int, name: str, wave_count: int, target_version: str,
                gate: Optional[Mapping[str, Any]], updated_hosts: Sequence[str], reverted_hosts: Collection[str] = (),
                success_threshold: Optional[float] = None, gate_skipped: bool = False, audit_path: Optional[str] = None,
                secrets: Sequence[str] = ()) -> Dict[str, Any]:
    """Judge and record a wave (:func:`wave_done`), audit it; the summary carries ``halt_reason`` when it failed."""
    summary = wave_done(store, deployment_id, index, name, wave_count, target_version, gate, updated_hosts,
                        reverted_hosts, gate_skipped=gate_skipped, success_threshold=success_threshold)
    if audit_path:
        append_audit(audit_path, dict(summary, event="wave_" + ("passed" if summary["passed"] else "failed"),
                                      deployment_id=deployment_id), secrets)
    summary["halt_reason"] = None
    if not summary["passed"]:
        summary["halt_reason"] = "wave %s (%s) %s: %s%s" % (
            index, name, "failed" if (gate or {}).get("blocked") else "failed its health gate",
            summary["gate_reason"], " (reverted)" if summary["reverted"] else "")
    return summary
