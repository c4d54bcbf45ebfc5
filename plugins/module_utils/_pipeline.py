# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``tasks`` and ``docker`` drivers' wave: a per-agent pipeline in rounds inside one Ansible batch.

An agent's update starts as soon as *that* agent has stopped, not when the slowest agent of its
wave has. Within Ansible's rules (no third-party strategy plugin) the batch runs in rounds:

``phase: ask`` (once per batch)
    start the wave, ask every agent (never twice), sort out what an earlier run of this wave left
    (:func:`_earlier_run`), then wait until the first agents have stopped and hand those over.
``phase: round`` (the role includes ``wave_round.yml`` again while ``done`` is false)
    record what the previous round's tasks did (the action plugin reads each host's result), then
    the next step (:func:`_step`): wait until more agents have stopped and hand those over; once
    none is left to watch, gate the updated agents and judge the wave; a failed wave with
    ``auto_revert`` goes back through the tasks with purpose ``revert``, and so does every agent whose
    update tasks failed (whatever ``auto_revert`` and the verdict); then record the wave.

Each call hands over a *round*: ``update_hosts`` with ``update_map`` (version, previous version and
purpose per host), and ``round``, the pipeline's state that the role passes back verbatim.

Never left down: an agent whose update tasks failed is put back on the version it ran before, also when
the wave stops early (its row ``reverted``, final for the deployment: its consent was used, and a rerun
never asks again). An
error while asking (a refused token, a malformed answer) or an operator's ``fail`` stops the wave,
but the agents that stopped because we asked are still handed to the
tasks (on the target: they consented; a rerun gates them) before the wave ends. Agents still
draining then are watched for at most :data:`._pipeline_watch.DRAIN_WAIT` seconds (the stop watch
is :mod:`._pipeline_watch`'s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Callable
from typing import Collection
from typing import Dict
from typing import Iterable
from typing import List
from typing import Optional
from typing import Sequence
from typing import Set

from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import analyse_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import measurement_auditor
from ansible_collections.agentfleet.rollout.plugins.module_utils._consent import probe_liveness
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import gate_agents
from ansible_collections.agentfleet.rollout.plugins.module_utils._pipeline_watch import agent_of
from ansible_collections.agentfleet.rollout.plugins.module_utils._pipeline_watch import operator_check
from ansible_collections.agentfleet.rollout.plugins.module_utils._pipeline_watch import stop_on
from ansible_collections.agentfleet.rollout.plugins.module_utils._pipeline_watch import watch_stops
from ansible_collections.agentfleet.rollout.plugins.module_utils._policy import progress_deadline_at
from ansible_collections.agentfleet.rollout.plugins.module_utils._policy import remaining
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import ACCEPT
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import PENDING
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import STOPPED
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import WORKING
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import version_matches
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.ask import ask_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.deployment import close_deployment
from ansible_collections.agentfleet.rollout.plugins.module_utils._run import RunStopped
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StaleRunError
from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_stop import agent_outcomes
from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_stop import ungated

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateStore
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import AgentRow
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Agent
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Finish
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Passes
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Progress
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Record
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Stepped
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import WaveOptions

ROUND_PHASES = ("ask", "round")


class Ctx:
    """What every step of the pipeline needs (one wave, one call)."""

    def __init__(self, store: StateStore, client: AgentClient, opts: WaveOptions, dep: Record, wave: Record,
                 members: List[Agent], secrets: Sequence[str], clock: Callable[[], float], monotonic: Callable[[], float],
                 sleep: Callable[[float], None], progress: Progress, run: Stepped, finish: Finish, passes: Passes) -> None:
        self.store, self.client, self.opts, self.dep = store, client, opts, dep
        self.wave, self.members, self.secrets = wave, members, secrets
        self.clock, self.monotonic, self.sleep, self.progress, self.run = clock, monotonic, sleep, progress, run
        self.finish, self.passes = finish, passes
        self.deployment_id: str = dep["deployment_id"]
        self.target: str = dep["target_version"]
        self.by_name = dict((m["name"], m) for m in members)

    def rows(self) -> Dict[str, AgentRow]:
        return dict((r["host"], r) for r in self.store.agents(self.deployment_id, hosts=list(self.by_name)))

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress("wave %s %s: %s" % (self.wave["index"], self.wave["name"], text))


def run_pipeline(ctx: Ctx, out: Record) -> Record:
    """``phase: ask`` or ``phase: round`` of the tasks/docker drivers' wave."""
    if ctx.opts.phase == "ask":
        return _ask(ctx, out)
    rnd = dict(ctx.opts.round or {})
    if not rnd.get("id"):
        raise ValueError("round: phase=round needs the round returned by the previous phase (ask or round)")
    _record_round(ctx, rnd)
    return _step(ctx, rnd, out)


def _new_round(ctx: Ctx, now: float) -> Record:
    """The pipeline's state; its times are readings of the monotonic clock (one controller runs every call of a
    wave, and a wall clock stepped by NTP must not settle agents that are still draining)."""
    deadline_at = progress_deadline_at(now, ctx.opts.progress_deadline)
    stop_timeout, cut = remaining(deadline_at, now, float(ctx.opts.stop_timeout))
    return {"id": None, "n": 0, "purpose": "update", "hosts": [], "stage": "watch", "asked_at": now,
            "stop_until": now + stop_timeout, "stop_cut": bool(cut), "progress_deadline_at": deadline_at,
            "error": None, "drained": [], "notes": [], "gate": None, "handed": []}


def _ask(ctx: Ctx, out: Record) -> Record:
    opts = ctx.opts
    rnd = _new_round(ctx, ctx.monotonic())
    ctx.run.step = "asking the agents"
    fresh: Set[str] = set()
    retry: List[Agent] = []
    asked_since = ctx.store.clock()
    # started by an earlier run of this wave that ended before its verdict (killed, interrupted): gated in this
    # one, not started again (a wave that was judged already gates nobody again)
    rnd["handed"] = [a["name"] for a in ungated(ctx.store, ctx.dep, ctx.wave, ctx.members)]
    try:
        asked = ask_wave(ctx.store, ctx.client, opts, ctx.dep, ctx.wave, ctx.members, ctx.secrets, ctx.clock,
                         ctx.sleep, opts.reask_until)
        out.update(asked=asked["asked"], reason=asked["reason"], counts=asked["counts"])
        fresh = set(asked["asked"])
        retry = asked["retry_agents"]
        # asked again (a retry after a refused token, say) and consenting now: what the earlier run recorded for
        # it is over; it is watched like the others
        rows = ctx.rows()
        stale = [a["name"] for a in asked["consenting_agents"] if (rows.get(a["name"]) or {}).get("result")]
        if stale:
            ctx.store.set_results(ctx.deployment_id, [{"host": h, "result": None, "detail": None} for h in stale])
    except (RunStopped, StaleRunError):
        raise
    except Exception as exc:
        # a refused token, a malformed answer: the wave stops, but only after the agents that stopped for us
        # have been handed to the tasks (never left down)
        stop_on(ctx, rnd, str(exc) or exc.__class__.__name__)
        # asked by this call before the error (recorded as each answer came): not from an earlier run
        fresh = set(r["host"] for r in ctx.store.agents(ctx.deployment_id, hosts=list(ctx.by_name))
                    if (r.get("asked_at") or 0) >= asked_since)
    handover = retry + _earlier_run(ctx, rnd, fresh)
    return _step(ctx, rnd, out, handover)


def _earlier_run(ctx: Ctx, rnd: Record, fresh: Collection[str]) -> List[Agent]:
    """A rerun knows what already happened to the agents whose answer an earlier run recorded.

    Working on the target: taken as updated (gated, no stop wait). Down: its update. Seen stopped by
    an earlier run (``seen_stopped``, written the moment a watch sees it) and working on its old
    version: its update. Anything else (an explicit accept not yet acted on, still deciding or
    draining) is watched as usual: nothing is handed over that has not stopped. Nobody is asked again.
    """
    rows = ctx.rows()
    known = [m for m in ctx.members if m["name"] not in fresh
             and (rows.get(m["name"]) or {}).get("decision") in (ACCEPT, PENDING)
             and not (rows.get(m["name"]) or {}).get("result")]
    if not known:
        return []
    states = dict(ctx.client.fan_out(lambda m: (m["name"], probe_liveness(ctx.client, m["agent_url"])), known))
    on_target: List[str] = []
    handover: List[Agent] = []
    accepted: List[str] = []
    for m in known:
        row = rows[m["name"]]
        state, dummy, info = states[m["name"]]
        if state == WORKING and version_matches((info or {}).get("version"), ctx.target):
            on_target.append(m["name"])
        elif state == STOPPED or (state == WORKING and (row.get("extra") or {}).get("seen_stopped")):
            handover.append(agent_of(m, row))
            if row.get("decision") == PENDING:
                accepted.append(m["name"])
    if on_target:
        record_found_on_target(ctx.store, ctx.deployment_id, rows, on_target, ctx.target, "updated by an earlier run; gated")
        ctx.say("already on %s after an earlier run, gated without a stop wait: %s" % (ctx.target, ", ".join(on_target)))
        rnd["handed"] = sorted(set(rnd["handed"]) | set(on_target))
    if accepted:
        ctx.store.record_answers(ctx.deployment_id, [
            {"host": h, "decision": ACCEPT, "reason": "observed: stopped (seen by a rerun)",
             "answered_at": rows[h].get("answered_at")} for h in accepted])
    return handover


def record_found_on_target(store: StateStore, deployment_id: str, rows: Dict[str, AgentRow], hosts: Iterable[str],
                           target: str, how: str) -> None:
    """Record ``hosts`` (asked by an earlier run, found working on ``target`` by a rerun) as having accepted
    and been updated."""
    store.record_answers(deployment_id, [
        {"host": h, "decision": ACCEPT, "reason": "observed: working on %s after an earlier run" % target,
         "answered_at": rows[h].get("answered_at")} for h in hosts if rows[h].get("decision") == PENDING])
    store.set_results(deployment_id, [
        {"host": h, "result": "updated", "detail": "found working on %s (%s)" % (target, how)} for h in hosts])


def _step(ctx: Ctx, rnd: Record, out: Record, handover: Iterable[Agent] = ()) -> Record:
    handing = list(handover)
    if rnd["stage"] == "watch":
        operator_check(ctx, rnd)
        if not handing:
            handing = watch_stops(ctx, rnd)
        if handing:
            return _hand_over(ctx, rnd, out, handing, "update")
        rnd["stage"] = "gate"
    if rnd["stage"] == "gate":
        if rnd.get("error"):
            return _end_early(ctx, rnd, out)
        return _gate(ctx, rnd, out)
    if rnd["stage"] == "revert":
        _record_put_back(ctx, rnd)
        if rnd.get("error"):
            return _ended_early(ctx, rnd, out)
        wave_revert = bool(rnd.get("wave_revert"))
        out["needs_revert"] = wave_revert
        gated = set(rnd.get("gated") or [])
        rows = ctx.rows()
        return _done(ctx, rnd, ctx.finish(ctx.store, ctx.opts, ctx.dep, ctx.wave, ctx.members,
                                          [agent_of(m, rows[m["name"]]) for m in ctx.members if m["name"] in gated],
                                          rnd["gate"], list(rnd.get("reverted") or []) if wave_revert else [],
                                          ctx.secrets, out))
    raise ValueError("round: unknown stage %r" % rnd["stage"])


def _end_early(ctx: Ctx, rnd: Record, out: Record) -> Record:
    """The wave stops without a gate (an error, an operator's fail): not before the agents whose update failed are
    back on their previous version (never left down; the revert stage then ends it)."""
    down = _update_failed(ctx, rnd)
    if down:
        rnd["stage"] = "revert"
        rnd["gated"] = []
        return _hand_over(ctx, rnd, out, down, "revert")
    return _ended_early(ctx, rnd, out)


def _update_failed(ctx: Ctx, rnd: Record) -> List[Agent]:
    """The agents whose update tasks failed in this run and that can go back (their previous version is known):
    they stopped because they were asked and may be down. Those whose previous version is unknown are named in
    the wave's notes (nothing can start them on it)."""
    if not rnd.get("update_failed"):
        return []   # nothing failed in this run: no read of the wave's rows
    failed = _recorded(ctx, rnd["update_failed"], "failed")
    unknown = sorted(a["name"] for a in failed if not a.get("version"))
    if unknown:
        rnd["notes"].append("update tasks failed, previous version unknown, not started again: %s" % ", ".join(unknown))
    return [a for a in failed if a.get("version")]


def _record_put_back(ctx: Ctx, rnd: Record) -> None:
    """Record ``reverted`` the agents whose update failed and whose revert tasks (the last round) put them back:
    final for this deployment (their consent was used; a rerun never asks again), with why in the row. (An
    agent whose update failed was never handed to the gate, so the wave's revert of gated agents is not here.)"""
    reverted = set(rnd.get("reverted") or [])
    back = [h for h in rnd.get("update_failed") or [] if h in reverted]
    if back:
        rows = ctx.rows()
        ctx.store.set_results(ctx.deployment_id, [
            {"host": h, "result": "reverted", "version_after": None,
             "detail": "%s; started again on its previous version %s (never left down)" % (
                 (rows.get(h) or {}).get("result_detail") or "its update tasks failed",
                 (rows.get(h) or {}).get("version_before"))} for h in back])


def _hand_over(ctx: Ctx, rnd: Record, out: Record, agents: List[Agent], purpose: str) -> Record:
    rnd["n"] = int(rnd.get("n") or 0) + 1
    rnd["id"] = "%s:%s:%d" % (ctx.deployment_id, ctx.wave["index"], rnd["n"])
    rnd["purpose"] = purpose
    rnd["hosts"] = [a["name"] for a in agents]
    update_map: Dict[str, Record] = {}
    for a in agents:
        if purpose == "update":
            update_map[a["name"]] = {"version": ctx.target, "previous_version": a.get("version_before") or "",
                                     "purpose": purpose}
        else:
            update_map[a["name"]] = {"version": a["version"], "previous_version": ctx.target, "purpose": purpose}
    ctx.run.step = "%s round %d" % (purpose, rnd["n"])
    line = "wave %s %s: round %d: %s %s" % (ctx.wave["index"], ctx.wave["name"], rnd["n"],
                                            "updating" if purpose == "update" else "reverting",
                                            ", ".join(rnd["hosts"]))
    ctx.say(line.split(": ", 1)[1])
    out.update(phase_done="round", done=False, round=rnd, update_hosts=rnd["hosts"], update_map=update_map,
               line=line, msg=line, needs_revert=purpose == "revert",
               revert_hosts=rnd["hosts"] if purpose == "revert" else [],
               outcomes={})
    return out


def _record_round(ctx: Ctx, rnd: Record) -> None:
    """What the previous round's tasks did, as the action plugin read it from each host
    (``update_failed``: host -> error; ``driver_results``: host -> what the driver reported)."""
    hosts = list(rnd.get("hosts") or [])
    if not hosts:
        return
    failed = dict((h, msg) for h, msg in (ctx.opts.update_failed or {}).items() if h in hosts)
    driver = dict((h, r) for h, r in (ctx.opts.driver_results or {}).items() if h in hosts and r)
    purpose = rnd.get("purpose") or "update"
    if driver:
        ctx.store.merge_agent_extra(ctx.deployment_id, dict((h, {"driver_" + purpose: r}) for h, r in driver.items()))
    ok = [h for h in hosts if h not in failed]
    if purpose == "update":
        if rnd.get("error"):
            detail = ("stopped for the update and started again on %s after the wave stopped (%s); not gated: a "
                      "rerun gates it" % (ctx.target, rnd["error"]))
        else:
            detail = None
        ctx.store.set_results(ctx.deployment_id, [{"host": h, "result": "updated", "detail": detail} for h in ok]
                              + [{"host": h, "result": "failed", "detail": "update tasks failed: %s" % msg}
                                 for h, msg in failed.items()])
        rnd["handed"] = sorted(set(rnd.get("handed") or []) | set(ok))
        # stopped for us and down: a revert of the wave (auto_revert) starts them on their previous version too
        rnd["update_failed"] = sorted(set(rnd.get("update_failed") or []) | set(failed))
        if rnd.get("error") and ok:
            rnd["notes"].append("started again on %s (not gated; a rerun gates them): %s" % (ctx.target, ", ".join(ok)))
    else:
        rnd["reverted"] = ok
        if failed:
            rnd["notes"].append("revert tasks failed: %s" % "; ".join("%s (%s)" % kv for kv in sorted(failed.items())))
    rnd["hosts"] = []


def _handed(ctx: Ctx, names: Optional[Collection[str]] = None) -> List[Agent]:
    """The agents to gate: this wave's agents handed to the tasks and recorded ``updated`` (in this run or an
    earlier run of the wave whose gate never ended)."""
    return _recorded(ctx, names, "updated", (ACCEPT, PENDING))


def _recorded(ctx: Ctx, names: Optional[Collection[str]], result: str,
              decisions: Optional[Collection[str]] = None) -> List[Agent]:
    """This wave's agents (of ``names``, None: all) whose recorded result is ``result`` (and decision one of
    ``decisions``), as agents with the version they ran before."""
    rows = ctx.rows()
    return [agent_of(m, rows[m["name"]]) for m in ctx.members
            if (names is None or m["name"] in names)
            and (rows.get(m["name"]) or {}).get("result") == result
            and (decisions is None or (rows.get(m["name"]) or {}).get("decision") in decisions)]


def _gate(ctx: Ctx, rnd: Record, out: Record) -> Record:
    opts = ctx.opts
    handed = _handed(ctx, rnd.get("handed") or [])
    ctx.run.step = "the health gate"
    gate_opts, cut = opts.gate_cut(rnd.get("progress_deadline_at"), ctx.monotonic())
    gate: Record = gate_agents(ctx.client, handed, gate_opts.as_params(),
                               ctx.target if opts.health.require_target_version else None,
                               clock=ctx.monotonic, sleep=ctx.sleep,
                               progress=None if ctx.progress is None else (lambda text: ctx.say("health gate: " + text)))
    if gate.get("warnings"):
        out.setdefault("warnings", []).extend(gate["warnings"])
    gate = analyse_wave(gate, ctx.client, handed, opts.as_params(), ctx.store, ctx.dep, ctx.wave, clock=ctx.monotonic,
                        sleep=ctx.sleep, progress=None if ctx.progress is None else ctx.say,
                        audit=measurement_auditor(opts.audit_path, ctx.dep, ctx.wave, ctx.secrets))
    operator_check(ctx, rnd)
    if rnd.get("error"):
        # an operator failed the deployment while the gate waited: no verdict, no wave revert; only the agents
        # whose update failed go back
        return _end_early(ctx, rnd, out)
    stalled = rnd.get("stalled")
    if cut and not gate["passed"] and not stalled:
        stalled = opts.stall_note("%d of %d updated agents not stable" % (len(gate["unstable"]), gate["total"]))
    if stalled:
        gate.update(blocked=stalled, reason=stalled, passed=False)
    revertable = [a for a in handed if a.get("version")]
    # agents whose update tasks failed stopped because we asked and may be down: never left down, they go back to
    # the version they ran before, with the wave's revert (auto_revert and a failed wave) or on their own
    down = _update_failed(ctx, rnd)
    wave_revert = bool(opts.auto_revert and (revertable or down)
                       and not ctx.passes(ctx.store, opts, ctx.dep, ctx.wave, gate))
    if wave_revert or down:
        rnd["stage"] = "revert"
        rnd["gate"] = gate
        rnd["gated"] = [a["name"] for a in handed]
        rnd["wave_revert"] = wave_revert
        if wave_revert:
            # recorded before the revert tasks run: a run killed before the next call leaves them failed (the wave
            # failed), never gated again as if updated; the revert round records them reverted
            ctx.store.set_results(ctx.deployment_id, [
                {"host": a["name"], "result": "failed", "detail": "the wave failed its gate; being put back on %s"
                 % a["version"]} for a in revertable])
        return _hand_over(ctx, rnd, out, (revertable if wave_revert else []) + down, "revert")
    out["needs_revert"] = False
    return _done(ctx, rnd, ctx.finish(ctx.store, opts, ctx.dep, ctx.wave, ctx.members, handed, gate, [],
                                      ctx.secrets, out))


def _ended_early(ctx: Ctx, rnd: Record, out: Record) -> Record:
    """The wave stopped on an error or an operator's fail: no gate; the deployment ends ``failed`` with the
    error and who was started again; every agent's outcome says what happened to it."""
    message = "wave %s (%s) stopped: %s" % (ctx.wave["index"], ctx.wave["name"], rnd["error"])
    if rnd.get("notes"):
        message += "; " + "; ".join(rnd["notes"])
    rows = ctx.rows()
    # asked in this wave, with no answer recorded (the request failed): failed with the wave's error
    ctx.store.set_results(ctx.deployment_id, [
        {"host": m["name"], "result": "failed", "detail": "the wave stopped before this agent answered: %s"
         % rnd["error"]} for m in ctx.members
        if not (rows.get(m["name"]) or {}).get("decision") and not (rows.get(m["name"]) or {}).get("result")
        and (rows.get(m["name"]) or {}).get("asked_at")])
    ctx.store.event(ctx.deployment_id, "wave_stopped", {"wave": ctx.wave["index"], "step": ctx.run.step,
                                                        "status": rnd.get("operator") or "error"})
    closed = close_deployment(ctx.store, ctx.deployment_id, halt_reason=message,
                              report_path=ctx.opts.report_path, audit_path=ctx.opts.audit_path,
                              secrets=ctx.secrets, status="failed")
    outcomes = agent_outcomes(ctx.store, ctx.deployment_id, ctx.members, rnd.get("handed") or [])
    if rnd.get("operator") == "failed":
        # as for the later waves (_wave_stop.stopped): the agents the operator's fail kept from their update fail
        for outcome in outcomes.values():
            if outcome["result"] in ("not asked", "pending"):
                outcome.update(failed=True, detail="not updated: %s" % rnd["error"])
    out.update(phase_done="stopped", line=message, msg=message, halt=True, halt_reason=message, passed=False,
               error=rnd["error"], rollout_deployment_summary=closed, needs_revert=False, outcomes=outcomes)
    return _done(ctx, rnd, out)


def _done(ctx: Ctx, rnd: Record, out: Record) -> Record:
    rnd["hosts"] = []
    rnd["stage"] = "done"
    out.update(done=True, round=rnd, update_hosts=[], update_map={})
    if rnd.get("notes") and out.get("line") and not rnd.get("error"):
        out["notes"] = list(rnd["notes"])
    return out
