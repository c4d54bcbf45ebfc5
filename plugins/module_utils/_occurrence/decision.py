# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decide once for all occurrences (engine of ``occurrence_shutdown step=decide``).

Only the explorer is asked, with ``scope: all_occurrences``; or a recent
shared decision of the agent is reused and nobody is asked. The answer
becomes the agent's shared decision, always with an id: the agent's
``decision_id`` or, when it gives none, :func:`~.common.fallback_decision_id`.

A real CIRIS agent answers 200 without a decision (PENDING): it decides as a
task and shows its decision by acting. Then, as after an explicit accept,
the waves start with the explorer's own wave, which *observes* it
(:mod:`.waves`): it stops within the stop timeout = accept; it goes on
working = declined. An explicit reject or defer ends the run here.
"""

from __future__ import annotations

import time
from typing import Any
from typing import Callable
from typing import Dict
from typing import List
from typing import Mapping
from typing import Optional
from typing import Sequence
from typing import Tuple
from typing import TYPE_CHECKING

from ansible_collections.agentfleet.rollout.plugins.module_utils._common import client_from_params
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import DEFAULT_MAX_AGE
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import DEFAULT_STOP_TIMEOUT
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import EXPLORER
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import fallback_decision_id
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import secs
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import SHUTDOWN
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import ShutdownError
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import begin
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import current_deployment
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import decision_out
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import finish_abort
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import open_state
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import recorded_decision
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import set_extra
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import set_results_not_touched
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import shared_for
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import write
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import ACCEPT
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AUTH_ERROR
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DEFER
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import PENDING
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import REJECT
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import utcnow_iso

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateStore

# decisions after which the waves run (the explorer's wave observes it first)
PROCEED = (ACCEPT, PENDING)


def decision_is_reusable(decision: Optional[Mapping[str, Any]], now: float) -> bool:
    """May a recorded shared decision stand for this run (no one asked)?

    accept and reject: yes (they are final; the age limit was applied when
    reading it). defer: only while ``defer_until`` lies in the future.
    pending (not observed to the end) and declined (an observed refusal,
    which may also mean "still busy"): no, the explorer is asked anew.
    """
    if not decision:
        return False
    if decision["decision"] in (ACCEPT, REJECT):
        return True
    if decision["decision"] == DEFER:
        return decision.get("defer_until") is not None and float(decision["defer_until"]) > now
    return False


def shutdown_decide(params: Mapping[str, Any], check_mode: bool = False, client: Optional[AgentClient] = None,
                    store: Optional[StateStore] = None, clock: Callable[[], float] = time.time) -> Dict[str, Any]:
    """Decide once for all occurrences, or reuse a recent shared decision.

    Returns ``decision`` (accept/pending/reject/defer/none), ``proceed``
    (the waves should run: accept, or pending to be observed by wave 1),
    ``reused``, ``asked`` (names asked: at most the explorer),
    ``deployment_id``, ``waves`` (the effective plan, for the wave loop) and
    the report path.
    """
    plan = params["plan"]
    agent_id = plan["agent_id"]
    max_age = float(params["max_age"] if params.get("max_age") is not None else DEFAULT_MAX_AGE)
    now = clock()
    own_store = store is None
    store = store if store is not None else open_state(params, create=not check_mode)
    fresh = bool(params.get("fresh_decision"))
    try:
        if check_mode:
            prior = store.shared_decision(agent_id, SHUTDOWN, max_age) if store is not None and not fresh else None
            return _check_mode_result(plan, params["deployment_id"], prior, now)
        if store is None:
            # open_state creates the state outside check mode
            raise ShutdownError("no rollout state at %s" % params.get("state_path"))
        if not plan["waves"]:
            return _result_nothing(plan, params["deployment_id"], store.shared_decision(agent_id, SHUTDOWN, max_age))
        dep, mode, resumed_from = begin(store, params, plan, SHUTDOWN, clock)
        existing = shared_for(store, dep)
        replaced = None
        if existing and mode not in ("new", "complete") and (
                fresh or not store.shared_decision(agent_id, SHUTDOWN, max_age, deployment_id=dep["deployment_id"])):
            # a resumed deployment may only go on while its decision is younger than max_age (or no fresh one is asked for)
            replaced = _close_stale(store, dep, existing, max_age, fresh)
            new_id = params["deployment_id"]
            if new_id == dep["deployment_id"]:
                new_id = "%s-%s" % (new_id, time.strftime("%Y%m%d%H%M%S", time.gmtime(now)))
            dep, mode, resumed_from = begin(store, dict(params, deployment_id=new_id), plan, SHUTDOWN, clock)
            store.event(dep["deployment_id"], "replaced_stale_deployment", replaced)
            existing = shared_for(store, dep)
        deployment_id = dep["deployment_id"]
        waves = dep["plan"]
        if mode == "complete":
            path = write(store, params, deployment_id)[1]
            return _result(dep, existing, False, [], waves, path, "deployment already finished: %s" % (dep.get("message") or dep["status"]))
        events: List[Dict[str, Any]] = [dict(replaced, event="stale_deployment_closed")] if replaced else []
        decision, reused, asked = _known_decision(store, dep, mode, existing, agent_id, max_age, fresh, now, events)
        if decision is None:
            decision, answer, asked = _ask_explorer(store, params, dep, plan, clock, client)
            events.append({"event": "explorer_asked", "host": asked[0], "decision": answer["decision"],
                           "decision_id": answer.get("decision_id"), "reason": answer.get("reason")})
            if decision is None:
                msg = _explorer_failure(answer, asked[0])
                store.set_status(deployment_id, "failed", msg)
                set_results_not_touched(store, deployment_id)
                path = write(store, params, deployment_id, {"outcome": msg}, events)[1]
                raise ShutdownError(msg + " (report: %s)" % path)
        outcome = _apply_decision(store, deployment_id, decision, agent_id, params)
        path = write(store, params, deployment_id, {"outcome": outcome}, events)[1]
        res = _result(current_deployment(store, deployment_id), decision, reused, asked, waves, path, outcome)
        res["mode"] = mode
        res["resumed_from"] = resumed_from
        res["replaced_deployment"] = replaced
        res["changed"] = bool(asked)
        return res
    finally:
        if own_store and store is not None:
            store.close()


def _known_decision(store: StateStore, dep: Mapping[str, Any], mode: str, existing: Optional[Mapping[str, Any]], agent_id: str,
                    max_age: float, fresh: bool, now: float,
                    events: List[Dict[str, Any]]) -> Tuple[Optional[Dict[str, Any]], bool, List[str]]:
    """The decision that stands without asking anyone: ``(decision, reused, asked)`` or ``(None, False, [])``.

    The deployment's own decision (a rerun or a resumed run: a pending one is
    still being observed by the explorer's wave, the explorer is not asked
    twice), else a reusable decision of the agent from another deployment.
    """
    deployment_id = dep["deployment_id"]
    if existing and (decision_is_reusable(existing, now) or (existing["decision"] == PENDING and mode != "new")):
        reused = existing.get("deployment_id") == deployment_id and mode != "new" and existing["decision"] != PENDING
        return dict(existing, reused=reused), reused, []
    prior = None if fresh else store.shared_decision(agent_id, SHUTDOWN, max_age)
    if prior is None or not decision_is_reusable(prior, now):
        return None, False, []
    # the agent decided already (another run, another controller): nobody is asked
    decision_id = prior.get("decision_id") or fallback_decision_id(agent_id, prior["deployment_id"])
    store.record_shared_decision(agent_id, deployment_id, SHUTDOWN, prior["decision"], decision_id,
                                 prior.get("decided_by"), prior.get("reason"), prior.get("defer_until"),
                                 decided_at=prior["decided_at"])
    store.event(deployment_id, "shared_decision_reused", {"from_deployment": prior["deployment_id"],
                                                          "decision": prior["decision"]})
    events.append({"event": "decision_reused", "decision": prior["decision"],
                   "from_deployment": prior["deployment_id"], "decided_by": prior.get("decided_by")})
    return dict(prior, decision_id=decision_id, reused=True), True, []


def _ask_explorer(store: StateStore, params: Mapping[str, Any], dep: Mapping[str, Any], plan: Mapping[str, Any],
                  clock: Callable[[], float],
                  client: Optional[AgentClient]) -> Tuple[Optional[Dict[str, Any]], Dict[str, Any], List[str]]:
    """Ask the explorer (``scope: all_occurrences``) and record its answer as the shared decision.

    Returns ``(decision or None when it gave none, answer, [explorer])``.
    """
    deployment_id = dep["deployment_id"]
    agent_id = plan["agent_id"]
    explorer = dep["plan"][0]["members"][0]
    body = {"reason": dep["params"].get("message") or plan.get("message"), "force": False, "confirm": True,
            "deployment_id": deployment_id, "scope": "all_occurrences", "decision_ref": None}
    close = client is None
    client = client or client_from_params(params)
    try:
        store.mark_asked(deployment_id, [explorer["name"]])
        set_extra(store, deployment_id, {explorer["name"]: {"asked": {"scope": "all_occurrences", "decision_ref": None,
                                                                      "message": "plan (see plan_message)",
                                                                      "at": utcnow_iso(clock())}}})
        answer = client.ask(explorer["agent_url"], body)
    finally:
        if close:
            client.close()
    store.record_answers(deployment_id, [dict(answer, host=explorer["name"], wave=1, cohort=EXPLORER)])
    if answer["decision"] not in (ACCEPT, PENDING, REJECT, DEFER):
        return None, answer, [explorer["name"]]
    decision_id = answer.get("decision_id") or fallback_decision_id(agent_id, deployment_id)
    reason = answer.get("reason")
    if answer["decision"] == PENDING and not reason:
        reason = "answered without a decision: deliberating as a task; observed until it stops"
    store.record_shared_decision(agent_id, deployment_id, SHUTDOWN, answer["decision"], decision_id,
                                 explorer["name"], reason, answer.get("defer_until"))
    decision = recorded_decision(store, agent_id, SHUTDOWN, deployment_id)
    return dict(decision, reused=False), answer, [explorer["name"]]


def _apply_decision(store: StateStore, deployment_id: str, decision: Mapping[str, Any], agent_id: str,
                    params: Mapping[str, Any]) -> str:
    d = decision["decision"]
    who = decision.get("decided_by") or "the explorer"
    stop_timeout = secs(params.get("stop_timeout") or DEFAULT_STOP_TIMEOUT)
    if d == ACCEPT:
        return ("accepted by %s for all occurrences of %s (its stop is observed, within %s s, before anyone else "
                "is told)" % (who, agent_id, stop_timeout))
    if d == PENDING:
        return ("%s answered without a decision (it deliberates as a task): its decision is what it does; observing "
                "it for up to %s s (stopped = accept, still working = declined)" % (who, stop_timeout))
    if d == REJECT:
        msg = "rejected by %s for all occurrences of %s: %s; no occurrence shuts down" % (who, agent_id, decision.get("reason") or "no reason given")
        store.set_status(deployment_id, "completed", msg)
        set_results_not_touched(store, deployment_id, "kept_running")
        return msg
    until = utcnow_iso(decision["defer_until"]) if decision.get("defer_until") else "unknown"
    msg = "deferred by %s: nothing happens now; ask again after %s (%s)" % (who, until, decision.get("reason") or "no reason given")
    store.set_status(deployment_id, "completed", msg)
    set_results_not_touched(store, deployment_id, "kept_running")
    return msg


def _close_stale(store: StateStore, dep: Mapping[str, Any], decision: Mapping[str, Any], max_age: float,
                 fresh: bool) -> Dict[str, Any]:
    """Abort an interrupted deployment whose shared decision may no longer be used; say why."""
    if fresh:
        why = "a fresh decision was requested (fresh_decision)"
    else:
        why = "its shared decision (%s by %s at %s) is older than max_age %ss" % (
            decision["decision"], decision.get("decided_by") or "-",
            utcnow_iso(decision["decided_at"]) if decision.get("decided_at") else "-", secs(max_age))
    msg = "closed without finishing: %s; the explorer is asked anew in a new deployment" % why
    finish_abort(store, dep["deployment_id"], msg, status="aborted")
    return {"deployment_id": dep["deployment_id"], "reason": msg}


def _explorer_failure(answer: Mapping[str, Any], explorer: str) -> str:
    if answer["decision"] == AUTH_ERROR:
        return "authentication failed asking the explorer %s: check the token (HTTP %s); nobody was shut down" % (
            explorer, answer.get("http_status"))
    return "the explorer %s did not answer the shutdown request (%s); nobody was shut down" % (
        explorer, answer.get("reason") or answer["decision"])


def _check_mode_result(plan: Mapping[str, Any], deployment_id: str, prior: Optional[Mapping[str, Any]],
                       now: float) -> Dict[str, Any]:
    if not plan["waves"]:
        return _result_nothing(plan, deployment_id, prior)
    reused = prior if prior is not None and decision_is_reusable(prior, now) else None
    reuse = reused is not None
    explorer = plan["waves"][0]["members"][0]["name"]
    return {
        "changed": True,
        "deployment_id": deployment_id,
        "decision": reused["decision"] if reused else None,
        "decided": decision_out(reused, True) if reused else None,
        "reused": reuse,
        "asked": [] if reuse else [explorer],
        "would_ask": None if reuse else explorer,
        "proceed": False,
        "waves": _wave_loop(plan["waves"]),
        "outcome": ("would reuse the %s decided by %s" % (reused["decision"], reused.get("decided_by"))) if reused
        else "would ask the explorer %s (scope all_occurrences)" % explorer,
    }


def _result_nothing(plan: Mapping[str, Any], deployment_id: str, prior: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    return {
        "changed": False, "deployment_id": deployment_id, "decision": None,
        "decided": decision_out(prior, True) if prior else None, "reused": False, "asked": [], "proceed": False,
        "waves": [], "outcome": "nothing to shut down: no occurrence of %s is serving (%d known)" % (plan["agent_id"], plan.get("total") or 0),
    }


def _wave_loop(waves: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    return [{"index": w["index"], "name": w["name"], "size": w["size"], "delay": w.get("delay"),
             "batches": [len(b["members"]) for b in (w.get("batches") or [])],
             "members": [m["name"] for m in w.get("members") or []]} for w in waves]


def _result(dep: Mapping[str, Any], decision: Optional[Mapping[str, Any]], reused: bool, asked: List[str],
            waves: Sequence[Mapping[str, Any]], report_path: str, outcome: str) -> Dict[str, Any]:
    return {
        "changed": bool(asked),
        "deployment_id": dep["deployment_id"],
        "status": dep["status"],
        "decision": decision["decision"] if decision else None,
        "decided": decision_out(decision, reused) if decision else None,
        "reused": bool(reused),
        "asked": asked,
        "proceed": bool(decision and decision["decision"] in PROCEED and dep["status"] == "running"),
        "waves": _wave_loop(waves),
        "report_path": report_path,
        "outcome": outcome,
    }
