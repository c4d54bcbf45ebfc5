"""The one waiter (_waiter): Deadline, poll, the stop watch, on a fake clock."""

from __future__ import annotations

import pytest

from helpers import Clock

from ansible_collections.agentfleet.rollout.plugins.module_utils import _consent
from ansible_collections.agentfleet.rollout.plugins.module_utils import _health
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.liveness import StopTimeline
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DRAINING
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import NO_ANSWER
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import STOPPED
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import WORKING
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import Deadline
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import StopWatch
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import adaptive_interval
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import poll


class GuardedClock(Clock):
    """A fake clock that fails a test spinning on it (read or slept on far more often than any wait needs)."""

    def __init__(self, now=0.0, limit=1000):
        super().__init__(now)
        self.reads = 0
        self.limit = limit

    def __call__(self):
        self.reads += 1
        if self.reads > self.limit:
            raise AssertionError("the wait spins: %d clock reads, sleeps %r" % (self.reads, self.sleeps[-5:]))
        return self.now

    def sleep(self, seconds):
        if len(self.sleeps) > self.limit:
            raise AssertionError("the wait spins: sleeps %r" % self.sleeps[-5:])
        super().sleep(seconds)


def test_deadline_is_timeout_after_start():
    clock = Clock(100.0)
    d = Deadline(5.0, clock)
    assert (d.start, d.end, d.timeout) == (100.0, 105.0, 5.0)
    assert d.elapsed(101.5) == 1.5 and d.remaining(101.5) == 3.5
    assert not d.expired(104.9) and d.expired(105.0) and d.expired(106.0)
    assert Deadline(2.0, clock, start=7.0).end == 9.0


def test_poll_fetches_at_once_and_sleeps_the_pause_until_done():
    clock = Clock()
    values = iter([1, 2, 3, 4])
    seen = []

    def done(value, now):
        seen.append((value, now))
        return value == 3

    assert poll(lambda: next(values), done, Deadline(60, clock), 2.0, clock.sleep) == (True, 3)
    assert seen == [(1, 0.0), (2, 2.0), (3, 4.0)] and clock.sleeps == [2.0, 2.0]


def test_poll_at_the_deadline_gives_the_last_value_and_the_last_sleep_is_cut_to_it():
    clock = Clock()
    count = []

    def fetch():
        count.append(clock.now)
        return len(count)

    assert poll(fetch, lambda value, now: False, Deadline(25, clock), 10, clock.sleep) == (False, 4)
    assert clock.sleeps == [10, 10, 5] and count == [0.0, 10.0, 20.0, 25.0]


def test_poll_without_cap_sleeps_the_whole_pause():
    clock = Clock()
    assert poll(lambda: None, lambda value, now: False, Deadline(0.5, clock), 0.2, clock.sleep, cap=False) == (False, None)
    assert clock.sleeps == [0.2, 0.2, 0.2]


def test_poll_asks_the_pause_only_when_the_wait_goes_on():
    clock = Clock()
    asked = []

    def pause(now):
        asked.append(now)
        return 0.0 if len(asked) == 1 else 1.5

    # a pause of 0 (or less): no sleep, the next fetch comes at once
    assert poll(lambda: clock.now, lambda value, now: value >= 3, Deadline(10, clock), pause, clock.sleep)[0]
    assert asked == [0.0, 0.0, 1.5] and clock.sleeps == [1.5, 1.5]


def test_poll_a_zero_deadline_fetches_once():
    clock = Clock()
    assert poll(lambda: "x", lambda value, now: False, Deadline(0, clock), 1.0, clock.sleep) == (False, "x")
    assert clock.sleeps == []


def test_adaptive_interval_is_the_waiters():
    assert _consent.adaptive_interval is adaptive_interval
    assert [adaptive_interval(e, 1.0) for e in (0.0, 2.0, 60.0)] == [0.05, 0.1, 1.0]


# a deadline whose end, on a clock far from 0, is a hair short of start + timeout in floating point
# (1000.0 + 0.3 - 1000.0 < 0.3): a sleep of the time remaining must land on an expired deadline
@pytest.mark.parametrize("start,timeout", [(1000.0, 0.3), (1000.0, 2.3), (1.8e9, 0.1)])
def test_a_wait_ends_when_its_last_sleep_lands_on_the_deadline(start, timeout):
    assert (start + timeout) - start < timeout

    class Working:
        def request(self, method, url):
            class Response:
                status, json = 200, {"status": "healthy", "cognitive_state": "work"}
            return Response()

        def fan_out(self, fn, items):
            return [fn(i) for i in items]

    clock = GuardedClock(start)
    out = _consent.observe_stop(Working(), [{"name": "a", "agent_url": "http://a"}], stop_timeout=timeout,
                                poll_interval=100.0, clock=clock, sleep=clock.sleep)
    # it used to sleep 0 s for ever (observe_stop) or spin without sleeping (wait_for_wave) on such a clock
    assert out["a"]["outcome"] == "declined" and len(clock.sleeps) == 1 and clock.now == start + timeout
    clock = GuardedClock(start)
    res = _health.wait_for_wave(["a"], lambda names: {"a": (False, "down", {})}, deadline=timeout, poll_interval=100.0,
                                clock=clock, sleep=clock.sleep)
    assert res["reason"] == "deadline reached" and len(clock.sleeps) == 1 and clock.now == start + timeout


def test_the_threshold_grace_ends_on_a_clock_far_from_zero():
    clock = GuardedClock(1000.0)

    def check(names):
        return {"a": (True, None, {}), "b": (False, "down", {})}

    res = _health.wait_for_wave(["a", "b"], check, success_threshold=0.5, deadline=100.0, poll_interval=100.0,
                                grace=0.3, clock=clock, sleep=clock.sleep)
    assert res["reason"] == "threshold met" and res["passed"] and clock.now == 1000.0 + 0.3


def test_stop_watch_records_first_drained_and_first_stopped():
    w = StopWatch(["a", "b"])
    assert w.last["a"] == (None, "not probed yet", {}) and w.pending() == ["a", "b"]
    w.observe("a", WORKING, None, {"cognitive_state": "work"}, 1.0)
    w.observe("a", DRAINING, "draining", {"cognitive_state": "shutdown"}, 2.0)
    w.observe("a", DRAINING, "draining", {"cognitive_state": "shutdown"}, 3.0)
    w.observe("b", NO_ANSWER, "timeout", {}, 3.0)
    assert w.drained("a") and w.drained_at == {"a": 2.0} and w.pending() == ["a", "b"]
    w.observe("a", STOPPED, "refused", {}, 4.0)
    w.observe("a", STOPPED, "refused", {}, 5.0)
    assert w.stopped("a") and w.stopped_at == {"a": 4.0} and w.pending() == ["b"]
    # the last non-empty info is kept; state and cause are the last probe's
    assert w.last["a"] == (STOPPED, "refused", {"cognitive_state": "shutdown"}) and w.probes == {"a": 5, "b": 1}
    # a name not watched is recorded, not pending
    w.observe("c", STOPPED, "refused", None, 6.0)
    assert w.stopped_at["c"] == 6.0 and w.pending() == ["b"]


def test_consent_and_timeline_are_stop_watches():
    consent = _consent.StopWatch(["a"], supervisor_restarts=True, target_version=2.0)
    assert isinstance(consent, StopWatch) and consent.target_version == "2.0"
    consent.observe("a", WORKING, None, {"version": "2.0"}, 1.0)
    assert consent.stopped_at == {"a": 1.0} and consent.outcome("a", 10) == ("stopped", None)
    timeline = StopTimeline()
    assert isinstance(timeline, StopWatch)
    assert timeline.get("x") == {"state": None, "cause": None, "info": {}, "drained_at": None, "exited_at": None,
                                 "probes": 0}
    timeline.observe("x", DRAINING, "draining", {"cognitive_state": "shutdown"}, 5.0)
    timeline.observe("x", STOPPED, "refused", {}, 6.0)
    assert timeline.get("x") == {"state": STOPPED, "cause": "refused", "info": {"cognitive_state": "shutdown"},
                                 "drained_at": 5.0, "exited_at": 6.0, "probes": 2}
    assert list(timeline.entries) == ["x"] and timeline.describe("x") == "stopped (refused)"
