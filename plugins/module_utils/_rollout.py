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
import threading
import time

from ansible_collections.agentfleet.rollout.plugins.module_utils._consent import OBSERVED_DECLINED
from ansible_collections.agentfleet.rollout.plugins.module_utils._consent import OBSERVED_STOPPED
from ansible_collections.agentfleet.rollout.plugins.module_utils._consent import observe_stop
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import ACCEPT
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AUTH_ERROR
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DECLINED
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DEFER
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import FINAL_DECISIONS
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import PENDING
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import REJECT
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import UNREACHABLE
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import version_matches
from ansible_collections.agentfleet.rollout.plugins.module_utils._policy import waves_to_run
from ansible_collections.agentfleet.rollout.plugins.module_utils import _report
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import append_audit
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import utcnow_iso
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import write_report
from ansible_collections.agentfleet.rollout.plugins.module_utils._run import RunStopped

RESULTS = ("updated", "deferred", "declined", "rejected", "failed", "reverted", "skipped")
# decisions a rerun of the same deployment does not ask again: final answers, an observed
# decline (asking again would start another deliberation for the same deployment), and a
# pending answer (asked; what it does is observed, not asked for twice)
NOT_ASKED_AGAIN = FINAL_DECISIONS + (DECLINED, PENDING)

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
        if row and (row.get("decision") in NOT_ASKED_AGAIN or row.get("result") == "skipped"):
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
    stopped = []

    def ask(member):
        before = None
        if skip_if_on_target:
            probe = client.probe(member["agent_url"], expected_states=("work", "wakeup", "play", "solitude", "dream"))
            before = probe["info"].get("version")
            if before is not None and version_matches(before, target_version) and probe["healthy"]:
                skip = {"decision": "skipped", "reason": "already on %s" % target_version, "version_before": before}
                record_one(member["name"], skip)
                return member["name"], skip
        answer = client.ask(member["agent_url"], body_base)
        answer["version_before"] = before
        answer["answered_at"] = clock()
        # durable the moment it arrives: a run killed while other agents of the round are still
        # answering (or hanging) has recorded this one, and a rerun never asks it again
        record_one(member["name"], answer)
        return member["name"], answer

    record_lock = threading.Lock()

    def record_one(name, ans):
        if store is None:
            return
        with record_lock:
            if ans["decision"] in (ACCEPT, PENDING, DEFER, REJECT, UNREACHABLE, AUTH_ERROR):
                store.record_answers(deployment_id, [dict(ans, host=name)])
            if ans["decision"] == AUTH_ERROR:
                # its credential was refused: recorded (decision ``unauthorized``, not null), never updated
                store.set_results(deployment_id, [{"host": name, "result": "failed", "detail": ans["reason"],
                                                   "version_before": ans.get("version_before")}])
            elif ans["decision"] == "skipped":
                store.set_results(deployment_id, [{"host": name, "result": "skipped", "detail": ans["reason"],
                                                   "version_before": ans.get("version_before"),
                                                   "version_after": ans.get("version_before")}])

    def ask_or_stop(member):
        # a run told to stop (its controller gone, a signal, a newer run) sends no more requests; the
        # answers that did arrive are recorded below, so that a rerun never asks those agents again
        try:
            return ask(member)
        except RunStopped as exc:
            stopped.append(exc)
            return member["name"], None

    def ask_round(members):
        if store is not None:
            store.mark_asked(deployment_id, [m["name"] for m in members])
        round_answers = dict((n, a) for n, a in client.fan_out(ask_or_stop, members) if a is not None)
        asked.extend(m["name"] for m in members if m["name"] in round_answers)
        for name, ans in round_answers.items():
            if ans["decision"] == AUTH_ERROR:
                auth_failed.append(name)
        if on_answers is not None:
            on_answers(round_answers)
        answers.update(round_answers)
        if stopped:
            raise stopped[0]

    if to_ask:
        ask_round(to_ask)
    if auth_failed:
        raise AuthenticationFailed(
            "authentication failed for %d of %d agents (HTTP 401/403: %s): check rollout_token / AGENTFLEET_TOKEN; "
            "the rollout stops" % (len(auth_failed), len(to_ask), ", ".join(sorted(auth_failed)))
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
    groups = {"accepted": [], "pending": [], "declined": [], "deferred": [], "rejected": [], "unreachable_agents": [],
              "skipped_agents": []}
    keys = {ACCEPT: "accepted", PENDING: "pending", DECLINED: "declined", DEFER: "deferred", REJECT: "rejected",
            UNREACHABLE: "unreachable_agents", "skipped": "skipped_agents"}
    consenting = []
    retry = []
    for a in agents:
        ans = answers.get(a["name"])
        if ans is None:
            continue
        decision = ans["decision"]
        if decision in keys:
            groups[keys[decision]].append(a["name"])
        if decision in (ACCEPT, PENDING):
            row = recorded.get(a["name"]) or {}
            member = dict(a)
            member["version_before"] = ans.get("version_before") or row.get("version_before")
            # ``version`` is what a revert puts back
            member["version"] = member["version_before"]
            if not row.get("updated_at"):
                if row.get("result") not in ("updated", "reverted", "declined"):
                    # to watch until it has stopped, then to hand to the update driver
                    consenting.append(member)
            elif row.get("result") == "failed":
                # handed to the driver in an earlier run, then its update or gate failed: retried
                retry.append(member)
    out = {
        # in check mode: would it ask anyone? (nobody is asked)
        "changed": bool(asked),
        "answers": {n: {k: v for k, v in ans.items() if k != "answered_at"} for n, ans in answers.items()},
        "asked": list(asked) if not check_mode else [],
        "consenting_agents": consenting,
        "retry_agents": retry,
        "update_agents": consenting + retry,
        "counts": dict((k.replace("_agents", ""), len(v)) for k, v in groups.items()),
    }
    out.update(groups)
    if check_mode:
        out["would_ask"] = list(asked)
    return out


def observe_consent(client, store, deployment_id, members, target_version, stop_timeout, poll_interval=1.0,
                    supervisor_restarts=False, clock=time.monotonic, sleep=time.sleep, progress=None, on_observed=None,
                    cut_short=None):
    """Watch the agents that accepted or answered "pending" until they have stopped (observed consent).

    Records the observed decision at once: a pending agent that stopped has
    accepted; one still working at ``stop_timeout`` has declined (result
    ``declined``, never updated); an explicit accepter that did not stop, one
    still draining, or one that stopped answering with timeouts is ``failed``
    and not updated. Returns ``(ready, observed)``: the members that stopped
    (to hand to the update driver) and the per-host observation. ``cut_short`` (a text): the
    progress deadline ended the watch before ``stop_timeout`` would have; an agent not stopped
    by then has not declined: it is ``failed`` with that text, its answer left as it was.
    """
    if not members:
        return [], {}
    rows = dict((r["host"], r) for r in store.agents(deployment_id, hosts=[m["name"] for m in members]))
    observed = observe_stop(client, members, stop_timeout=stop_timeout, poll_interval=poll_interval, fast_first=True,
                            supervisor_restarts=supervisor_restarts, target_version=target_version,
                            clock=clock, sleep=sleep, progress=progress)
    ready, decisions, results = [], [], []
    for m in members:
        name = m["name"]
        obs = observed[name]
        row = rows.get(name) or {}
        pending = row.get("decision") == PENDING
        if obs["outcome"] == OBSERVED_STOPPED:
            ready.append(m)
            if pending:
                decisions.append({"host": name, "decision": ACCEPT, "answered_at": row.get("answered_at"),
                                  "reason": "observed: %s after %.1fs" % (
                                      "drained and stopped" if obs["drained_at"] is not None else "stopped",
                                      obs["stopped_at"] or 0.0)})
        elif cut_short:
            results.append({"host": name, "result": "failed", "detail": "%s (%s)" % (cut_short, obs["detail"])})
        elif obs["outcome"] == OBSERVED_DECLINED and pending:
            decisions.append({"host": name, "decision": DECLINED, "reason": obs["detail"],
                              "answered_at": row.get("answered_at")})
            results.append({"host": name, "result": "declined", "detail": obs["detail"]})
        else:
            detail = obs["detail"]
            if obs["outcome"] == OBSERVED_DECLINED:
                detail = "accepted but " + detail.replace(": declined or still busy", "")
            results.append({"host": name, "result": "failed", "detail": detail})
    if decisions:
        store.record_answers(deployment_id, decisions)
    if results:
        store.set_results(deployment_id, results)
    if on_observed is not None:
        on_observed(observed)
    return ready, observed


# -- deployment bookkeeping (the deployment and rollout_state modules) --------------------------------

def begin(store, deployment_id, fleet_key, strategy, target_version, waves, params, stage=False, promote=False,
          takeover=False, check_mode=False, hosts=None, limit=None, record=None):
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
        existing = store.get_deployment(deployment_id) if deployment_id else (
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
        existing = store.get_deployment(deployment_id) if store is not None else None
        plan = existing["plan"] if existing else waves
        out = {"changed": existing is None or existing["status"] not in ("completed", "aborted"),
               "mode": "check", "deployment_id": deployment_id, "target_version": target_version,
               "already_complete": bool(existing and existing["status"] in ("completed", "aborted")),
               "started_epoch": time.time(), "status": existing["status"] if existing else "new"}
        out.update(_run_plan(plan, hosts))
        return out
    before = store.get_deployment(deployment_id)
    dep, mode = store.create_or_resume(deployment_id, fleet_key, strategy, target_version, waves, params,
                                       stage_only=stage, takeover=takeover, record=record, promote=promote)
    if mode in ("resumed", "retry", "promoted"):
        store.update_params(deployment_id, dict({"limit": params["limit"]}, **({"promoted": True} if promote else {})))
        dep = store.get_deployment(deployment_id)
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


def run_plan(plan, hosts):
    """The waves of ``plan`` restricted to ``hosts`` (None: all), their play order and batch sizes."""
    return _run_plan(plan, hosts)


def _resumed_after(before):
    """Why the run before this resume ended early: its interrupt message, or its controller's death."""
    if before is None:
        return None
    if before["status"] in ("interrupted", "paused"):
        return before.get("message") or before["status"]
    if before["status"] in ("running", "paused") and before.get("owner_pid"):
        return "its controller (pid %s on %s) ended before the deployment did" % (
            before["owner_pid"], before.get("owner_host"))
    return None


def _run_plan(plan, hosts):
    """The waves of ``plan`` restricted to ``hosts`` (None: all), their play order and batch sizes."""
    wanted = None if hosts is None else set(hosts)
    waves = []
    planned = set()
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


def judge_wave(counts, success_threshold, blocked=False):
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


def wave_done(store, deployment_id, wave, name, wave_count, target_version, gate, updated_hosts,
              reverted_hosts=(), gate_skipped=False, success_threshold=None):
    """Record each gated agent's result from the gate, judge the wave, return its summary."""
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
    counts = wave_counts(store, deployment_id, wave)
    passed, required = judge_wave(counts, success_threshold, blocked=bool(gate.get("blocked")))
    summary = {
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


def _fail_reason(counts, required, gate):
    parts = ["%d/%d healthy, %d required" % (counts["healthy"], counts["accepted"] + counts["unreachable"], required)]
    if counts["unreachable"]:
        parts.append("%d unreachable" % counts["unreachable"])
    if gate.get("reason"):
        parts.append("gate: %s" % gate["reason"])
    return "; ".join(parts)


def wave_line(s):
    elapsed = ("%.1fs" % s["elapsed"]) if s.get("elapsed") is not None else "-"
    return ("wave %s/%s %s: %d agents | accepted %d, declined %d, deferred %d, rejected %d, unreachable %d%s | "
            "healthy %d/%d | %s | %s"
            % (s["wave"], s["wave_count"], s["name"], s["size"], s["accepted"], s.get("declined", 0), s["deferred"],
               s["rejected"], s["unreachable"], (", skipped %d" % s["skipped"]) if s.get("skipped") else "",
               s["healthy"], s["accepted"] + s["unreachable"], elapsed,
               "passed" if s["passed"] else "FAILED (%s)" % (s.get("gate_reason") or "gate"))
            + ((" | analysis %s" % s["analysis"]["phase"]) if s.get("analysis") else ""))


def previous_wave_lines(store, deployment_id, before_wave):
    lines = []
    for w in store.waves(deployment_id):
        if w["wave"] < before_wave and w.get("summary"):
            lines.append(wave_line_for_previous(w["summary"]))
    return lines


def close_deployment(store, deployment_id, halt_reason=None, report_path=None, audit_path=None, secrets=(),
                     status=None):
    """End a deployment: its status from the agents' results, the report and the audit line.

    ``failed`` when a wave halted it (``halt_reason``); ``completed_with_failures`` when some agent
    failed (its update or gate, or unreachable: a rerun retries exactly those); ``paused`` when some
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
        elif any(r.get("result") == "failed" for r in rows):
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


# an agent without a result in a deployment that ended (failed, cancelled, ...) before it was reached:
# not ``skipped``, which means "already on the target"
NOT_ASKED = "not_asked"


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


def wave_counts(store, deployment_id, wave):
    """What a wave's agents answered and became, from the state: what a wave is judged on."""
    counts = {"size": 0, "accepted": 0, "pending": 0, "declined": 0, "deferred": 0, "rejected": 0, "unreachable": 0,
              "skipped": 0, "healthy": 0, "failed": 0}
    key = {ACCEPT: "accepted", PENDING: "pending", DECLINED: "declined", DEFER: "deferred", REJECT: "rejected",
           UNREACHABLE: "unreachable"}
    results = dict((r, 0) for r in RESULTS)
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


def start_wave(store, deployment_id, index, name, audit_path=None, secrets=()):
    """Mark a wave started, renew the lease, audit it; returns the earlier waves' lines for the reason text."""
    store.wave_started(deployment_id, index)
    store.heartbeat(deployment_id)
    if audit_path:
        append_audit(audit_path, {"event": "wave_started", "deployment_id": deployment_id, "wave": index, "name": name}, secrets)
    return previous_wave_lines(store, deployment_id, index)


def record_wave(store, deployment_id, index, name, wave_count, target_version, gate, updated_hosts, reverted_hosts=(),
                success_threshold=None, gate_skipped=False, audit_path=None, secrets=()):
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
