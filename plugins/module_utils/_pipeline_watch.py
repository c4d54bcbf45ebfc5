# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stop watch of the ``tasks`` and ``docker`` drivers' wave (``_pipeline``): the ``watch`` stage.

:func:`watch_stops` waits until more agents that consented have stopped and returns them to hand over to
the tasks; at the stop deadline it settles the ones still working (declined, failed, or left for a rerun).
:func:`stop_on` ends the wave early on an error (agents still draining are watched for at most
:data:`DRAIN_WAIT` seconds more) and :func:`operator_check` on an operator's ``fail``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import List

from ansible_collections.agentfleet.rollout.plugins.module_utils._consent import StopWatch
from ansible_collections.agentfleet.rollout.plugins.module_utils._consent import probe_liveness
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import ACCEPT
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DECLINED
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DRAINING
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import PENDING

if TYPE_CHECKING:
    from typing import Dict

    from ansible_collections.agentfleet.rollout.plugins.module_utils._pipeline import Ctx
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import AgentRow
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Agent
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Record

# after an error (or an operator's fail) stopped a wave: how long agents still draining are watched, so
# that those about to stop are started again in this run rather than left down
DRAIN_WAIT = 10.0
# the round's stop watch: probe interval bounds (seconds); the interval grows with the agents watched
MIN_PROBE_INTERVAL = 0.1
# gathering: once an agent has stopped, wait up to this long for others to stop before handing over, since
# every round costs a forked task per host of the batch (~10 ms each); bounded by MAX_GATHER
PER_HOST_ROUND_COST = 0.01
MIN_GATHER = 0.1
MAX_GATHER = 2.0


def stop_on(ctx: Ctx, rnd: Record, message: str) -> None:
    """The wave ends early with ``message``; agents still draining are watched for DRAIN_WAIT more at most."""
    if rnd.get("error"):
        return
    rnd["error"] = message
    rnd["stop_until"] = min(rnd["stop_until"], ctx.monotonic() + min(DRAIN_WAIT, float(ctx.opts.stop_timeout)))
    ctx.say("the wave stops: %s; the agents that stopped for the update are started again first" % message)


def operator_check(ctx: Ctx, rnd: Record) -> None:
    """An operator's ``fail`` from another process stops the wave (agents already stopped are still started);
    a ``pause`` lets the wave end (nobody left down) and holds the next one."""
    now = ctx.store.check_fence()
    if now and now[0] == "failed" and not rnd.get("error"):
        stop_on(ctx, rnd, "deployment failed by an operator%s" % ((": %s" % now[1]) if now[1] else ""))
        rnd["operator"] = "failed"


def agent_of(member: Agent, row: AgentRow) -> Agent:
    """``member`` as an agent to hand over, with the version it ran before (``version_before``; ``version``
    is what a revert puts it back on)."""
    agent = dict(member)
    agent["version_before"] = row.get("version_before")
    agent["version"] = row.get("version_before")
    return agent


def watch_stops(ctx: Ctx, rnd: Record) -> List[Agent]:
    """Wait until at least one more agent that consented has stopped (gathering a few more), or until none is
    left to watch. Returns the agents to hand over; the ones still working at the stop deadline are settled."""
    rows = ctx.rows()
    pending = [agent_of(m, rows[m["name"]]) for m in ctx.members
               if (rows.get(m["name"]) or {}).get("decision") in (ACCEPT, PENDING)
               and not (rows.get(m["name"]) or {}).get("result")]
    if not pending:
        return []
    by_name = dict((a["name"], a) for a in pending)
    watch = StopWatch(list(by_name))
    for name in rnd.get("drained") or []:
        if name in by_name:
            watch.drained_at[name] = 0.0
    poll = float(ctx.opts.health.poll_interval or 1.0)
    interval = min(poll, max(MIN_PROBE_INTERVAL, 0.0005 * len(pending)))
    gather = min(MAX_GATHER, max(MIN_GATHER, PER_HOST_ROUND_COST * len(ctx.members)))
    ctx.run.step = "waiting for agents to stop"
    first = None
    last_say = ctx.monotonic()
    while True:
        names = watch.pending()
        results = ctx.client.fan_out(lambda n: (n, probe_liveness(ctx.client, by_name[n]["agent_url"])), names)
        now = ctx.monotonic()
        for name, (state, cause, info) in results:
            watch.observe(name, state, cause, info, now - rnd["asked_at"])
        if first is None and watch.stopped_at:
            first = ctx.monotonic()
        left = watch.pending()
        if not left or now >= rnd["stop_until"]:
            break
        if first is not None and ctx.monotonic() - first >= gather:
            break
        if ctx.monotonic() - last_say >= 5.0:
            last_say = ctx.monotonic()
            draining = sum(1 for n in left if watch.last[n][0] == DRAINING)
            ctx.say("waiting for agents to stop: %d/%d stopped, %d draining, %d still working" % (
                len(by_name) - len(left), len(by_name), draining, len(left) - draining))
        operator_check(ctx, rnd)
        ctx.sleep(max(0.0, min(interval, rnd["stop_until"] - now)))
    rnd["drained"] = sorted(set(rnd.get("drained") or []) | set(watch.drained_at))
    ready = [by_name[n] for n in by_name if n in watch.stopped_at]
    accepted = [n for n in watch.stopped_at if rows[n].get("decision") == PENDING]
    if accepted:
        ctx.store.record_answers(ctx.deployment_id, [
            {"host": n, "decision": ACCEPT, "answered_at": rows[n].get("answered_at"),
             "reason": "observed: %s after %.1fs" % (
                 "drained and stopped" if n in watch.drained_at else "stopped", watch.stopped_at[n])}
            for n in accepted])
    if ready:
        # the moment it was seen stopped: a rerun hands it over even if something started it again meanwhile
        ctx.store.merge_agent_extra(ctx.deployment_id, dict((a["name"], {"seen_stopped": True}) for a in ready))
    if watch.pending() and ctx.monotonic() >= rnd["stop_until"]:
        _settle_unstopped(ctx, rnd, rows, watch)
    return ready


def _settle_unstopped(ctx: Ctx, rnd: Record, rows: Dict[str, AgentRow], watch: StopWatch) -> None:
    """The stop deadline has passed for the agents still working: declined, failed, or (the wave stopping on
    an error) left for a rerun to watch."""
    timeout = max(0.0, rnd["stop_until"] - rnd["asked_at"])
    decisions: List[Record] = []
    results: List[Record] = []
    left: List[str] = []
    for name in watch.pending():
        row = rows[name]
        outcome, detail = watch.outcome(name, timeout)
        if rnd.get("error"):
            left.append(name)
        elif rnd.get("stop_cut"):
            rnd["stalled"] = ctx.opts.stall_note("%d agents that were asked had not stopped" % len(watch.pending()))
            results.append({"host": name, "result": "failed", "detail": "%s (%s)" % (rnd["stalled"], detail)})
        elif outcome == "declined" and row.get("decision") == PENDING:
            decisions.append({"host": name, "decision": DECLINED, "reason": detail,
                              "answered_at": row.get("answered_at")})
            results.append({"host": name, "result": "declined", "detail": detail})
        else:
            if outcome == "declined":
                if detail is None:
                    # the stop watch gives every outcome but "stopped" a detail
                    raise ValueError("agent %s: the stop watch says it declined to stop, without a detail" % name)
                detail = "accepted but " + detail.replace(": declined or still busy", "")
            results.append({"host": name, "result": "failed", "detail": detail})
    if decisions:
        ctx.store.record_answers(ctx.deployment_id, decisions)
    if results:
        ctx.store.set_results(ctx.deployment_id, results)
    if left:
        rnd["notes"].append("asked and not stopped when the wave ended (a rerun watches them, nobody asks "
                            "them again): %s" % ", ".join(sorted(left)))
