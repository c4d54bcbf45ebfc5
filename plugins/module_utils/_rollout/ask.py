# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ask a wave for consent and watch the agents that gave it stop.

Everything here acts on a whole wave at once; per-agent work happens on the
client's bounded thread pool. State (when given) makes a rerun ask nobody
whose final answer is recorded.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING
from typing import Any
from typing import Callable
from typing import Dict
from typing import Iterable
from typing import List
from typing import Mapping
from typing import Optional
from typing import Sequence
from typing import Tuple

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
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import decision_auditor
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import utcnow_iso
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.errors import AuthenticationFailed
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.verdict import start_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._run import RunStopped

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateStore
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import AgentRow
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Agent
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Record
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import WaveOptions

# decisions a rerun of the same deployment does not ask again: final answers, an observed
# decline (asking again would start another deliberation for the same deployment), and a
# pending answer (asked; what it does is observed, not asked for twice)
NOT_ASKED_AGAIN = FINAL_DECISIONS + (DECLINED, PENDING)

DEFAULT_BUSY_RETRY = 30.0


def build_reason(target_version: str, deployment_id: str, message: Optional[str] = None, wave_name: Optional[str] = None,
                 wave_index: Optional[int] = None, wave_count: Optional[int] = None,
                 previous: Optional[Iterable[Optional[str]]] = None, force: Optional[bool] = False,
                 strategy: str = "canary") -> str:
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


def _member_index(agents: Iterable[Agent]) -> Dict[str, Agent]:
    return {a["name"]: a for a in agents}


def notify_wave(client: AgentClient, agents: List[Agent], deployment_id: str, target_version: str, reason: str,
                force: Optional[bool] = False, scope: Optional[str] = None, decision_ref: Optional[str] = None,
                store: Optional[StateStore] = None, reask_until: Optional[float] = None, skip_if_on_target: bool = True,
                check_mode: bool = False, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                busy_retry: float = DEFAULT_BUSY_RETRY,
                on_answers: Optional[Callable[[Dict[str, Record]], None]] = None) -> Record:
    """Ask a wave for consent; never ask an agent whose final answer is recorded.

    Returns a dict: ``answers`` (host -> decision dict), the host lists
    ``accepted``, ``deferred``, ``rejected``, ``unreachable``, ``skipped``,
    ``asked`` (hosts asked by this call), ``update_agents`` (accepted members
    not yet updated, with ``version_before``), and counts.
    """
    by_name = _member_index(agents)
    answers: Dict[str, Record] = {}
    recorded: Dict[str, AgentRow] = {}
    if store is not None and not check_mode:
        store.ensure_agents(deployment_id, agents)
        for known in store.agents(deployment_id, hosts=list(by_name)):
            recorded[known["host"]] = known
    to_ask: List[Agent] = []
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

    body_base: Dict[str, Any] = {"reason": reason, "force": bool(force), "confirm": True, "deployment_id": deployment_id,
                                 "target_version": str(target_version)}
    if scope:
        body_base["scope"] = scope
    if decision_ref:
        body_base["decision_ref"] = decision_ref

    asked: List[str] = []
    auth_failed: List[str] = []
    stopped: List[RunStopped] = []

    def ask(member: Agent) -> Tuple[str, Record]:
        before = None
        if skip_if_on_target:
            probe = client.probe(member["agent_url"], expected_states=("work", "wakeup", "play", "solitude", "dream"))
            before = probe["info"].get("version")
            if before is not None and version_matches(before, target_version) and probe["healthy"]:
                skip: Record = {"decision": "skipped", "reason": "already on %s" % target_version, "version_before": before}
                record_one(member["name"], skip)
                return member["name"], skip
        answer: Record = client.ask(member["agent_url"], body_base)
        answer["version_before"] = before
        answer["answered_at"] = clock()
        # durable the moment it arrives: a run killed while other agents of the round are still
        # answering (or hanging) has recorded this one, and a rerun never asks it again
        record_one(member["name"], answer)
        return member["name"], answer

    record_lock = threading.Lock()
    arrived_lock = threading.Lock()
    arrived: List[Record] = []

    def record_one(name: str, ans: Record) -> None:
        # group commit: every answer is recorded before record_one returns (as with one transaction per answer),
        # but whichever thread holds the store commits every answer that arrived meanwhile in one transaction
        if store is None:
            return
        with arrived_lock:
            arrived.append(dict(ans, host=name))
        with record_lock:
            with arrived_lock:
                batch = arrived[:]
                del arrived[:]
            if batch:
                record_batch(store, batch)

    def record_batch(store: StateStore, batch: List[Record]) -> None:
        decided = [a for a in batch if a["decision"] in (ACCEPT, PENDING, DEFER, REJECT, UNREACHABLE, AUTH_ERROR)]
        if decided:
            store.record_answers(deployment_id, decided)
        results: List[Record] = []
        for ans in batch:
            if ans["decision"] == AUTH_ERROR:
                # its credential was refused: recorded (decision ``unauthorized``, not null), never updated
                results.append({"host": ans["host"], "result": "failed", "detail": ans["reason"],
                                "version_before": ans.get("version_before")})
            elif ans["decision"] == "skipped":
                results.append({"host": ans["host"], "result": "skipped", "detail": ans["reason"],
                                "version_before": ans.get("version_before"),
                                "version_after": ans.get("version_before")})
        if results:
            store.set_results(deployment_id, results)

    def ask_or_stop(member: Agent) -> Tuple[str, Optional[Record]]:
        # a run told to stop (its controller gone, a signal, a newer run) sends no more requests; the
        # answers that did arrive are recorded below, so that a rerun never asks those agents again
        try:
            return ask(member)
        except RunStopped as exc:
            stopped.append(exc)
            return member["name"], None

    def ask_round(members: List[Agent]) -> None:
        if store is not None:
            store.mark_asked(deployment_id, [m["name"] for m in members])
        round_answers: Dict[str, Record] = dict((n, a) for n, a in client.fan_out(ask_or_stop, members) if a is not None)
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
        waiting: List[Tuple[float, str]] = []
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
        results: List[Record] = []
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


def _defer_detail(ans: Mapping[str, Any]) -> str:
    until = ans.get("defer_until")
    text = "deferred"
    if until:
        text += " until %s" % utcnow_iso(until)
    if ans.get("reason"):
        text += ": %s" % ans["reason"]
    return text


def _notify_result(agents: Iterable[Agent], answers: Mapping[str, Record], asked: Sequence[str],
                   recorded: Mapping[str, AgentRow], check_mode: bool = False) -> Record:
    # "unreachable" and "skipped" are reserved result keys in Ansible: the lists are *_agents
    groups: Dict[str, List[str]] = {"accepted": [], "pending": [], "declined": [], "deferred": [], "rejected": [],
                                    "unreachable_agents": [], "skipped_agents": []}
    keys = {ACCEPT: "accepted", PENDING: "pending", DECLINED: "declined", DEFER: "deferred", REJECT: "rejected",
            UNREACHABLE: "unreachable_agents", "skipped": "skipped_agents"}
    consenting: List[Agent] = []
    retry: List[Agent] = []
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
    out: Record = {
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


def observe_consent(client: AgentClient, store: StateStore, deployment_id: str, members: List[Agent],
                    target_version: str, stop_timeout: float, poll_interval: float = 1.0, supervisor_restarts: bool = False,
                    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                    progress: Optional[Callable[[str], None]] = None,
                    on_observed: Optional[Callable[[Dict[str, Record]], None]] = None,
                    cut_short: Optional[str] = None) -> Tuple[List[Agent], Dict[str, Record]]:
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
    observed: Dict[str, Record] = observe_stop(
        client, members, stop_timeout=stop_timeout, poll_interval=poll_interval, fast_first=True,
        supervisor_restarts=supervisor_restarts, target_version=target_version, clock=clock, sleep=sleep, progress=progress)
    ready: List[Agent] = []
    decisions: List[Record] = []
    results: List[Record] = []
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


def ask_wave(store: StateStore, client: AgentClient, opts: WaveOptions, dep: Record, wave: Record,
             members: List[Agent], secrets: Sequence[str], clock: Callable[[], float], sleep: Callable[[float], None],
             reask_until: Optional[float]) -> Record:
    """Mark the wave started and ask its members (never twice), as every driver's wave does: :func:`notify_wave`'s
    result, with the ``reason`` they were given."""
    deployment_id = dep["deployment_id"]
    previous = start_wave(store, deployment_id, wave["index"], wave["name"], opts.audit_path, secrets)
    reason = build_reason(dep["target_version"], deployment_id, opts.release_notes, wave["name"],
                          wave["index"], opts.wave_count, previous, opts.force, opts.strategy)
    asked = notify_wave(client, members, deployment_id, dep["target_version"], reason, force=opts.force,
                        store=store, reask_until=reask_until, clock=clock, sleep=sleep,
                        on_answers=decision_auditor(opts.audit_path, deployment_id, members, secrets))
    asked["reason"] = reason
    return asked
