# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 12 #7: min_healthy_time 0 does not make the health gate a single probe. An agent counts as
stable only after MIN_HEALTHY_PROBES healthy probes in a row: a flapping agent, or one that crashes
right after starting, is not counted updated; and a short window is warned about."""

from __future__ import annotations

from ansible_collections.agentfleet.rollout.plugins.module_utils import _health
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import MIN_HEALTHY_PROBES
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


def test_a_flapping_agent_never_counts_as_updated():
    # healthy on every other probe: never MIN_HEALTHY_PROBES in a row
    result, dummy = gate({"flappy": lambda now: int(round(now / 0.5)) % 2 == 0})
    assert not result["passed"] and result["stable"] == []
    assert "flappy" in result["unstable"]


def test_an_agent_that_crashes_right_after_starting_is_not_counted():
    # healthy for its first 0.6 s (two probes), then gone for good
    result, dummy = gate({"crashy": lambda now: now < 0.6})
    assert not result["passed"] and result["unstable"]["crashy"] == "connection refused"


def test_a_long_enough_window_gives_no_warning():
    result, dummy = gate({"good": lambda now: True}, min_healthy_time=10.0, healthy_deadline=30.0)
    assert result["passed"] and result["warnings"] == []


def test_the_stop_watch_still_takes_one_observation():
    # wait_for_wave's default (stopped = one refused connection) is unchanged
    clock = Clock()
    res = _health.wait_for_wave(["a"], lambda names: {"a": (True, None, {})}, clock=clock, sleep=clock.sleep)
    assert res["passed"] and clock.now == 0.0
