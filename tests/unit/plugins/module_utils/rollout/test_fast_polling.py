# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 20: an agent that comes up (or stops) is seen soon after, whatever poll_interval is; the
probes in a row that make an agent stable stay poll_interval apart when the stability window
(min_healthy_time) is at least that long (tests/unit/plugins/module_utils/rollout/test_gate_probes.py: a shorter window)."""

from __future__ import annotations

from ansible_collections.agentfleet.rollout.plugins.module_utils._consent import adaptive_interval
from ansible_collections.agentfleet.rollout.plugins.module_utils._consent import observe_stop
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import MIN_HEALTHY_PROBES
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import gate_agents
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.errors import TransportError
from helpers import Clock


class Client:
    """probe()/request() answer from ``name -> f(now) -> up?``; every probe time is kept."""

    def __init__(self, clock, script):
        self.clock, self.script, self.times = clock, script, []

    def fan_out(self, fn, items):
        return [fn(i) for i in items]

    def probe(self, url, expected_states, target_version):
        self.times.append(self.clock.now)
        ok = self.script[url](self.clock.now)
        return {"healthy": ok, "cause": None if ok else "connection refused", "info": {}, "reachable": ok}

    def request(self, method, url):
        name = url.split("/")[0]
        self.times.append(self.clock.now)
        if not self.script[name](self.clock.now):
            raise TransportError("connection refused", sent=False, kind="refused")

        class Resp:
            status = 200
            json = {"data": {"cognitive_state": "work", "status": "healthy", "version": "1.0.0"}}
        return Resp()


PARAMS = dict(min_healthy_time=0.0, healthy_deadline=60.0, poll_interval=1.0, success_threshold=1.0, grace=None)


def test_adaptive_interval_grows_with_the_wait_up_to_poll_interval():
    assert adaptive_interval(0.0, 1.0) == 0.05
    assert adaptive_interval(2.0, 1.0) == 0.1
    assert adaptive_interval(4.0, 1.0) == 0.2
    assert adaptive_interval(60.0, 1.0) == 1.0
    assert adaptive_interval(60.0, 0.02) == 0.02


def test_the_gate_sees_an_agent_that_boots_soon_after_it_is_up():
    clock = Clock()
    client = Client(clock, {"a": lambda now: now >= 2.0})
    result = gate_agents(client, [{"name": "a", "agent_url": "a"}], dict(PARAMS, min_healthy_time=2.0), clock=clock,
                         sleep=clock.sleep)
    assert result["passed"]
    first_up = min(t for t in client.times if t >= 2.0)
    # seen within a tenth of the time waited (not at the next whole poll_interval)
    assert first_up - 2.0 <= 0.2 + 1e-9
    # the probes in a row that make it stable are still poll_interval apart
    streak = [t for t in client.times if t >= 2.0]
    assert len(streak) == MIN_HEALTHY_PROBES
    assert all(abs((b - a) - 1.0) < 1e-9 for a, b in zip(streak, streak[1:]))


def test_an_agent_seen_ready_once_and_then_failing_is_probed_at_poll_interval():
    clock = Clock()
    client = Client(clock, {"a": lambda now: now < 0.5 or now >= 3.0})
    result = gate_agents(client, [{"name": "a", "agent_url": "a"}], dict(PARAMS, min_healthy_time=2.0), clock=clock,
                         sleep=clock.sleep)
    assert result["passed"]
    gaps = [b - a for a, b in zip(client.times, client.times[1:])]
    assert all(abs(g - 1.0) < 1e-9 for g in gaps)


def test_observe_stop_fast_first_sees_a_quick_stop_at_once():
    def stops_at(t):
        return lambda now: now < t

    for fast, bound in ((False, 1.0), (True, 0.1)):
        clock = Clock()
        client = Client(clock, {"a": stops_at(0.3)})
        out = observe_stop(client, [{"name": "a", "agent_url": "a"}], stop_timeout=30, poll_interval=1.0, clock=clock,
                           sleep=clock.sleep, fast_first=fast)
        assert out["a"]["outcome"] == "stopped"
        assert 0.3 <= out["a"]["stopped_at"] <= 0.3 + bound + 1e-9
