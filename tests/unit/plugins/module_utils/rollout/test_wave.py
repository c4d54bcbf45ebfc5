# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 22 item 7: the wave engine (``_wave.run_wave``) in unit tests, with a fake transport and a fake clock.

The client is the collection's own AgentClient (its ask, probe and fan-out logic) with ``request`` answered by
in-memory agents that behave like CIRIS agents (PROTOCOL.md): a shutdown request is answered 200 "initiated"
and the agent decides by acting (it drains, exits and, with the ``none`` driver, its supervisor starts it again
on the requested version) or keeps working (a silent decline). The state is the real SQLite store in a temporary
directory. Time is a fake clock: the engine's waits move it on, and no test sleeps."""

from __future__ import annotations

import json
import threading
import types

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils import _common
from ansible_collections.agentfleet.rollout.plugins.module_utils import _consent
from ansible_collections.agentfleet.rollout.plugins.module_utils import _health
from ansible_collections.agentfleet.rollout.plugins.module_utils import _argspecs
from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners
from ansible_collections.agentfleet.rollout.plugins.module_utils import _wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import open_store
from helpers import Clock

TARGET = "2.0.0"
BASE = "http://fake.invalid/"


class Agent:
    """One in-memory agent. ``mode``: ``ciris`` (stops when asked and comes back on the requested version),
    ``silent`` (answers 200 "initiated" and keeps working), ``crash`` (comes back, then is gone
    ``crash_after`` seconds after it was up), ``unauthorized`` (refuses the token: 401, keeps working)."""

    def __init__(self, name, clock, mode="ciris", drain=0.5, boot=1.0, crash_after=0.2):
        self.name, self.clock, self.mode = name, clock, mode
        self.drain, self.boot, self.crash_after = drain, boot, crash_after
        self.version = "1.0.0"
        self.asked = []
        self.stopped_at = self.up_at = None
        self.target = None

    def shutdown(self, body):
        self.asked.append(body)
        if self.mode == "unauthorized":
            return 401, {"detail": "unauthorized"}
        if self.mode != "silent" and self.stopped_at is None:
            self.stopped_at = self.clock() + self.drain
            self.target = body.get("target_version") or self.version
            self.up_at = self.stopped_at + self.boot
        return 200, {"data": {"status": "initiated", "shutdown_initiated": True,
                              "message": "System shutdown initiated", "timestamp": self.clock()}}

    def health(self):
        now = self.clock()
        state = "work"
        if self.stopped_at is not None:
            if now < self.stopped_at:
                state = "shutdown"
            elif now < self.up_at:
                return None  # gone: connection refused
            else:
                self.version = self.target
                if self.mode == "crash" and now >= self.up_at + self.crash_after:
                    return None
        return 200, {"data": {"status": "healthy", "version": self.version, "cognitive_state": state,
                              "initialization_complete": True, "agent_id": self.name, "occurrence_id": "default"}}


class FakeTransportClient(_common.AgentClient):
    """The real client; its requests go to in-memory agents instead of sockets."""

    def __init__(self, agents, **kwargs):
        super().__init__(**kwargs)
        self.agents = agents
        self.lock = threading.Lock()
        self.requests = []

    def request(self, method, url, body=None, **kwargs):
        name, path = url[len(BASE):].split("/", 1)
        agent = self.agents[name]
        with self.lock:
            self.requests.append((method, name, "/" + path))
            answer = agent.shutdown(body) if method == "POST" else agent.health()
        if answer is None:
            raise _consent.TransportError("connection refused", sent=False, kind="refused")
        status, payload = answer
        body_text = json.dumps(payload)
        return types.SimpleNamespace(status=status, body=body_text, json=payload, elapsed=0.001, headers={})


@pytest.fixture
def engine(tmp_path, monkeypatch):
    """``(clock, agents, run(wave_params) -> result, client)`` for one deployment of the named agents."""
    clock = Clock(1000.0)
    agents = {}
    clients = []

    def client_from_params(params, run=None):
        client = FakeTransportClient(agents, token=None, sleep=clock.sleep)
        clients.append(client)
        return client

    monkeypatch.setattr(_wave, "client_from_params", client_from_params)
    state = str(tmp_path / "state.db")

    def deploy(specs, waves):
        for name, kw in specs.items():
            agents[name] = Agent(name, clock, **kw)
        members = [{"name": n, "agent_url": BASE + n, "agent_id": n, "occurrence_id": "default"} for n in specs]
        plan, at = [], 0
        for i, size in enumerate(waves):
            plan.append({"index": i + 1, "name": "wave-%d" % (i + 1), "members": members[at:at + size], "size": size})
            at += size
        params = defaults(_argspecs.DEPLOYMENT_SPEC)
        params.update(state="running", state_path=state, deployment_id="d-unit", fleet_key="unit", target_version=TARGET,
                      waves=plan)
        _runners.run_deployment(params)
        return plan

    def run_wave(wave, plan, check_mode=False, **extra):
        params = defaults(_argspecs.WAVE_SPEC)
        params.update(state_path=state, deployment_id="d-unit", wave=wave, wave_count=len(plan), driver="none",
                      min_healthy_time=1.0, poll_interval=0.2, healthy_deadline=30.0, stop_timeout=10.0,
                      last=wave is plan[-1], report_path=str(tmp_path / "report.json"),
                      audit_path=str(tmp_path / "audit.jsonl"))
        params.update(extra)
        return _wave.run_wave(params, check_mode=check_mode, clock=clock, monotonic=clock, sleep=clock.sleep)

    return types.SimpleNamespace(clock=clock, agents=agents, deploy=deploy, run_wave=run_wave, clients=clients,
                                 state=state)


def defaults(spec):
    return dict((k, v.get("default")) for k, v in spec.items())


def results(out):
    return dict((host, o["result"]) for host, o in out["outcomes"].items())


def test_a_wave_of_ciris_agents_is_asked_once_watched_until_stopped_gated_and_passes(engine):
    plan = engine.deploy({"a1": {}, "a2": {"drain": 2.0}, "a3": {"boot": 3.0}}, [3])
    start = engine.clock()
    out = engine.run_wave(plan[0], plan)
    assert out["passed"] and not out["halt"] and out["done"], out["line"]
    assert results(out) == {"a1": "updated", "a2": "updated", "a3": "updated"}
    assert all(len(a.asked) == 1 and a.version == TARGET for a in engine.agents.values())
    assert all(a.asked[0]["deployment_id"] == "d-unit" for a in engine.agents.values())
    # the slowest agent is up 0.5 + 3 s after the ask and stable 1 s later: the wave ends soon after that
    assert 4.5 <= engine.clock() - start <= 5.5, engine.clock() - start
    assert out["go_on"] is False and out["rollout_deployment_summary"]["status"] == "completed"


def test_a_silent_decliner_is_never_restarted_and_the_rest_of_the_wave_is_updated(engine):
    plan = engine.deploy({"yes": {}, "no": {"mode": "silent"}}, [2])
    out = engine.run_wave(plan[0], plan, stop_timeout=3.0, success_threshold=0.5)
    assert results(out)["yes"] == "updated"
    assert results(out)["no"] != "updated"
    assert engine.agents["no"].version == "1.0.0" and len(engine.agents["no"].asked) == 1
    with open_store(engine.state) as store:
        rows = dict((r["host"], r) for r in store.agents("d-unit"))
    assert rows["no"]["decision"] == "declined", rows["no"]


def test_an_agent_that_crashes_after_it_came_back_fails_the_gate_and_halts_the_rollout(engine):
    plan = engine.deploy({"ok": {}, "crashy": {"mode": "crash", "crash_after": 0.3}, "later": {}}, [2, 1])
    out = engine.run_wave(plan[0], plan)
    assert not out["passed"] and out["halt"], out["line"]
    assert results(out)["crashy"] == "failed" and results(out)["ok"] == "updated"
    # the next batch asks nobody
    later = engine.run_wave(plan[1], plan)
    assert engine.agents["later"].asked == [] and results(later) == {"later": "not asked"}


def test_check_mode_sends_no_request_and_says_who_would_be_asked(engine):
    plan = engine.deploy({"a1": {}, "a2": {}}, [2])
    out = engine.run_wave(plan[0], plan, check_mode=True)
    assert all(c.requests == [] for c in engine.clients)
    assert all(a.asked == [] for a in engine.agents.values())
    assert out["changed"] is True and out["passed"] is None and out["done"] and not out["halt"], out
    assert out["lines"][1:] == ["a1: would be asked in wave 1 of 1 (wave-1)", "a2: would be asked in wave 1 of 1 (wave-1)"]
    with open_store(engine.state) as store:
        assert all(r.get("decision") is None for r in store.agents("d-unit"))


def test_a_rerun_of_a_finished_wave_asks_nobody_again(engine):
    plan = engine.deploy({"a1": {}, "a2": {}}, [1, 1])
    first = engine.run_wave(plan[0], plan)
    assert first["passed"]
    again = engine.run_wave(plan[0], plan)
    assert len(engine.agents["a1"].asked) == 1, again["line"]
    second = engine.run_wave(plan[1], plan)
    assert second["passed"] and len(engine.agents["a2"].asked) == 1


# -- asking the next wave ahead (none driver, issue 20: the critical path) ----------------------------------------

def test_a_passed_wave_asks_the_next_one_ahead_and_its_call_watches_gates_and_asks_nobody_twice(engine):
    plan = engine.deploy({"a1": {}, "b1": {}, "b2": {"drain": 1.0}}, [1, 2])
    first = engine.run_wave(plan[0], plan, next_wave=plan[1])
    assert first["passed"] and first["asked_ahead"] == ["b1", "b2"], first["lines"]
    assert "wave 2 (wave-2) asked ahead as wave 1 passed: 2 of 2 agents asked" in first["lines"]
    assert [len(engine.agents[n].asked) for n in ("a1", "b1", "b2")] == [1, 1, 1]
    # a wave's outcomes are its own: the agents asked ahead have no row in this batch
    assert sorted(first["outcomes"]) == ["a1"]
    asked_at = engine.clock()
    second = engine.run_wave(plan[1], plan)
    assert second["passed"] and results(second) == {"b1": "updated", "b2": "updated"}, second["lines"]
    assert second["asked"] == [] and second["asked_ahead"] == []
    assert all(len(a.asked) == 1 and a.version == TARGET for a in engine.agents.values())
    # the slowest agent was asked before the second call: up 1 + 1 s after its ask, stable 1 s later
    assert engine.clock() - asked_at <= 3.5, engine.clock() - asked_at
    with open_store(engine.state) as store:
        rows = dict((r["host"], r) for r in store.agents("d-unit"))
    assert all(rows[n]["asked_count"] == 1 for n in rows), rows


def test_nothing_is_asked_ahead_after_a_failed_wave(engine):
    plan = engine.deploy({"crashy": {"mode": "crash", "crash_after": 0.3}, "n1": {}}, [1, 1])
    failed = engine.run_wave(plan[0], plan, next_wave=plan[1])
    assert failed["halt"] and failed["asked_ahead"] == [] and engine.agents["n1"].asked == []


def test_nothing_is_asked_ahead_once_an_operator_paused_the_deployment(engine):
    plan = engine.deploy({"q1": {}, "q2": {}}, [1, 1])
    # the deployment paused by an operator while the first wave ran (a wave under way ends, the next is held)
    original = _wave._finish

    def finish_then_pause(store, *args, **kwargs):
        out = original(store, *args, **kwargs)
        store.set_status("d-unit", "paused", message="paused by an operator")
        return out

    _wave._finish = finish_then_pause
    try:
        out = engine.run_wave(plan[0], plan, next_wave=plan[1])
    finally:
        _wave._finish = original
    assert out["passed"] and out["asked_ahead"] == [] and engine.agents["q2"].asked == [], out["lines"]


def test_the_last_wave_and_a_blue_green_or_explicit_wave_without_next_wave_ask_nobody_ahead(engine):
    plan = engine.deploy({"a1": {}, "b1": {}}, [1, 1])
    out = engine.run_wave(plan[0], plan)
    assert out["passed"] and out["asked_ahead"] == [] and engine.agents["b1"].asked == []
    last = engine.run_wave(plan[1], plan, next_wave=plan[0])
    assert last["passed"] and last["asked_ahead"] == []
    assert len(engine.agents["a1"].asked) == 1


# -- the tasks driver's pipeline: phase ask, then phase round until done -----------------------------------------

def start_agents(engine, out):
    """What the user's update tasks do for the agents handed over: start each on the version of its update_map."""
    for name in out["update_hosts"]:
        agent = engine.agents[name]
        agent.target = out["update_map"][name]["version"]
        agent.up_at = engine.clock()


def pipeline(engine, wave, plan, fail=None, on_round=None, fail_revert=(), **extra):
    """Run a tasks-driver wave the way roles/rollout/tasks/wave_tasks.yml does; returns (rounds, last result).
    ``fail``: host -> the error of its update tasks (purpose update only: its revert works, unless the host is
    in ``fail_revert``)."""
    out = engine.run_wave(wave, plan, driver="tasks", phase="ask", **extra)
    rounds = []
    while not out["done"]:
        rounds.append((engine.clock(), list(out["update_hosts"])))
        if on_round is not None:
            on_round(out)
        failing = [h for h in out["update_hosts"] if h in (fail or {}) and (
            out["update_map"][h]["purpose"] == "update" or h in fail_revert)]
        start_agents(engine, {"update_hosts": [h for h in out["update_hosts"] if h not in failing],
                              "update_map": out["update_map"]})
        failed = dict((h, fail[h]) for h in failing)
        out = engine.run_wave(wave, plan, driver="tasks", phase="round", round=out["round"], update_failed=failed,
                              driver_results={}, **extra)
    return rounds, out


def test_tasks_driver_hands_over_each_agent_as_it_stops_not_after_the_slowest(engine):
    # without a supervisor (the tasks driver): an agent that exited stays down until the user's tasks start it
    plan = engine.deploy({"fast": {"drain": 0.5, "boot": 1e9}, "slow": {"drain": 6.0, "boot": 1e9}}, [2])
    start = engine.clock()
    rounds, out = pipeline(engine, plan[0], plan)
    assert out["passed"], out["line"]
    assert results(out) == {"fast": "updated", "slow": "updated"}
    handed = dict((h, t - start) for t, hosts in rounds for h in hosts)
    assert handed["fast"] < 1.5 and handed["slow"] >= 6.0, rounds
    # nobody was started before it had stopped
    assert all(len(a.asked) == 1 and a.version == TARGET for a in engine.agents.values())


def revert_purposes(out, purposes):
    purposes.extend((h, out["update_map"][h]["version"]) for h in out["update_hosts"]
                    if out["update_map"][h]["purpose"] == "revert")


def test_tasks_driver_a_failed_update_fails_that_agent_only_and_never_leaves_it_down(engine):
    # "bad" stopped because we asked and its update tasks failed: without auto_revert, and though the wave
    # passes, the tasks start it again on the version it ran before; its row fails (reverted, final)
    plan = engine.deploy({"good": {"boot": 1e9}, "bad": {"boot": 1e9}}, [2])
    purposes = []
    rounds, out = pipeline(engine, plan[0], plan, fail={"bad": "image pull failed"}, success_threshold=0.5,
                           on_round=lambda o: revert_purposes(o, purposes))
    assert out["passed"], out["line"]
    assert results(out) == {"good": "updated", "bad": "reverted"}
    assert out["outcomes"]["bad"]["failed"] and not out["outcomes"]["good"]["failed"]
    assert "update tasks failed: image pull failed" in out["outcomes"]["bad"]["detail"], out["outcomes"]["bad"]
    assert "started again on its previous version 1.0.0" in out["outcomes"]["bad"]["detail"]
    assert purposes == [("bad", "1.0.0")]
    assert engine.agents["bad"].target == "1.0.0" and engine.agents["good"].version == TARGET
    assert out["rollout_deployment_summary"]["status"] == "completed_with_failures"
    # a rerun asks nobody again and leaves it as it is (its consent was used)
    again = engine.run_wave(plan[0], plan, driver="tasks", phase="ask")
    assert again["done"] and again["update_hosts"] == [] and results(again)["bad"] == "reverted"
    assert len(engine.agents["bad"].asked) == 1


def test_tasks_driver_a_failed_wave_without_auto_revert_starts_only_the_agent_whose_update_failed(engine):
    plan = engine.deploy({"good": {"boot": 1e9}, "bad": {"boot": 1e9}}, [2])
    purposes = []
    rounds, out = pipeline(engine, plan[0], plan, fail={"bad": "image pull failed"},
                           on_round=lambda o: revert_purposes(o, purposes))
    assert not out["passed"] and out["halt"]
    assert purposes == [("bad", "1.0.0")]
    assert results(out) == {"good": "updated", "bad": "reverted"}
    assert out["rollout_deployment_summary"]["status"] == "failed"


def test_tasks_driver_an_agent_whose_revert_fails_too_stays_failed_and_the_notes_say_so(engine):
    plan = engine.deploy({"good": {"boot": 1e9}, "bad": {"boot": 1e9}}, [2])
    rounds, out = pipeline(engine, plan[0], plan, fail={"bad": "disk full"}, fail_revert=("bad",),
                           success_threshold=0.5)
    assert results(out) == {"good": "updated", "bad": "failed"}
    assert "update tasks failed: disk full" in out["outcomes"]["bad"]["detail"]
    assert any("revert tasks failed: bad (disk full)" in n for n in out.get("notes") or []), out.get("notes")


def test_tasks_driver_auto_revert_puts_the_failed_wave_back_with_the_agent_whose_update_failed(engine):
    # the failed update left "bad" down (it stopped because we asked): the wave's revert starts it again too
    plan = engine.deploy({"good": {"boot": 1e9}, "bad": {"boot": 1e9}}, [2])
    purposes = []

    def record(out):
        purposes.extend((h, out["update_map"][h]["purpose"], out["update_map"][h]["version"]) for h in out["update_hosts"])

    rounds, out = pipeline(engine, plan[0], plan, fail={"bad": "image pull failed"}, auto_revert=True,
                           on_round=record)
    assert not out["passed"]
    assert sorted(p for p in purposes if p[1] == "revert") == [("bad", "revert", "1.0.0"), ("good", "revert", "1.0.0")]
    assert results(out) == {"good": "reverted", "bad": "reverted"}
    assert "update tasks failed" not in out["outcomes"]["good"]["detail"]
    assert all(a.target == "1.0.0" and a.up_at <= engine.clock() for a in engine.agents.values())


def test_an_agent_back_before_the_stop_watchs_first_probe_costs_the_gate_one_probe_less(engine):
    # issue 20: the stop watch's answer that shows it back on the new version is the first of the gate's probes
    plan = engine.deploy({"quick": {"drain": 0.0, "boot": 0.0}, "slow": {}}, [2])
    # a window of 0: the streak is MIN_HEALTHY_PROBES probes MIN_STREAK_SPACING apart, nothing more
    out = engine.run_wave(plan[0], plan, min_healthy_time=0.0)
    assert out["passed"], out["line"]
    requests = engine.clients[0].requests
    after_ask = dict((n, [r for r in requests[requests.index(("POST", n, "/v1/system/shutdown")) + 1:]
                          if r[1] == n]) for n in ("quick", "slow"))
    assert all(method == "GET" for reqs in after_ask.values() for method, dummy, path in reqs)
    # quick: one stop-watch probe (back already), then MIN_HEALTHY_PROBES - 1 gate probes
    assert len(after_ask["quick"]) == 1 + _health.MIN_HEALTHY_PROBES - 1
    # slow went through a refused connection: the gate probes it MIN_HEALTHY_PROBES times from its first
    assert engine.agents["slow"].version == TARGET
    gate = out["gate"]["agents"]
    assert gate["quick"]["probes"] == _health.MIN_HEALTHY_PROBES


def test_tasks_driver_a_wave_that_stops_early_still_starts_the_agent_whose_update_failed(engine):
    # "locked" refuses the token: the wave stops (no gate), but "quick", which stopped because it was asked, is
    # handed to the tasks; its update fails, so it goes back on its previous version before the wave ends
    plan = engine.deploy({"quick": {"drain": 0.5, "boot": 1e9}, "locked": {"mode": "unauthorized"}}, [2])
    purposes = []
    rounds, out = pipeline(engine, plan[0], plan, fail={"quick": "image pull failed"},
                           on_round=lambda o: revert_purposes(o, purposes))
    assert out["halt"] and "authentication failed" in out["line"], out["line"]
    assert purposes == [("quick", "1.0.0")]
    assert results(out)["quick"] == "reverted", out["outcomes"]["quick"]
    assert "started again on its previous version 1.0.0" in out["outcomes"]["quick"]["detail"]
    assert engine.agents["quick"].target == "1.0.0" and engine.agents["locked"].stopped_at is None
    assert out["rollout_deployment_summary"]["status"] == "failed"
