"""Notifications (_webhook): which events a registered result stands for, tries within the run's budget, and
nothing secret in a warning."""

from __future__ import annotations

import pytest
import urllib3

from ansible_collections.agentfleet.rollout.plugins.module_utils._webhook import events_of
from ansible_collections.agentfleet.rollout.plugins.module_utils._webhook import post_events
from ansible_collections.agentfleet.rollout.plugins.module_utils._webhook import validate_webhook
from helpers import Clock

URL = "https://hooks.example.org/services/T0/B0/secretpath"


class Pool:
    """Answers each POST with the next of ``answers`` (an int status, or an exception to raise); every request
    takes ``cost`` seconds of the fake clock."""

    def __init__(self, clock, answers, cost=0.01):
        self.clock, self.answers, self.cost, self.calls = clock, list(answers), cost, []

    def request(self, method, url, body=None, headers=None, redirect=True, timeout=None):
        self.calls.append((method, url, body, headers, timeout))
        self.clock.now += min(self.cost, timeout.total) if timeout is not None and timeout.total else self.cost
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, BaseException):
            raise answer  # pylint: disable=raising-bad-type

        class Resp:
            status = answer
        return Resp()


WAVE = {"rollout_wave_summary": {"deployment_id": "d1", "wave": 1, "wave_count": 2, "name": "canary", "size": 1,
                                 "updated": 1, "passed": True, "line": "wave 1/2 canary: passed"}}


def test_events_of_each_outcome():
    started = events_of("deployment", {"mode": "new", "deployment_id": "d1", "strategy": "canary",
                                       "target_version": "2.0.0", "plan": [{}, {}]}, "k")
    assert [e["event"] for e in started] == ["deployment_started"] and started[0]["waves"] == 2
    assert "d1 (canary, target 2.0.0) started" in started[0]["text"]
    assert events_of("deployment", {"mode": "complete", "already_complete": True}) == []
    assert events_of("deployment", {"mode": "check"}) == []
    assert events_of("deployment", {"mode": "staged"}) == []
    passed = events_of("wave", WAVE, "k", "canary", "2.0.0")
    assert [e["event"] for e in passed] == ["wave_passed"]
    assert passed[0]["strategy"] == "canary" and passed[0]["target_version"] == "2.0.0"
    failed = dict(WAVE["rollout_wave_summary"], passed=False, halt_reason="1/1 unhealthy")
    end = {"deployment_id": "d1", "status": "failed", "strategy": "canary", "target_version": "2.0.0",
           "totals": {"failed": 1}, "message": "wave 1 failed"}
    out = events_of("wave", {"rollout_wave_summary": failed, "rollout_deployment_summary": end})
    assert [e["event"] for e in out] == ["wave_failed", "deployment_finished"]
    assert out[0]["reason"] == "1/1 unhealthy" and out[1]["status"] == "failed"
    assert out[1]["text"] == "deployment d1 (canary -> 2.0.0): failed: wave 1 failed"
    staged = events_of("wave", {"rollout_wave_summary": WAVE["rollout_wave_summary"],
                                "rollout_deployment_summary": dict(end, status="staged", message=None)})
    assert [e["event"] for e in staged] == ["wave_passed", "deployment_staged"]
    paused = events_of("wave", {"paused": True, "line": "paused by an operator"}, "k", "canary", "2.0.0")
    assert [e["event"] for e in paused] == ["deployment_paused"]
    # a batch after a halted wave (nobody asked, nothing recorded) stands for no event
    assert events_of("wave", {"rollout_wave_summary": {}, "rollout_deployment_summary": {}}) == []


def test_delivered_at_once_and_headers_sent():
    clock = Clock()
    pool = Pool(clock, [200, 204])
    out = post_events(URL, {"Authorization": "Bearer x"}, events_of("wave", WAVE) * 2, 5.0, clock=clock,
                      sleep=clock.sleep, pool=pool)
    assert out["sent"] == ["wave_passed", "wave_passed"] and out["undelivered"] == [] and out["warnings"] == []
    assert pool.calls[0][3]["Authorization"] == "Bearer x" and pool.calls[0][3]["Content-Type"] == "application/json"


def test_server_errors_are_tried_three_times_client_errors_once():
    clock = Clock()
    pool = Pool(clock, [500, 503, 500, 400])
    out = post_events(URL, {}, events_of("wave", WAVE) * 2, 5.0, clock=clock, sleep=clock.sleep, pool=pool)
    assert len(pool.calls) == 4 and out["sent"] == [] and out["undelivered"] == ["wave_passed", "wave_passed"]
    assert out["warnings"][0] == ("notification wave_passed to https://hooks.example.org not delivered: HTTP 500 "
                                  "(the rollout goes on)")
    assert all("secretpath" not in w for w in out["warnings"])


def test_a_hanging_receiver_never_takes_more_than_the_budget():
    clock = Clock()
    timeout = urllib3.exceptions.ReadTimeoutError(None, URL, "read timed out")
    pool = Pool(clock, [timeout] * 20, cost=3.0)
    out = post_events(URL, {}, events_of("wave", WAVE) * 4, 5.0, clock=clock, sleep=clock.sleep, pool=pool)
    assert clock.now <= 5.0, "every request's time is capped by what is left of the budget"
    assert all(call[4].total <= 5.0 and call[4].read_timeout <= 3.0 for call in pool.calls)
    assert len(pool.calls) == 2 and out["undelivered"] == ["wave_passed"] * 4
    assert "timed out" in out["warnings"][0] and "no time left" in out["warnings"][-1]
    assert all(URL not in w and "secretpath" not in w for w in out["warnings"])


@pytest.mark.parametrize("params, field", [
    ({"url": "ftp://x/y"}, "url: rollout_notify_url"),
    ({"url": "http:///nohost"}, "url: rollout_notify_url"),
    ({"url": URL, "headers": {"X": 1}}, "headers: rollout_notify_headers"),
])
def test_bad_input_names_the_field_and_never_the_url(params, field):
    with pytest.raises(ValueError) as exc:
        validate_webhook(params)
    assert str(exc.value).startswith(field) and "secretpath" not in str(exc.value)
