from __future__ import annotations

from ansible_collections.agentfleet.rollout.plugins.module_utils._health import WaveTracker, wait_for_wave
from helpers import Clock


def scripted(timeline):
    """timeline: name -> function(now) -> ready?"""
    clock = Clock()

    def check(names):
        return {n: (timeline[n](clock.now), None if timeline[n](clock.now) else "booting", {"version": "2"}) for n in names}

    return clock, check


def test_stable_needs_min_healthy_time_of_unbroken_health():
    t = WaveTracker(["a"], min_stable_time=10, success_threshold=1)
    t.observe("a", True, None, {}, 0)
    t.observe("a", True, None, {}, 5)
    t.observe("a", False, "flap", {}, 6)
    t.observe("a", True, None, {}, 7)
    t.observe("a", True, None, {}, 16)
    assert t.pending() == ["a"]
    t.observe("a", True, None, {}, 17)
    assert t.all_stable()


def test_all_stable_ends_the_wait_early():
    clock, check = scripted({"a": lambda now: now >= 2, "b": lambda now: True})
    res = wait_for_wave(["a", "b"], check, min_stable_time=3, success_threshold=1, deadline=60, poll_interval=1,
                        clock=clock, sleep=clock.sleep)
    assert res["passed"] and res["reason"] == "all stable"
    assert 5 <= clock.now <= 6


def test_deadline_fails_with_causes():
    clock, check = scripted({"a": lambda now: False, "b": lambda now: True})
    res = wait_for_wave(["a", "b"], check, min_stable_time=0, success_threshold=1, deadline=10, poll_interval=2,
                        clock=clock, sleep=clock.sleep)
    assert not res["passed"] and res["reason"] == "deadline reached"
    assert res["unstable"] == {"a": "booting"}
    assert clock.now == 10


def test_threshold_met_then_grace_ends_the_wait():
    timeline = dict(("n%d" % i, (lambda now: True)) for i in range(9))
    timeline["broken"] = lambda now: False
    clock, check = scripted(timeline)
    res = wait_for_wave(sorted(timeline), check, min_stable_time=2, success_threshold=0.8, deadline=300,
                        poll_interval=1, clock=clock, sleep=clock.sleep)
    assert res["passed"] and res["reason"] == "threshold met"
    assert res["stable_count"] == 9 and res["required"] == 8
    assert clock.now < 10


def test_empty_wave_passes_and_no_bare_sleeps():
    clock = Clock()
    res = wait_for_wave([], lambda names: {}, clock=clock, sleep=clock.sleep)
    assert res["passed"] and clock.sleeps == []
