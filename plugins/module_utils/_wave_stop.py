# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a wave ends before its verdict, and every agent's outcome whichever way it ends.

A later batch of a rollout that an earlier wave halted (or an operator paused or failed) asks nobody
(:func:`stopped`); an error (:func:`aborted`), an operator's pause or fail (:func:`operator_guard`,
:func:`operator_stopped`) and SIGTERM/SIGINT (:func:`interrupted`) stop the wave under way, and none of them
leaves down an agent that stopped because it was asked (:func:`restart_stopped`). A rerun gates the agents
such a run handed over and never gated (:func:`ungated`). :func:`agent_outcomes` gives each agent its PLAY
RECAP row.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from typing import Callable
from typing import Dict
from typing import Iterable
from typing import List
from typing import Optional
from typing import Sequence
from typing import Tuple

from ansible_collections.agentfleet.rollout.plugins.module_utils._consent import OBSERVED_STOPPED
from ansible_collections.agentfleet.rollout.plugins.module_utils._consent import observe_stop
from ansible_collections.agentfleet.rollout.plugins.module_utils._outcome import rollout_outcomes
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import ACCEPT
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import PENDING
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.deployment import close_deployment
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.errors import RolloutError
from ansible_collections.agentfleet.rollout.plugins.module_utils._run import OperatorStop

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
    from ansible_collections.agentfleet.rollout.plugins.module_utils._run import Run
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateStore
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Agent
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Record
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import WaveOptions

# after SIGTERM/SIGINT: how long the cleanup waits for agents still draining to stop before it starts them
INTERRUPT_DRAIN_WAIT = 10.0
# an operator's pause or fail (from another process, see _lifecycle) stops a wave at once in these steps (every
# agent it updated is up already: a resume gates them); in the others (agents asked and stopping for the update)
# the wave ends first and the next one does not start
OPERATOR_STOP_STEPS = ("the health gate",)
OPERATOR_STATUSES = ("paused", "failed")
# how long one read of the deployment's generation and status serves the requests that follow it (the fence
# was read before every request: a fifth of a 1,000-agent wave call's CPU). A newer run (a rerun, a takeover)
# stops this one, and an operator's pause or fail is seen, within this much more; the newer run itself asks
# nobody before its plan play has run, which takes longer.
FENCE_TTL = 0.1


def stopped(store: StateStore, dep: Record, members: List[Agent]) -> Record:
    """A batch of a deployment that no longer runs (halted, closed, paused): nobody is asked; each agent's
    outcome says why."""
    rows = dict((r["host"], r) for r in store.agents(dep["deployment_id"], hosts=[m["name"] for m in members]))
    if dep["status"] == "paused":
        detail = "not asked: deployment %s is paused%s" % (
            dep["deployment_id"], (" (%s)" % dep["message"]) if dep.get("message") else "")
    else:
        detail = "not asked: the rollout stopped (deployment %s)%s" % (
            dep["status"], (": %s" % dep["message"]) if dep.get("message") else "")
    # an operator failed the deployment: every agent it kept from its update fails (the job fails, and AWX's
    # relaunch on failed hosts retries exactly them); after a failed wave the later agents are "ok, not asked"
    by_operator = dep["status"] == "failed" and failed_by_operator(store, dep["deployment_id"])
    outcomes: Dict[str, Record] = {}
    for m in members:
        row = rows.get(m["name"]) or {}
        result = row.get("result") or "not asked"
        outcomes[m["name"]] = {"result": result, "changed": False,
                               "failed": result == "failed" or (by_operator and result == "not asked"),
                               "detail": row.get("result_detail") or detail, "decision": row.get("decision"),
                               "version_before": row.get("version_before"), "version_after": row.get("version_after")}
    return {"changed": False, "halt": True, "halt_reason": detail, "outcomes": outcomes, "update_hosts": [],
            "update_agents": [], "update_map": {}, "needs_revert": False, "phase_done": "stopped", "line": detail}


def failed_by_operator(store: StateStore, deployment_id: str) -> bool:
    """Whether an operator's ``fail`` (agentfleet.rollout.fail, :func:`._lifecycle.fail`) ended the deployment."""
    return any(e["event"] == "deployment_failed" and (e.get("data") or {}).get("actor")
               for e in store.events(deployment_id))


def aborted(store: StateStore, client: AgentClient, opts: WaveOptions, dep: Record, wave: Record, members: List[Agent],
            exc: BaseException) -> RolloutError:
    """An error stopped the wave (a refused token, a malformed answer): no agent that stopped because we
    asked is left down. Starts them again (:func:`restart_stopped`) and returns the error to raise, its
    message saying who was started again (the playbook records it as the deployment's failure)."""
    notes = restart_stopped(store, client, opts, dep, members, why="the wave stopped on an error")
    message = str(exc) or exc.__class__.__name__
    if notes:
        message += "; " + "; ".join(notes)
    return RolloutError(message)


def operator_guard(store: StateStore, run: Run, phase: str, ttl: float = FENCE_TTL,
                   monotonic: Callable[[], float] = time.monotonic) -> Callable[[], None]:
    """The run's fence: a newer run stops this one (StaleRunError); an operator's pause or fail stops it
    in the steps of OPERATOR_STOP_STEPS (the health gate, of every driver). The state is read at most once
    every ``ttl`` seconds (a stale read raises every time: it is never kept)."""
    # (when, what check_fence said): one tuple, replaced whole by whichever thread reads
    last: List[Tuple[Optional[float], Optional[Tuple[str, Optional[str]]]]] = [(None, None)]

    def guard() -> None:
        t = monotonic()
        read_at, now = last[0]
        if read_at is None or t - read_at >= ttl:
            now = store.check_fence()
            last[0] = (t, now)
        if (now and now[0] in OPERATOR_STATUSES and phase in ("all", "ask", "round") and run.step in OPERATOR_STOP_STEPS
                and not run.cleaning):
            raise OperatorStop(now[0], now[1] or now[0])

    return guard


def operator_stopped(store: StateStore, client: AgentClient, run: Run, opts: WaveOptions, dep: Record, wave: Record,
                     members: List[Agent], secrets: Sequence[str], exc: OperatorStop) -> Record:
    """An operator paused or failed the deployment while this wave waited: start again every agent that
    stopped for us and is not yet handed over, record the deployment with the operator's status and where
    it stopped. A paused deployment resumes with a rerun (agentfleet.rollout.resume): the agents already
    started are gated then, without being started again."""
    deployment_id = dep["deployment_id"]
    with run.cleaning_up():
        notes = restart_stopped(store, client, opts, dep, members)
    message = "%s; stopped during %s in wave %s (%s)%s" % (
        str(exc), run.step, wave["index"], wave["name"], ("; " + "; ".join(notes)) if notes else "")
    if exc.status == "paused":
        message += "; resume with agentfleet.rollout.resume (a rerun continues from here)"
    store.event(deployment_id, "wave_stopped", {"wave": wave["index"], "step": run.step, "status": exc.status})
    closed = close_deployment(store, deployment_id, halt_reason=message, report_path=opts.report_path,
                              audit_path=opts.audit_path, secrets=secrets, status=exc.status)
    line = "deployment %s %s: %s" % (deployment_id, exc.status, message)
    return {"changed": True, "failed": exc.status != "paused", "paused": exc.status == "paused", "msg": line,
            "line": line, "halt": True, "halt_reason": message, "phase_done": exc.status, "needs_revert": False,
            "update_hosts": [], "update_agents": [], "update_map": {}, "rollout_deployment_summary": closed,
            "outcomes": agent_outcomes(store, deployment_id, members, [])}


def interrupted(store: StateStore, client: AgentClient, run: Run, opts: WaveOptions, dep: Record, wave: Record,
                members: List[Agent], secrets: Sequence[str], why: str) -> Record:
    """SIGTERM/SIGINT stopped the wave between two steps: start again every agent that stopped for us,
    record the deployment ``interrupted`` with where it stopped, and say so."""
    deployment_id = dep["deployment_id"]
    with run.cleaning_up():
        notes = restart_stopped(store, client, opts, dep, members)
    message = "%s in wave %s (%s)%s; rerun the playbook to resume deployment %s" % (
        why, wave["index"], wave["name"], ("; " + "; ".join(notes)) if notes else "", deployment_id)
    store.event(deployment_id, "wave_interrupted", {"wave": wave["index"], "step": run.step,
                                                    "signal": run.signal_name})
    closed = close_deployment(store, deployment_id, halt_reason=message, report_path=opts.report_path,
                              audit_path=opts.audit_path, secrets=secrets, status="interrupted")
    return {"changed": True, "failed": True, "interrupted": True, "msg": message, "line": message, "halt": True,
            "halt_reason": message, "phase_done": "interrupted", "needs_revert": False, "update_hosts": [],
            "update_agents": [], "update_map": {}, "rollout_deployment_summary": closed,
            "outcomes": agent_outcomes(store, deployment_id, members, [])}


def restart_stopped(store: StateStore, client: AgentClient, opts: WaveOptions, dep: Record, members: List[Agent],
                    why: str = "the interrupt") -> List[str]:
    """The agents of the wave that consented and are (or are about to be) down and not yet handed to the
    driver: wait a little for those still draining, then say who is down and who starts them (the ``none``
    driver's supervisor starts them by itself; with the tasks and docker drivers a run stopped by a signal
    runs no more tasks: the rerun's first round starts them). Returns notes for the message."""
    deployment_id = dep["deployment_id"]
    rows = dict((r["host"], r) for r in store.agents(deployment_id, hosts=[m["name"] for m in members]))
    waiting = [m for m in members if (rows.get(m["name"]) or {}).get("decision") in (ACCEPT, PENDING)
               and not (rows.get(m["name"]) or {}).get("result")]
    if not waiting:
        return []
    # an agent that consented is about to stop (draining, or still deciding): give it a moment to
    # be down, so that it is started again rather than left down after we are gone
    none = opts.driver == "none"
    wait = min(INTERRUPT_DRAIN_WAIT, float(opts.stop_timeout or INTERRUPT_DRAIN_WAIT))
    observed = observe_stop(client, waiting, wait, poll_interval=0.25, supervisor_restarts=none,
                            target_version=dep["target_version"])
    names = [m["name"] for m in waiting if observed[m["name"]]["outcome"] == OBSERVED_STOPPED]
    notes: List[str] = []
    busy = [m["name"] for m in waiting if m["name"] not in names]
    if busy:
        notes.append("asked and not stopped when the run ended (%s): %s" % (
            "their supervisor restarts them if they stop" if none else "a rerun watches them", ", ".join(busy)))
    if not names:
        return notes
    # they consented and acted on it (observed): recorded, so that a rerun never asks them again
    store.record_answers(deployment_id, [{"host": h, "decision": ACCEPT, "reason": "observed: stopped",
                                          "answered_at": rows[h].get("answered_at")}
                                         for h in names if rows[h].get("decision") == PENDING])
    if none:
        store.set_results(deployment_id, [{"host": h, "result": "updated", "detail": (
            "stopped for the update and started again by its supervisor after %s; not gated: a rerun gates it" % why)}
            for h in names])
        notes.append("stopped for the update, started again by their supervisor (not gated; a rerun gates them): %s"
                     % ", ".join(names))
    else:
        # the tasks and docker drivers: this run ends here (a signal); the rerun's update tasks start them
        notes.append("stopped for the update; the rerun starts them (its first round updates them): %s"
                     % ", ".join(names))
    return notes


def ungated(store: StateStore, dep: Record, wave: Record, members: List[Agent]) -> List[Agent]:
    """Members an earlier run of this still unfinished wave handed to the driver (result ``updated``)
    but whose gate never ended: a rerun gates them without starting them again."""
    status = dict((w["wave"], w["status"]) for w in store.waves(dep["deployment_id"])).get(wave["index"])
    if status != "running":
        return []
    rows = dict((r["host"], r) for r in store.agents(dep["deployment_id"], hosts=[m["name"] for m in members]))
    out = []
    for m in members:
        row = rows.get(m["name"]) or {}
        if row.get("decision") in (ACCEPT, PENDING) and row.get("result") == "updated":
            agent = dict(m)
            agent["version_before"] = row.get("version_before")
            agent["version"] = row.get("version_before")
            out.append(agent)
    return out


def agent_outcomes(store: StateStore, deployment_id: str, members: List[Agent], this_run: Iterable[str]) -> Dict[str, Record]:
    """One outcome per member for its PLAY RECAP row: ``{host: {result, changed, failed, detail}}``.

    ``changed`` when updated in this run; ``failed`` when its update or gate failed, it did not stop
    after accepting, or it was unreachable; ``ok`` for every answer (reject, defer, decline), a skip, or
    an update of an earlier run.
    """
    # the one outcome mapping of rollouts, shutdowns and wakeups (:mod:`._outcome`)
    return rollout_outcomes(store.agents(deployment_id, hosts=[m["name"] for m in members]), members, this_run)
