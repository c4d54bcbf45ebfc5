# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 12 #7: min_healthy_time 0 does not make the health gate a single probe. An agent counts as
stable only after MIN_HEALTHY_PROBES healthy probes in a row: a flapping agent, or one that crashes
right after starting, is not counted updated; and a short window is warned about.

Issue 20: the probes in a row span the stability window the user asked for (min_healthy_time), at most
poll_interval and at least MIN_STREAK_SPACING apart, so min_healthy_time 0 no longer costs 2 x poll_interval a
wave; the flapping and crash cases below hold within that window."""

from __future__ import annotations

from ansible_collections.agentfleet.rollout.plugins.module_utils import _health
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import MIN_HEALTHY_PROBES
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import MIN_STREAK_SPACING
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import gate_agents
from helpers import Clock


class Client:
    """probe() answers from a script of ``name -> f(now) -> healthy?``."""

    def __init__(self, clock, script):
        self.clock, self.script, self.probes = clock, script, []

    def fan_out(self, fn, items):
        return [fn(i) for i in items]

    def probe(self, url, expected_states, target_version):
        self.probes.append(url)
        ok = self.script[url](self.clock.now)
        return {"healthy": ok, "cause": None if ok else "connection refused", "info": {}}


PARAMS = dict(min_healthy_time=0.0, healthy_deadline=5.0, poll_interval=0.5, success_threshold=1.0, grace=None)


def gate(script, **params):
    clock = Clock()
    client = Client(clock, script)
    agents = [{"name": n, "agent_url": n} for n in script]
    return gate_agents(client, agents, dict(PARAMS, **params), clock=clock, sleep=clock.sleep), client


def test_min_healthy_probes_is_more_than_one():
    assert MIN_HEALTHY_PROBES >= 2


def test_a_steady_agent_passes_after_the_probes_in_a_row_and_is_warned_about():
    result, client = gate({"good": lambda now: True})
    assert result["passed"] and result["stable"] == ["good"]
    assert len(client.probes) == MIN_HEALTHY_PROBES
    assert result["warnings"] and "min_healthy_time 0" in result["warnings"][0]
    assert "(%g s apart)" % MIN_STREAK_SPACING in result["warnings"][0]


def test_with_min_healthy_time_0_the_probes_in_a_row_come_min_streak_spacing_apart():
    clock = Clock()
    times = []

    def healthy(now):
        times.append(now)
        return True

    client = Client(clock, {"good": healthy})
    result = gate_agents(client, [{"name": "good", "agent_url": "good"}], PARAMS, clock=clock, sleep=clock.sleep)
    assert result["passed"]
    assert [round(t, 6) for t in times] == [round(i * MIN_STREAK_SPACING, 6) for i in range(MIN_HEALTHY_PROBES)]


def test_the_probes_in_a_row_span_a_short_window_and_stay_poll_interval_apart_in_a_long_one():
    tracker = _health.WaveTracker(["a"], min_stable_time=0.3, min_probes=MIN_HEALTHY_PROBES)
    assert tracker.streak_spacing(1.0) == 0.15
    assert _health.WaveTracker(["a"], min_stable_time=10.0, min_probes=3).streak_spacing(1.0) == 1.0
    assert _health.WaveTracker(["a"], min_stable_time=0.0, min_probes=3).streak_spacing(0.01) == 0.01


def test_a_flapping_agent_never_counts_as_updated():
    # healthy on every other probe: never MIN_HEALTHY_PROBES in a row
    result, dummy = gate({"flappy": lambda now: int(round(now / 0.5)) % 2 == 0}, min_healthy_time=1.0)
    assert not result["passed"] and result["stable"] == []
    assert "flappy" in result["unstable"]
    # and within a window of 0: flapping faster than the streak spacing
    result, dummy = gate({"flappy": lambda now: int(round(now / MIN_STREAK_SPACING)) % 2 == 0})
    assert not result["passed"] and result["stable"] == []


def test_an_agent_that_crashes_right_after_starting_is_not_counted():
    # healthy for its first 0.6 s (two probes), then gone for good
    result, dummy = gate({"crashy": lambda now: now < 0.6}, min_healthy_time=1.0)
    assert not result["passed"] and result["unstable"]["crashy"] == "connection refused"
    # within a window of 0, a crash before the third probe in a row
    result, dummy = gate({"crashy": lambda now: now < MIN_STREAK_SPACING * 1.5})
    assert not result["passed"] and result["unstable"]["crashy"] == "connection refused"


def test_a_long_enough_window_gives_no_warning():
    result, dummy = gate({"good": lambda now: True}, min_healthy_time=10.0, healthy_deadline=30.0)
    assert result["passed"] and result["warnings"] == []


def test_the_stop_watch_still_takes_one_observation():
    # wait_for_wave's default (stopped = one refused connection) is unchanged
    clock = Clock()
    res = _health.wait_for_wave(["a"], lambda names: {"a": (True, None, {})}, clock=clock, sleep=clock.sleep)
    assert res["passed"] and clock.now == 0.0


HEALTHY = {"data": {"status": "healthy", "cognitive_state": "work", "version": "2.0.0"}}


def seeded_gate(script, seeds, **params):
    clock = Clock()
    clock.now = 10.0
    client = Client(clock, script)
    agents = [{"name": n, "agent_url": n} for n in script]
    result = gate_agents(client, agents, dict(PARAMS, **params), target_version="2.0.0", clock=clock,
                         sleep=clock.sleep, seeds=seeds)
    return result, client, clock


def test_the_stop_watchs_answer_of_an_agent_back_on_the_new_version_is_the_first_probe_of_its_streak():
    # issue 20: a wave of agents back at once needs one request less each
    result, client, clock = seeded_gate({"good": lambda now: True},
                                        {"good": {"status": 200, "payload": HEALTHY, "at": 10.0}})
    assert result["passed"] and result["stable"] == ["good"]
    assert len(client.probes) == MIN_HEALTHY_PROBES - 1
    assert result["agents"]["good"]["probes"] == MIN_HEALTHY_PROBES
    # the streak still spans what it spans without a seed
    assert round(clock.now - 10.0, 6) == round((MIN_HEALTHY_PROBES - 1) * MIN_STREAK_SPACING, 6)


def test_a_seed_on_the_old_version_or_unhealthy_counts_for_nothing():
    old = {"data": {"status": "healthy", "cognitive_state": "work", "version": "1.0.0"}}
    sick = {"data": {"status": "degraded", "cognitive_state": "work", "version": "2.0.0"}}
    for payload in (old, sick):
        result, client, dummy = seeded_gate({"a": lambda now: True}, {"a": {"status": 200, "payload": payload,
                                                                            "at": 10.0}})
        assert result["passed"]
        assert len(client.probes) == MIN_HEALTHY_PROBES


def test_a_seeded_agent_that_crashes_after_its_seed_is_not_counted():
    result, client, dummy = seeded_gate({"crashy": lambda now: False},
                                        {"crashy": {"status": 200, "payload": HEALTHY, "at": 10.0}}, healthy_deadline=1.0)
    assert not result["passed"] and result["unstable"]["crashy"] == "connection refused"


def test_a_seed_spans_the_stability_window_from_when_it_was_seen():
    # min_healthy_time 1: stable 1 s after the seed's answer, not 1 s after the gate began
    result, client, clock = seeded_gate({"good": lambda now: True},
                                        {"good": {"status": 200, "payload": HEALTHY, "at": 9.5}}, min_healthy_time=1.0)
    assert result["passed"]
    assert round(clock.now, 6) == 10.5
