# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The canary engine: ask a wave, record what it answered, judge and report.

Everything here acts on a whole wave at once; per-agent work happens on the
client's bounded thread pool. State (when given) makes a rerun ask nobody
whose final answer is recorded.
"""

from __future__ import annotations

import math
import time

from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import ACCEPT
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AUTH_ERROR
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DEFER
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import FINAL_DECISIONS
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import REJECT
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import UNREACHABLE
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import append_audit
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import utcnow_iso

RESULTS = ("updated", "deferred", "rejected", "failed", "reverted", "skipped")
DEFAULT_BUSY_RETRY = 30.0


class RolloutError(Exception):
    """A rollout step failed in a way the operator must act on."""


class AuthenticationFailed(RolloutError):
    """Agents refused the token."""


def wave_line_for_previous(summary):
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


def build_reason(target_version, deployment_id, message=None, wave_name=None, wave_index=None, wave_count=None,
                 previous=None, force=False, strategy="canary"):
    """The text an agent deliberates on, in the spirit of CIRISManager's notice."""
    parts = ["Update to version %s is available (deployment %s, %s rollout)." % (target_version, deployment_id, strategy)]
    if message:
        parts.append("Changes: %s" % message)
    if wave_name:
        if wave_count:
            parts.append("You are in the %s group (wave %s of %s)." % (wave_name, wave_index, wave_count))
        else:
            parts.append("You are in the %s group." % wave_name)
    lines = [p for p in (previous or []) if p]
    if lines:
        parts.append("Earlier waves: %s." % "; ".join(lines))
    elif wave_index == 1 and wave_count and wave_count > 1:
        parts.append("You are among the first to receive this version.")
    if force:
        parts.append("This is an emergency update (force).")
    parts.append("Accept to shut down gracefully so the new version can start; defer if you are busy; reject to decline.")
    return " ".join(parts)


def _member_index(agents):
    return {a["name"]: a for a in agents}


def notify_wave(client, agents, deployment_id, target_version, reason, force=False, scope=None, decision_ref=None,
                store=None, reask_until=None, skip_if_on_target=True, check_mode=False, clock=time.time,
                sleep=time.sleep, busy_retry=DEFAULT_BUSY_RETRY, on_answers=None):
    """Ask a wave for consent; never ask an agent whose final answer is recorded.

    Returns a dict: ``answers`` (host -> decision dict), the host lists
    ``accepted``, ``deferred``, ``rejected``, ``unreachable``, ``skipped``,
    ``asked`` (hosts asked by this call), ``update_agents`` (accepted members
    not yet updated, with ``version_before``), and counts.
    """
    by_name = _member_index(agents)
    answers = {}
    recorded = {}
    if store is not None and not check_mode:
        store.ensure_agents(deployment_id, agents)
        for row in store.agents(deployment_id, hosts=list(by_name)):
            recorded[row["host"]] = row
    to_ask = []
    for a in agents:
        row = recorded.get(a["name"])
        if row and (row.get("decision") in FINAL_DECISIONS or row.get("result") == "skipped"):
            answers[a["name"]] = {
                "decision": row.get("decision") or "skipped", "reason": row.get("decision_reason"),
                "defer_until": row.get("defer_until"), "decision_id": row.get("decision_id"),
                "version_before": row.get("version_before"), "recorded": True,
            }
            continue
        if row and row.get("decision") == DEFER and row.get("defer_until") and row["defer_until"] > clock():
            # still deferred: asked again only once its defer_until has passed
            answers[a["name"]] = {"decision": DEFER, "reason": row.get("decision_reason"),
                                  "defer_until": row["defer_until"], "version_before": row.get("version_before"),
                                  "recorded": True}
            continue
        to_ask.append(a)

    if check_mode:
        return _notify_result(agents, answers, [a["name"] for a in to_ask], recorded, check_mode=True)

    body_base = {"reason": reason, "force": bool(force), "confirm": True, "deployment_id": deployment_id,
                 "target_version": str(target_version)}
    if scope:
        body_base["scope"] = scope
    if decision_ref:
        body_base["decision_ref"] = decision_ref

    asked = []
    auth_failed = []

    def ask(member):
        before = None
        if skip_if_on_target:
            probe = client.probe(member["agent_url"], expected_states=("work", "wakeup", "play", "solitude", "dream"))
            before = probe["info"].get("version")
            if before is not None and str(before) == str(target_version) and probe["healthy"]:
                return member["name"], {"decision": "skipped", "reason": "already on %s" % target_version,
                                        "version_before": before}
        answer = client.shutdown(member["agent_url"], body_base)
        answer["version_before"] = before
        answer["answered_at"] = clock()
        return member["name"], answer

    def ask_round(members):
        if store is not None:
            store.mark_asked(deployment_id, [m["name"] for m in members])
        round_answers = dict(client.fan_out(ask, members))
        asked.extend(m["name"] for m in members)
        for name, ans in round_answers.items():
            if ans["decision"] == AUTH_ERROR:
                auth_failed.append(name)
        if store is not None:
            rows = []
            skips = []
            for name, ans in round_answers.items():
                if ans["decision"] == "skipped":
                    skips.append({"host": name, "result": "skipped", "detail": ans["reason"],
                                  "version_before": ans.get("version_before"), "version_after": ans.get("version_before")})
                elif ans["decision"] in (ACCEPT, DEFER, REJECT):
                    rows.append(dict(ans, host=name))
                elif ans["decision"] == UNREACHABLE:
                    rows.append(dict(ans, host=name))
            if rows:
                store.record_answers(deployment_id, rows)
            if skips:
                store.set_results(deployment_id, skips)
        if on_answers is not None:
            on_answers(round_answers)
        answers.update(round_answers)

    if to_ask:
        ask_round(to_ask)
    if auth_failed:
        raise AuthenticationFailed(
            "authentication failed for %d of %d agents (HTTP 401/403): check rollout_token / AGENTFLEET_TOKEN; "
            "nothing was updated" % (len(auth_failed), len(to_ask))
        )
    # re-ask deferring agents once their defer_until has come, inside the defer deadline
    while reask_until is not None:
        now = clock()
        waiting = []
        for name, ans in answers.items():
            if ans["decision"] != DEFER:
                continue
            due = ans.get("defer_until") or (ans.get("answered_at", now) + busy_retry)
            if due <= reask_until:
                waiting.append((due, name))
        if not waiting:
            break
        due_now = [name for due, name in waiting if due <= now]
        if not due_now:
            sleep(max(0.0, min(w[0] for w in waiting) - now))
            continue
        ask_round([by_name[n] for n in due_now])
        if auth_failed:
            raise AuthenticationFailed("authentication failed on re-ask for %d agents: check the token" % len(auth_failed))

    if store is not None:
        results = []
        for name, ans in answers.items():
            if ans.get("recorded"):
                continue
            if ans["decision"] == REJECT:
                results.append({"host": name, "result": "rejected", "detail": ans.get("reason")})
            elif ans["decision"] == DEFER:
                results.append({"host": name, "result": "deferred", "detail": _defer_detail(ans)})
            elif ans["decision"] == UNREACHABLE:
                results.append({"host": name, "result": "failed", "detail": "unreachable: %s" % ans.get("reason")})
        if results:
            store.set_results(deployment_id, results)
        for row in store.agents(deployment_id, hosts=list(by_name)):
            recorded[row["host"]] = row
    return _notify_result(agents, answers, asked, recorded)


def _defer_detail(ans):
    until = ans.get("defer_until")
    text = "deferred"
    if until:
        text += " until %s" % utcnow_iso(until)
    if ans.get("reason"):
        text += ": %s" % ans["reason"]
    return text


def _notify_result(agents, answers, asked, recorded, check_mode=False):
    # "unreachable" and "skipped" are reserved result keys in Ansible: the lists are *_agents
    groups = {"accepted": [], "deferred": [], "rejected": [], "unreachable_agents": [], "skipped_agents": []}
    update_agents = []
    accepted_agents = []
    for a in agents:
        ans = answers.get(a["name"])
        if ans is None:
            continue
        decision = ans["decision"]
        key = {ACCEPT: "accepted", DEFER: "deferred", REJECT: "rejected", UNREACHABLE: "unreachable_agents",
               "skipped": "skipped_agents"}.get(decision)
        if key:
            groups[key].append(a["name"])
        if decision == ACCEPT:
            row = recorded.get(a["name"]) or {}
            member = dict(a)
            member["version_before"] = ans.get("version_before") or row.get("version_before")
            # ``version`` is what a revert puts back
            member["version"] = member["version_before"]
            accepted_agents.append(member)
            if row.get("result") not in ("updated", "reverted", "failed"):
                update_agents.append(member)
    out = {
        # in check mode: would it ask anyone? (nobody is asked)
        "changed": bool(asked),
        "answers": {n: {k: v for k, v in ans.items() if k != "answered_at"} for n, ans in answers.items()},
        "asked": list(asked) if not check_mode else [],
        "update_agents": update_agents,
        "accepted_agents": accepted_agents,
        "counts": dict((k.replace("_agents", ""), len(v)) for k, v in groups.items()),
    }
    out.update(groups)
    if check_mode:
        out["would_ask"] = list(asked)
    return out


# -- deployment bookkeeping (the rollout_state module) --------------------------------

def begin(store, deployment_id, fleet_key, strategy, target_version, waves, params, stage=False, promote=False,
          takeover=False, check_mode=False):
    """Create, stage, promote or resume a deployment; return what to run.

    ``waves`` is the freshly computed plan; on resume or promote the plan
    stored with the deployment wins (membership is fixed per deployment).
    """
    if promote:
        existing = store.get_deployment(deployment_id) if deployment_id else store.staged_for_fleet(fleet_key)
        if existing is None or existing["status"] not in ("staged", "running", "paused", "completed", "failed"):
            raise RolloutError("no staged deployment %sfor fleet %r to promote: run agentfleet.rollout.manual first"
                               % ((deployment_id + " ") if deployment_id else "", fleet_key))
        deployment_id = existing["deployment_id"]
        target_version = existing["target_version"]
        strategy = existing["strategy"]
        waves = existing["plan"]
    if check_mode:
        existing = store.get_deployment(deployment_id) if store is not None else None
        plan = existing["plan"] if existing else waves
        return {"changed": existing is None or existing["status"] in ("staged", "running", "paused"),
                "mode": "check", "deployment_id": deployment_id, "target_version": target_version,
                "waves": plan, "completed_waves": [], "already_complete": bool(existing and existing["status"] in ("completed", "failed", "aborted")),
                "started_epoch": time.time(), "status": existing["status"] if existing else "new"}
    dep, mode = store.create_or_resume(deployment_id, fleet_key, strategy, target_version, waves, params,
                                       stage_only=stage, takeover=takeover)
    done = [w["wave"] for w in store.waves(deployment_id) if w["status"] in ("passed", "completed")]
    return {
        "changed": mode in ("new", "staged", "promoted", "resumed"),
        "mode": mode,
        "deployment_id": deployment_id,
        "target_version": dep["target_version"],
        "strategy": dep["strategy"],
        "status": dep["status"],
        "waves": dep["plan"],
        "completed_waves": done,
        "already_complete": mode == "complete",
        "started_epoch": dep.get("started_at") or dep["created_at"],
    }


def judge_wave(gate, notify_counts, success_threshold):
    """Did the wave pass? The gate over the agents that accepted, and unreachable
    agents count as failures (PROTOCOL.md: unreachable is a failure, not a
    decision): stable >= ceil(threshold x (accepted + unreachable)).
    Rejects and defers are answers and do not fail a wave."""
    accepted = int(notify_counts.get("accepted", 0))
    unreachable = int(notify_counts.get("unreachable", 0))
    stable = int(gate.get("stable_count", 0))
    threshold = 0.8 if success_threshold is None else float(success_threshold)
    required = int(math.ceil(threshold * (accepted + unreachable) - 1e-9))
    return bool(gate.get("passed", True)) and stable >= required, required


def wave_done(store, deployment_id, wave, name, wave_count, target_version, notify_counts, gate, updated_hosts,
              reverted_hosts=(), gate_skipped=False, success_threshold=None):
    """Judge a wave from the gate, record each agent's result; return the wave summary."""
    gate = gate or {}
    agents_state = gate.get("agents") or {}
    results = []
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
    rows = store.agents(deployment_id, wave=wave)
    counts = dict((r, 0) for r in RESULTS)
    for row in rows:
        if row.get("result") in counts:
            counts[row["result"]] += 1
    if gate_skipped:
        passed, required = True, 0
    else:
        passed, required = judge_wave(gate, notify_counts, success_threshold)
    summary = {
        "wave": wave, "name": name, "wave_count": wave_count, "size": len(rows), "target_version": target_version,
        "accepted": notify_counts.get("accepted", 0), "deferred": notify_counts.get("deferred", 0),
        "rejected": notify_counts.get("rejected", 0), "unreachable": notify_counts.get("unreachable", 0),
        "skipped": notify_counts.get("skipped", 0),
        "updated": len(updated_hosts), "healthy": gate.get("stable_count", len(updated_hosts) if gate_skipped else 0),
        "required": required, "passed": passed,
        "gate_reason": gate.get("reason") if gate.get("passed", True) is False or passed else "unreachable agents",
        "reverted": len(reverted_hosts), "results": counts,
    }
    waves = dict((w["wave"], w) for w in store.waves(deployment_id))
    started = (waves.get(wave) or {}).get("started_at")
    summary["elapsed"] = round(store.clock() - started, 3) if started else None
    store.wave_finished(deployment_id, wave, "passed" if passed else "failed", summary)
    summary["line"] = wave_line(summary)
    return summary


def wave_line(s):
    elapsed = ("%.1fs" % s["elapsed"]) if s.get("elapsed") is not None else "-"
    return ("wave %s/%s %s: %d agents | accepted %d, deferred %d, rejected %d, unreachable %d%s | healthy %d/%d | %s | %s"
            % (s["wave"], s["wave_count"], s["name"], s["size"], s["accepted"], s["deferred"], s["rejected"],
               s["unreachable"], (", skipped %d" % s["skipped"]) if s.get("skipped") else "", s["healthy"], s["updated"],
               elapsed, "passed" if s["passed"] else "FAILED (%s)" % (s.get("gate_reason") or "gate")))


def previous_wave_lines(store, deployment_id, before_wave):
    lines = []
    for w in store.waves(deployment_id):
        if w["wave"] < before_wave and w.get("summary"):
            lines.append(wave_line_for_previous(w["summary"]))
    return lines


def _iso(ts):
    return utcnow_iso(ts) if ts else None


def build_report(store, deployment_id):
    dep = store.get_deployment(deployment_id)
    if dep is None:
        raise RolloutError("unknown deployment %s" % deployment_id)
    agents = []
    totals = dict((r, 0) for r in RESULTS)
    totals["pending"] = 0
    for row in store.agents(deployment_id):
        result = row.get("result") or ("pending" if dep["status"] in ("running", "paused", "staged") else "skipped")
        if result == "skipped" and not row.get("result"):
            result = "skipped"
        totals[result] = totals.get(result, 0) + 1
        agents.append({
            "host": row["host"], "agent_id": row.get("agent_id"), "occurrence_id": row.get("occurrence_id"),
            "cohort": row.get("cohort"), "wave": row.get("wave"), "decision": row.get("decision"),
            "decision_reason": row.get("decision_reason"), "decision_id": row.get("decision_id"),
            "defer_until": _iso(row.get("defer_until")), "asked_count": row.get("asked_count"),
            "result": result, "detail": row.get("result_detail"),
            "version_before": row.get("version_before"), "version_after": row.get("version_after"),
            "asked_at": _iso(row.get("asked_at")), "answered_at": _iso(row.get("answered_at")),
            "updated_at": _iso(row.get("updated_at")), "finished_at": _iso(row.get("finished_at")),
        })
    waves = []
    for w in store.waves(deployment_id):
        waves.append({"wave": w["wave"], "name": w["name"], "status": w["status"], "started_at": _iso(w.get("started_at")),
                      "finished_at": _iso(w.get("finished_at")), "summary": w.get("summary")})
    return {
        "deployment_id": deployment_id, "fleet_key": dep["fleet_key"], "strategy": dep["strategy"],
        "target_version": dep["target_version"], "status": dep["status"], "message": dep.get("message"),
        "created_at": _iso(dep["created_at"]), "started_at": _iso(dep.get("started_at")),
        "finished_at": _iso(dep.get("finished_at")), "totals": totals, "waves": waves, "agents": agents,
    }


def summary_table(report):
    lines = ["deployment %s (%s -> %s): %s" % (report["deployment_id"], report["strategy"], report["target_version"], report["status"])]
    lines.append("%-4s %-16s %5s %8s %8s %8s %8s %8s" % ("wave", "cohort", "size", "updated", "deferred", "rejected", "failed", "reverted"))
    per_wave = {}
    for a in report["agents"]:
        key = (a.get("wave"), a.get("cohort"))
        counts = per_wave.setdefault(key, dict((r, 0) for r in RESULTS + ("pending",)))
        counts[a["result"]] = counts.get(a["result"], 0) + 1
    for (wave, cohort), c in sorted(per_wave.items(), key=lambda kv: (kv[0][0] or 0)):
        lines.append("%-4s %-16s %5d %8d %8d %8d %8d %8d" % (wave, cohort, sum(c.values()), c["updated"], c["deferred"],
                                                             c["rejected"], c["failed"], c["reverted"]))
    t = report["totals"]
    lines.append("total: %d agents: %d updated, %d deferred, %d rejected, %d failed, %d reverted, %d skipped%s"
                 % (len(report["agents"]), t["updated"], t["deferred"], t["rejected"], t["failed"], t["reverted"],
                    t["skipped"], (", %d pending" % t["pending"]) if t.get("pending") else ""))
    return lines


def wave_counts(store, deployment_id, wave):
    """What a wave's agents answered, from the state: the counts a wave is judged on."""
    counts = {"accepted": 0, "deferred": 0, "rejected": 0, "unreachable": 0, "skipped": 0}
    key = {ACCEPT: "accepted", DEFER: "deferred", REJECT: "rejected", UNREACHABLE: "unreachable"}
    for row in store.agents(deployment_id, wave=wave):
        if row.get("decision") in key:
            counts[key[row["decision"]]] += 1
        elif row.get("result") == "skipped":
            counts["skipped"] += 1
    return counts


def start_wave(store, deployment_id, index, name, audit_path=None, secrets=()):
    """Mark a wave started, renew the lease, audit it; returns the earlier waves' lines for the reason text."""
    store.wave_started(deployment_id, index)
    store.heartbeat(deployment_id)
    if audit_path:
        append_audit(audit_path, {"event": "wave_started", "deployment_id": deployment_id, "wave": index, "name": name}, secrets)
    return previous_wave_lines(store, deployment_id, index)


def record_wave(store, deployment_id, index, name, wave_count, target_version, gate, updated_hosts, reverted_hosts=(),
                success_threshold=None, counts=None, gate_skipped=False, audit_path=None, secrets=()):
    """Judge and record a wave (:func:`wave_done`), audit it; the summary carries ``halt_reason`` when it failed.

    ``counts`` are the wave's answers; by default they are read from the state.
    """
    if counts is None:
        counts = wave_counts(store, deployment_id, index)
    summary = wave_done(store, deployment_id, index, name, wave_count, target_version, counts, gate, updated_hosts,
                        reverted_hosts, gate_skipped=gate_skipped, success_threshold=success_threshold)
    if audit_path:
        append_audit(audit_path, dict(summary, event="wave_" + ("passed" if summary["passed"] else "failed"),
                                      deployment_id=deployment_id), secrets)
    summary["halt_reason"] = None
    if not summary["passed"]:
        summary["halt_reason"] = "wave %s (%s) failed its health gate: %d/%d healthy, %d required%s%s" % (
            index, name, summary["healthy"], summary["updated"], summary["required"],
            (", %d unreachable" % summary["unreachable"]) if summary["unreachable"] else "",
            " (reverted)" if summary["reverted"] else "")
    return summary
