"""Observed consent: the stop watch, the observation's records, and the one wave verdict."""

from __future__ import annotations

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._consent import StopWatch, observe_stop
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import (
    DRAINING, NO_ANSWER, STOPPED, WORKING, classify_liveness,
)
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.errors import TransportError
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.ask import notify_wave, observe_consent
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.verdict import judge_wave, wave_counts
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import open_store
from helpers import Clock


class Resp:
    def __init__(self, status, json):
        self.status = status
        self.json = json


class TimelineClient:
    """Each agent follows a timeline of (from_time, state) where state is work / shutdown / gone / v2."""

    def __init__(self, clock, timelines, answers=None):
        self.clock = clock
        self.timelines = timelines
        self.answers = answers or {}
        self.posts = []

    def _state(self, name):
        current = "work"
        for at, state in self.timelines.get(name, []):
            if self.clock() >= at:
                current = state
        return current

    def request(self, method, url, body=None, **kw):
        name = url.split("/")[3]
        state = self._state(name)
        if state == "gone":
            raise TransportError("connection refused", sent=False, kind="refused")
        if state == "timeout":
            raise TransportError("read timeout", sent=True, kind="timeout")
        version = "2.0" if state == "v2" else "1.0"
        cog = "shutdown" if state == "shutdown" else "work"
        return Resp(200, {"data": {"status": "healthy", "cognitive_state": cog, "version": version}})

    def probe(self, url, expected_states=None, target_version=None):
        resp = self.request("GET", url)
        return {"healthy": True, "cause": None, "info": {"version": resp.json["data"]["version"]}}

    def ask(self, url, body):
        name = url.split("/")[3]
        self.posts.append(name)
        return dict({"decision": "pending", "reason": None, "defer_until": None, "decision_id": None,
                     "http_status": 200}, **self.answers.get(name, {}))

    def fan_out(self, fn, items):
        return [fn(i) for i in items]


def member(name):
    return {"name": name, "agent_url": "http://h/%s" % name, "wave": 1, "cohort": "all"}


@pytest.mark.parametrize("status,payload,error,state", [
    (200, {"data": {"status": "healthy", "cognitive_state": "work"}}, None, WORKING),
    (200, {"data": {"status": "healthy", "cognitive_state": "shutdown"}}, None, DRAINING),
    (502, None, None, STOPPED),
    (503, None, None, STOPPED),
    (500, {"detail": "boom"}, None, WORKING),
    (None, None, TransportError("refused", sent=False, kind="refused"), STOPPED),
    (None, None, TransportError("reset", sent=True, kind="reset"), STOPPED),
    (None, None, TransportError("read timeout", sent=True, kind="timeout"), NO_ANSWER),
    (None, None, TransportError("tls", sent=False, kind="tls"), NO_ANSWER),
])
def test_one_classifier_says_whether_it_stopped(status, payload, error, state):
    assert classify_liveness(status, payload, error)[0] == state


def test_draining_is_not_stopped_for_a_driver_that_recreates():
    w = StopWatch(["a"], supervisor_restarts=False)
    w.observe("a", DRAINING, None, {}, 1.0)
    assert w.pending() == ["a"]
    w.observe("a", STOPPED, None, {}, 2.5)
    assert w.pending() == [] and w.drained_at["a"] == 1.0 and w.stopped_at["a"] == 2.5


def test_with_the_supervisor_back_on_target_or_restarted_after_draining_counts_as_stopped():
    w = StopWatch(["a", "b", "c", "d"], supervisor_restarts=True, target_version="2.0")
    w.observe("a", DRAINING, None, {}, 1.0)
    w.observe("b", WORKING, None, {"version": "2.0"}, 1.0)
    w.observe("c", WORKING, None, {"version": "1.0"}, 1.0)
    w.observe("d", DRAINING, None, {}, 1.0)
    # draining is not stopped: a long drain must not start the gate's clock
    assert w.pending() == ["a", "c", "d"]
    # working again after draining: its supervisor restarted it (whatever version it runs now)
    w.observe("d", WORKING, None, {"version": "1.0"}, 2.0)
    w.observe("a", STOPPED, None, {}, 2.0)
    assert w.pending() == ["c"] and w.stopped_at == {"b": 1.0, "a": 2.0, "d": 2.0}


def test_observe_stop_outcomes_on_a_clock():
    clock = Clock(min_step=0.01)
    client = TimelineClient(clock, {
        "acc": [(2.0, "shutdown"), (5.0, "gone")],          # drains, then exits
        "dec": [],                                           # keeps working: declined
        "drn": [(1.0, "shutdown")],                          # drains for ever
        "hung": [(1.0, "timeout")],                          # stops answering in time: no evidence
    })
    out = observe_stop(client, [member(n) for n in ("acc", "dec", "drn", "hung")], stop_timeout=10,
                       poll_interval=1.0, clock=clock, sleep=clock.sleep)
    assert out["acc"]["outcome"] == "stopped" and out["acc"]["drained_at"] == 2.0 and out["acc"]["stopped_at"] == 5.0
    assert out["dec"]["outcome"] == "declined" and "did not stop within 10s: declined or still busy" in out["dec"]["detail"]
    assert out["drn"]["outcome"] == "still_draining"
    assert out["hung"]["outcome"] == "no_answer"
    assert clock.now >= 10


def test_observed_consent_is_recorded_and_only_stopped_agents_are_handed_over(tmp_path):
    clock = Clock(min_step=0.01)
    client = TimelineClient(clock, {"a": [(1.0, "shutdown"), (2.0, "gone")], "b": [],
                                    "c": [(0.5, "gone")]}, answers={"c": {"decision": "accept"}})
    names = ("a", "b", "c")
    with open_store(tmp_path / "s.db") as store:
        store.create_or_resume("d", "f", "canary", "2.0", [{"index": 1, "name": "all", "members": [member(n) for n in names]}], {})
        asked = notify_wave(client, [member(n) for n in names], "d", "2.0", "r", store=store, skip_if_on_target=False)
        assert sorted(a["name"] for a in asked["consenting_agents"]) == ["a", "b", "c"]
        ready, observed = observe_consent(client, store, "d", asked["consenting_agents"], "2.0", stop_timeout=5,
                                          poll_interval=0.5, clock=clock, sleep=clock.sleep)
        assert sorted(m["name"] for m in ready) == ["a", "c"]
        rows = dict((r["host"], r) for r in store.agents("d"))
        assert rows["a"]["decision"] == "accept" and rows["a"]["decision_reason"].startswith("observed: drained and stopped")
        assert rows["b"]["decision"] == "declined" and rows["b"]["result"] == "declined"
        assert rows["c"]["decision"] == "accept"
        # a rerun asks nobody again: accept, declined are kept; nobody is pending
        again = notify_wave(client, [member(n) for n in names], "d", "2.0", "r", store=store, skip_if_on_target=False)
        assert again["asked"] == [] and client.posts == ["a", "b", "c"]


def test_an_explicit_accepter_that_never_stops_is_failed_not_updated(tmp_path):
    clock = Clock(min_step=0.01)
    client = TimelineClient(clock, {}, answers={"a": {"decision": "accept"}})
    with open_store(tmp_path / "s.db") as store:
        store.create_or_resume("d", "f", "canary", "2.0", [{"index": 1, "name": "all", "members": [member("a")]}], {})
        asked = notify_wave(client, [member("a")], "d", "2.0", "r", store=store, skip_if_on_target=False)
        ready, dummy = observe_consent(client, store, "d", asked["consenting_agents"], "2.0", stop_timeout=3,
                                       clock=clock, sleep=clock.sleep)
        assert ready == []
        row = store.agents("d")[0]
        assert row["decision"] == "accept" and row["result"] == "failed"
        assert row["result_detail"].startswith("accepted but did not stop within 3s")


@pytest.mark.parametrize("counts,threshold,passed,required", [
    ({"accepted": 4, "unreachable": 0, "healthy": 4}, 0.8, True, 4),
    ({"accepted": 4, "unreachable": 0, "healthy": 3}, 0.8, False, 4),
    ({"accepted": 4, "unreachable": 1, "healthy": 4}, 0.8, True, 4),
    ({"accepted": 0, "unreachable": 0, "healthy": 0}, 0.8, True, 0),  # everyone declined: nothing to judge
    ({"accepted": 0, "unreachable": 1, "healthy": 0}, 0.8, False, 1),
    ({"accepted": 10, "unreachable": 0, "healthy": 5}, 0.5, True, 5),
])
def test_the_one_wave_verdict(counts, threshold, passed, required):
    assert judge_wave(counts, threshold) == (passed, required)


def test_wave_counts_come_from_the_state_across_runs(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        store.create_or_resume("d", "f", "canary", "2.0", [{"index": 1, "name": "all", "members": [member(n) for n in "abcd"]}], {})
        store.record_answers("d", [{"host": "a", "decision": "accept"}, {"host": "b", "decision": "accept"},
                                   {"host": "c", "decision": "declined"}, {"host": "d", "decision": "unreachable"}])
        store.set_results("d", [{"host": "a", "result": "updated"}, {"host": "b", "result": "failed"},
                                {"host": "c", "result": "declined"}, {"host": "d", "result": "failed"}])
        c = wave_counts(store, "d", 1)
        assert (c["accepted"], c["declined"], c["unreachable"], c["healthy"], c["failed"]) == (2, 1, 1, 1, 2)
        assert judge_wave(c, 0.5) == (False, 2)  # ceil(0.5 x (2 accepted + 1 unreachable)) = 2 > 1 healthy
