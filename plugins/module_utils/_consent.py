# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Observed consent: wait until the agents that were asked have really stopped.

A real CIRIS agent answers every shutdown request with 200 "initiated" and
decides by acting (PROTOCOL.md, "Observed consent"): it accepts by draining
(``cognitive_state: shutdown`` while it still answers) and then stopping, and
declines by going on working. Nothing may recreate an agent that has not
stopped, so after every "accept or pending" answer the engine watches the
agent with :func:`observe_stop` before any update driver acts on it.

The rule of what counts as stopped depends on who starts the new version:

- a driver that recreates the agent (``tasks``, ``docker``, ECS)
  needs it *gone*: :data:`STOPPED` (refused, reset, 502/503/504);
- with the ``none`` driver the agent's own supervisor restarts it, so it has
  stopped once it was seen gone, or working again after it was seen draining,
  or answers on the target version already (it came back before we looked).
  Draining alone is not stopped: the health gate starts once the agent has.

Everything still working at the stop timeout has *declined* (or is still
busy, which looks the same from outside): it is never updated.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from typing import Any
from typing import Callable
from typing import Dict
from typing import Iterable
from typing import List
from typing import Optional
from typing import Sequence
from typing import Tuple

from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DRAINING
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import HEALTH_PATH
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import NO_ANSWER
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import STOPPED
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import WORKING
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import classify_liveness
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import join_url
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import version_matches
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.errors import TransportError
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import Deadline
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import Sighting
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import StopWatch as _StopWatch
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import adaptive_interval
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import poll

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient

DEFAULT_STOP_TIMEOUT = 600.0
# observation outcomes
OBSERVED_STOPPED = "stopped"
OBSERVED_DECLINED = "declined"
OBSERVED_STILL_DRAINING = "still_draining"
OBSERVED_NO_ANSWER = "no_answer"


def probe_liveness(client: AgentClient, agent_url: str) -> Sighting:
    """GET health once and classify it: ``(state, cause, info)`` (see ``classify_liveness``)."""
    return probe_liveness_answer(client, agent_url)[0]


def probe_liveness_answer(client: AgentClient, agent_url: str) -> Tuple[Sighting, Optional[Tuple[int, Any]]]:
    """:func:`probe_liveness` and the answer it classified: ``(sighting, (status, payload))``, or
    ``(sighting, None)`` when nothing answered."""
    sighting: Sighting
    try:
        resp = client.request("GET", join_url(agent_url, HEALTH_PATH))
    except TransportError as exc:
        sighting = classify_liveness(error=exc)
        return sighting, None
    sighting = classify_liveness(resp.status, resp.json)
    return sighting, (resp.status, resp.json)


class StopWatch(_StopWatch):
    """Agents watched until they stop (:class:`._waiter.StopWatch`), with the rule of who starts the new version.

    ``supervisor_restarts`` (the ``none`` driver): an agent seen working again after it was seen draining, or
    answering on ``target_version`` already, has stopped (its supervisor restarted it between two probes).
    """

    def __init__(self, names: Iterable[str], supervisor_restarts: bool = False, target_version: object = None) -> None:
        super().__init__(names)
        self.supervisor_restarts = bool(supervisor_restarts)
        self.target_version = None if target_version is None else str(target_version)

    def counts_as_stopped(self, name: str, state: Optional[str], info: Dict[str, Any]) -> bool:
        if state == STOPPED:
            return True
        # back already: its supervisor restarted it between two probes (seen draining before, or on the new version)
        return state == WORKING and self.supervisor_restarts and (
            name in self.drained_at or (self.target_version is not None
                                        and bool(version_matches(info.get("version"), self.target_version))))

    def outcome(self, name: str, stop_timeout: float) -> Tuple[str, Optional[str]]:
        """``(outcome, detail)`` for one agent once the watch has ended."""
        if name in self.stopped_at:
            return OBSERVED_STOPPED, None
        state, cause, dummy = self.last[name]
        if state == DRAINING or name in self.drained_at:
            return OBSERVED_STILL_DRAINING, ("still draining after %ss (cognitive_state shutdown, process not gone): "
                                             "not updated" % _fmt(stop_timeout))
        if state == NO_ANSWER:
            return OBSERVED_NO_ANSWER, "no answer while waiting for it to stop: %s" % cause
        return OBSERVED_DECLINED, ("did not stop within %ss: declined or still busy%s"
                                   % (_fmt(stop_timeout), (" (%s)" % cause) if cause else ""))


def _fmt(seconds: float) -> str:
    return ("%d" % seconds) if float(seconds).is_integer() else ("%.1f" % seconds)


def observe_stop(client: AgentClient, agents: Sequence[Dict[str, Any]], stop_timeout: float = DEFAULT_STOP_TIMEOUT,
                 poll_interval: Optional[float] = 1.0, supervisor_restarts: bool = False, target_version: object = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 progress: Optional[Callable[[str], None]] = None, fast_first: bool = False) -> Dict[str, Dict[str, Any]]:
    """Watch ``agents`` (member dicts with ``name`` and ``agent_url``) until each has stopped.

    Returns ``{name: {"outcome", "detail", "drained_at", "stopped_at", "waited"}}`` where
    ``outcome`` is ``stopped``, ``declined`` (still working at the timeout),
    ``still_draining`` or ``no_answer``; times are seconds since the watch began.
    ``progress(text)`` is called with a one-line status every few seconds. ``fast_first``: the
    probes come soon after the request and then further apart (:func:`adaptive_interval`), at most
    ``poll_interval``; without it, every ``poll_interval``.

    An agent found back already (``supervisor_restarts``: working on ``target_version``) also has
    ``answer``: ``{"status", "payload", "at"}``, the health answer that showed it back and the ``clock``
    reading once it had arrived; the health gate counts it as its first probe (:func:`._health.gate_agents`'s
    ``seeds``). Every other agent's ``answer`` is None.
    """
    urls = dict((a["name"], a["agent_url"]) for a in agents)
    watch = StopWatch(urls, supervisor_restarts=supervisor_restarts, target_version=target_version)
    stop_timeout = max(0.0, float(stop_timeout))
    deadline = Deadline(stop_timeout, clock)
    last_progress = deadline.start
    interval = max(0.05, float(poll_interval or 1.0))
    back: Dict[str, Dict[str, Any]] = {}

    def fetch() -> List[Tuple[str, Tuple[Sighting, Optional[Tuple[int, Any]]]]]:
        results: List[Tuple[str, Tuple[Sighting, Optional[Tuple[int, Any]]]]] = client.fan_out(
            lambda n: (n, probe_liveness_answer(client, urls[n])), watch.pending())
        return results

    def done(results: List[Tuple[str, Tuple[Sighting, Optional[Tuple[int, Any]]]]], now: float) -> bool:
        for name, ((state, cause, info), answer) in results:
            watch.observe(name, state, cause, info, deadline.elapsed(now))
            # working again (an answer came) and so stopped: its supervisor restarted it between two probes
            if state == WORKING and answer is not None and watch.stopped(name):
                back[name] = {"status": answer[0], "payload": answer[1], "at": now}
        return not watch.pending()

    def pause(now: float) -> float:
        nonlocal last_progress
        if progress is not None and now - last_progress >= 5.0:
            last_progress = now
            pending = watch.pending()
            draining = sum(1 for n in pending if watch.last[n][0] == DRAINING)
            progress("%d/%d stopped, %d draining, %d still working, %ds" % (
                len(watch.names) - len(pending), len(watch.names), draining, len(pending) - draining,
                deadline.elapsed(now)))
        return adaptive_interval(deadline.elapsed(now), interval) if fast_first else interval

    if watch.pending():
        poll(fetch, done, deadline, pause, sleep)
    waited = round(clock() - deadline.start, 3)
    out: Dict[str, Dict[str, Any]] = {}
    for name in watch.names:
        outcome, detail = watch.outcome(name, stop_timeout)
        out[name] = {"outcome": outcome, "detail": detail, "drained_at": watch.drained_at.get(name),
                     "stopped_at": watch.stopped_at.get(name), "waited": waited, "answer": back.get(name)}
    return out
