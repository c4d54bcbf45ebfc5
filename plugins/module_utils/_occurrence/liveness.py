# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Has an occurrence stopped? Probes, the timeline of what they said, and the wait.

Every health answer is judged by the collection's one classifier,
:func:`~._protocol.classify_liveness` (WORKING / DRAINING / STOPPED /
NO_ANSWER). Only STOPPED counts as terminated: an occurrence that answers
with ``cognitive_state: shutdown`` is still draining its work, and a timeout
(NO_ANSWER) is no evidence either way.

:class:`StopTimeline` keeps, per occurrence, when it was first seen draining
(``drained_at``) and first seen stopped (``exited_at``); :func:`wait_for_stop`
drives the probes through :func:`~._health.wait_for_wave` with an injectable
clock, so the waits are tested without sleeping.
"""

from __future__ import annotations

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
from typing import TypedDict

from ansible_collections.agentfleet.rollout.plugins.module_utils._health import Answer
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import wait_for_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import classify_liveness
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DRAINING
from ansible_collections.agentfleet.rollout.plugins.module_utils._consent import probe_liveness  # noqa: F401 (the one probe)
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import evaluate_health
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import HEALTH_PATH
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import join_url
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import NO_ANSWER
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import STOPPED
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import WORKING
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.errors import TransportError
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import Sighting
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import StopWatch

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient


class TimelineEntry(TypedDict):
    """What the probes said about one occurrence (:meth:`StopTimeline.get`)."""

    state: Optional[str]
    cause: Optional[str]
    info: Dict[str, Any]
    drained_at: Optional[float]
    exited_at: Optional[float]
    probes: int


def describe(state: Optional[str], cause: Optional[str] = None, info: Optional[Dict[str, Any]] = None) -> str:
    """One phrase for what a probe said, for failures and reports."""
    info = info or {}
    if state == STOPPED:
        return "stopped (%s)" % (cause or "not answering")
    if state == DRAINING:
        return "still draining (cognitive_state shutdown)"
    if state == NO_ANSWER:
        return "no answer (%s), which is no evidence of a stop" % (cause or "timeout")
    if state == WORKING:
        cog = info.get("cognitive_state")
        return "still working (%s)" % (("cognitive_state %s" % cog) if cog else (cause or "answering"))
    return "not probed"


class StopTimeline(StopWatch):
    """What the probes said about each occurrence, in order (pure: feed it with :meth:`observe`).

    A :class:`._waiter.StopWatch` of the occurrences observed (none named up front): per name the last
    ``state`` / ``cause`` / ``info``, ``drained_at`` (first seen DRAINING), ``exited_at`` (first seen STOPPED,
    the watch's ``stopped_at``) and the probe count, as :meth:`get` gives them.
    """

    @property
    def entries(self) -> Dict[str, TimelineEntry]:
        """name -> :meth:`get`, for every occurrence observed."""
        return dict((n, self.get(n)) for n in self.last)

    def get(self, name: str) -> TimelineEntry:
        state, cause, info = self.last.get(name, (None, None, {}))
        return {"state": state, "cause": cause, "info": info, "drained_at": self.drained_at.get(name),
                "exited_at": self.stopped_at.get(name), "probes": self.probes.get(name, 0)}

    def describe(self, name: str) -> str:
        entry = self.get(name)
        return describe(entry["state"], entry["cause"], entry["info"])


def stop_check_fn(client: AgentClient, urls: Mapping[str, str], timeline: StopTimeline,
                  clock: Callable[[], float] = time.time) -> Callable[[List[str]], Dict[str, Answer]]:
    """A ``check`` for :func:`~._health.wait_for_wave`: ready = STOPPED.

    ``urls`` maps name -> agent_url; every answer goes into ``timeline``
    stamped with ``clock()`` (a unix time, for the report).
    """
    def check(names: List[str]) -> Dict[str, Answer]:
        results: List[Tuple[str, Sighting]] = client.fan_out(lambda n: (n, probe_liveness(client, urls[n])), names)
        out: Dict[str, Answer] = {}
        for name, (state, cause, info) in results:
            timeline.observe(name, state, cause, info, clock())
            out[name] = (state == STOPPED, timeline.describe(name), info)
        return out

    return check


def wait_for_stop(client: AgentClient, urls: Mapping[str, str], names: Iterable[str], timeout: float,
                  poll_interval: Optional[float] = 1.0, timeline: Optional[StopTimeline] = None,
                  clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                  monotonic: Callable[[], float] = time.monotonic) -> Tuple[Dict[str, Any], StopTimeline]:
    """Probe ``names`` until every one is STOPPED or ``timeout`` seconds passed.

    Returns ``(result, timeline)``: ``result`` as of ``wait_for_wave``
    (``stable`` = stopped, ``unstable`` = name -> what was last seen).
    """
    timeline = timeline if timeline is not None else StopTimeline()
    result = wait_for_wave(list(names), stop_check_fn(client, urls, timeline, clock), min_stable_time=0.0,
                           success_threshold=1.0, deadline=float(timeout), poll_interval=float(poll_interval or 1.0),
                           grace=0.0, clock=monotonic, sleep=sleep)
    return result, timeline


def probe_health(client: AgentClient, agent_url: str, expected_states: Sequence[str] = ("work",),
                 target_version: Optional[str] = None) -> Tuple[Optional[str], Optional[str], Dict[str, Any], bool, Optional[str]]:
    """One GET judged twice: ``(liveness state, cause, info, healthy, health cause)``.

    ``healthy`` is :func:`~._protocol.evaluate_health` (an expected state, the
    version if given); the liveness state tells a stopped occurrence from one
    that still runs or drains.
    """
    try:
        resp = client.request("GET", join_url(agent_url, HEALTH_PATH))
    except TransportError as exc:
        state, cause, info = classify_liveness(error=exc)
        return state, cause, info, False, str(exc)
    state, cause, info = classify_liveness(resp.status, resp.json)
    healthy, health_cause = evaluate_health(resp.status, resp.json, tuple(expected_states), target_version)[:2]
    return state, cause, info, healthy, health_cause
