# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one waiter: poll until done or a deadline, and watch agents until they stop.

:class:`Deadline` is a point in time on an injectable clock; :func:`poll` fetches, judges and sleeps (through
the injected ``sleep``, never by itself) until the judge says done or the deadline has passed. The health gate
(``_health.wait_for_wave``), observed consent (``_consent.observe_stop``), the occurrence waits (through the
gate's loop), the docker driver, the manager client and the ECS waits all poll through it, so the tests drive
every wait with a fake clock and no test sleeps.

:class:`StopWatch` is the pure record of agents watched until they stop (what each probe said, when an agent
was first seen draining and first seen stopped); ``_consent.StopWatch`` (observed consent, with the
supervisor-restart rule) and ``_occurrence/liveness.StopTimeline`` (the occurrences' shutdown timeline) are
built on it.
"""

from __future__ import annotations

import time
from typing import Any
from typing import Callable
from typing import Dict
from typing import Iterable
from typing import List
from typing import Optional
from typing import Tuple
from typing import TypeVar
from typing import Union

from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DRAINING
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import STOPPED

T = TypeVar("T")
# a clock (seconds, monotonic or unix) and a sleep, both injectable
Clock = Callable[[], float]
Sleep = Callable[[float], None]
# what one liveness probe said: (state, cause, info), as ``_protocol.classify_liveness`` returns it
Sighting = Tuple[Optional[str], Optional[str], Dict[str, Any]]

# adaptive polling: the first look again comes this soon after a probe that saw the agent not there yet,
# and every wait is at most FAST_POLL_RATIO of the time watched so far (never longer than poll_interval): an
# agent that stops (or comes up) at once is seen at once, one that takes minutes is probed at poll_interval.
# A twentieth: an agent that boots in 2 s is seen up within 0.1 s (a wave ends when its last agent is stable, so
# this lag is paid once a wave: issue 20's critical path), for one probe more a second while it boots
FAST_POLL = 0.05
FAST_POLL_RATIO = 0.05


def adaptive_interval(elapsed: float, poll_interval: float) -> float:
    """Seconds to wait before the next probe of something not there yet, ``elapsed`` seconds into the watch."""
    return min(poll_interval, max(FAST_POLL, FAST_POLL_RATIO * elapsed))


class Deadline:
    """``timeout`` seconds after ``start`` (default: now) on ``clock``.

    It has passed (:meth:`expired`) once the clock reads ``end`` or later, and :meth:`remaining` is ``end - now``:
    a sleep of the time remaining lands on an expired deadline, never just short of it.
    """

    def __init__(self, timeout: float, clock: Clock = time.monotonic, start: Optional[float] = None) -> None:
        self.clock = clock
        self.start = clock() if start is None else start
        self.timeout = timeout
        self.end = self.start + timeout

    def elapsed(self, now: float) -> float:
        """Seconds from ``start`` to ``now``."""
        return now - self.start

    def remaining(self, now: float) -> float:
        """Seconds from ``now`` to the deadline (0 or less once it has passed)."""
        return self.end - now

    def expired(self, now: float) -> bool:
        """Whether the deadline has passed at ``now``."""
        return now >= self.end


def poll(fetch: Callable[[], T], done: Callable[[T, float], bool], deadline: Deadline,
         pause: Union[float, Callable[[float], float]], sleep: Sleep = time.sleep, cap: bool = True) -> Tuple[bool, T]:
    """Call ``fetch()`` until ``done(value, now)`` says so, or the deadline has passed after a fetch.

    Every round: ``fetch()``, read the clock (``now``), ``done(value, now)`` (which may record what it saw at
    ``now``); not done and the deadline passed: the wait is over; else sleep ``pause`` seconds (a number, or
    ``pause(now)``: called only when the wait goes on, a place for a progress line), cut to the time remaining
    unless ``cap`` is false, and no sleep at all when that is 0 or less. The first fetch comes at once.

    Returns ``(True, value)`` when done, ``(False, value)`` at the deadline, ``value`` being the last fetched.
    """
    while True:
        value = fetch()
        now = deadline.clock()
        if done(value, now):
            return True, value
        if deadline.expired(now):
            return False, value
        wait = pause(now) if callable(pause) else pause
        if cap:
            wait = min(wait, deadline.remaining(now))
        if wait > 0:
            sleep(wait)


class StopWatch:
    """What the probes said about agents watched until they stop (pure: feed it :meth:`observe`, ask it verdicts).

    Per agent: ``last`` (name -> the last ``(state, cause, info)``; ``info`` is the last non-empty one),
    ``probes`` (name -> how many), ``drained_at`` (name -> when first seen DRAINING) and ``stopped_at`` (name ->
    when first seen stopped: STOPPED, or whatever :meth:`counts_as_stopped` accepts). ``names``: the agents
    watched, in order (:meth:`pending`); an agent observed without being named is recorded all the same.
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.names: List[str] = list(names)
        self.last: Dict[str, Sighting] = {n: (None, "not probed yet", {}) for n in self.names}
        self.probes: Dict[str, int] = {}
        self.drained_at: Dict[str, float] = {}
        self.stopped_at: Dict[str, float] = {}

    def counts_as_stopped(self, name: str, state: Optional[str], info: Dict[str, Any]) -> bool:
        """Whether ``name``, just seen in ``state`` with ``info``, has stopped (here: STOPPED, nothing listens)."""
        return state == STOPPED

    def observe(self, name: str, state: Optional[str], cause: Optional[str], info: Optional[Dict[str, Any]],
                now: float) -> None:
        """Record one probe of ``name`` at ``now``."""
        previous = self.last.get(name)
        self.last[name] = (state, cause, info or (previous[2] if previous is not None else {}))
        self.probes[name] = self.probes.get(name, 0) + 1
        if state == DRAINING:
            # still finishing its work: not stopped
            self.drained_at.setdefault(name, now)
        if name not in self.stopped_at and self.counts_as_stopped(name, state, info or {}):
            self.stopped_at[name] = now

    def pending(self) -> List[str]:
        """The agents watched that have not stopped, in order."""
        return [n for n in self.names if n not in self.stopped_at]

    def stopped(self, name: str) -> bool:
        return name in self.stopped_at

    def drained(self, name: str) -> bool:
        return name in self.drained_at
