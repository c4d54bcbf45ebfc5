"""The tasks and docker drivers' wave engine (_pipeline via _wave.run_wave), with a fake agent client and a real
SQLite state: each agent is updated in the round after it stopped; every result has one shape; an error while
asking still hands the stopped agents over; a rerun takes an agent found on the target as updated."""

from __future__ import annotations

import contextlib

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.agentfleet.rollout.plugins.action.rollout_wave import round_results
from ansible_collections.agentfleet.rollout.plugins.module_utils import _argspecs
from ansible_collections.agentfleet.rollout.plugins.module_utils import _wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import evaluate_health
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import map_shutdown_answer
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import open_store
from helpers import Clock

TARGET = "2.0.0"


class Resp:
    def __init__(self, status, payload):
        self.status, self.json, self.elapsed = status, payload, 0.001


class FakeAgents:
    """Agents that answer like real CIRIS agents: 200 "initiated", then drain for ``drain[name]`` seconds and
    exit (a 502 from their proxy), or keep working (``decline``); ``auth_fail`` answer 401."""

    def __init__(self, clock, names, drain=None, decline=(), auth_fail=(), version="1.0.0"):
        self.clock = clock
        self.drain = dict(drain or {})
        self.decline, self.auth_fail = set(decline), set(auth_fail)
        self.agents = dict((n, {"version": version, "asked_at": None, "up": True}) for n in names)
        self.asked = []
        self.started = []

    def url(self, name):
        return "http://127.0.0.1:1/api/" + name

    def _name(self, url):
        return url.split("/api/")[1].split("/")[0]

    def state(self, name):
        a = self.agents[name]
        if not a["up"]:
            return "down"
        if a["asked_at"] is not None and name not in self.decline:
            left = a["asked_at"] + 0.2 + self.drain.get(name, 0.5) - self.clock.now
            if left <= 0:
                a["up"] = False
                return "down"
            return "draining" if self.clock.now >= a["asked_at"] + 0.2 else "working"
        return "working"

    def health(self, name):
        st = self.state(name)
        if st == "down":
            return Resp(502, None)
        return Resp(200, {"data": {"status": "healthy", "version": self.agents[name]["version"],
                                   "cognitive_state": "shutdown" if st == "draining" else "work"}})

    # the client's interface as the engine uses it
    def request(self, method, url, **kwargs):
        return self.health(self._name(url))

    def probe(self, url, expected_states=("work",), target_version=None, **kwargs):
        resp = self.health(self._name(url))
        if resp.status != 200:
            return {"healthy": False, "cause": "HTTP 502", "info": {}, "reachable": False}
        healthy, cause, info = evaluate_health(resp.status, resp.json, expected_states, target_version)
        return {"healthy": healthy, "cause": cause, "info": info, "reachable": True, "elapsed": 0.001}

    def ask(self, url, body):
        name = self._name(url)
        self.asked.append(name)
        if name in self.auth_fail:
            return map_shutdown_answer(401, {"detail": "bad token"}, self.clock.now)
        self.agents[name]["asked_at"] = self.clock.now
        return map_shutdown_answer(200, {"data": {"status": "initiated"}}, self.clock.now)

    def fan_out(self, fn, items):
        return [fn(i) for i in items]

    def start(self, name, version):
        """What the user's update task does: the agent runs ``version`` again."""
        self.started.append((name, version, self.state(name)))
        self.agents[name].update(version=version, up=True, asked_at=None)


def params_for(tmp_path, names, fake, phase="ask", **extra):
    args = dict(state_path=str(tmp_path / "state.db"), deployment_id="d1", wave_count=1, last=True, phase=phase,
                driver="tasks", wave={"index": 1, "name": "all", "last": True,
                                      "members": [{"name": n, "agent_url": fake.url(n)} for n in names]},
                stop_timeout=30, min_healthy_time=0.3, healthy_deadline=10, poll_interval=0.1,
                allow_insecure_http=True)
    args.update(extra)
    result = ArgumentSpecValidator(_argspecs.WAVE_SPEC).validate(args)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


@pytest.fixture
def wave_env(tmp_path, monkeypatch):
    clock = Clock(1_800_000_000.0, min_step=0.01)
    names = ["a0", "a1", "a2", "a3"]

    def make(**kw):
        fake = FakeAgents(clock, names, **kw)
        monkeypatch.setattr(_wave, "client_from_params", lambda params, run=None: contextlib.nullcontext(fake))
        with open_store(tmp_path / "state.db", clock=clock.time) as store:
            store.create_or_resume("d1", "fleet", "canary", TARGET, [{"index": 1, "name": "all", "members": [
                {"name": n, "agent_url": fake.url(n)} for n in names]}], {}, owner_pid=999999)
        return fake

    def call(fake, **kw):
        params = params_for(tmp_path, names, fake, **kw)
        return _wave.run_wave(params, clock=clock.time, monotonic=clock.time, sleep=clock.sleep)

    def drive(fake, failing=()):
        """The role's loop: ask, then rounds until done; each round's hosts run the 'update tasks'."""
        rounds = []
        out = call(fake, phase="ask")
        while not out["done"]:
            rounds.append(list(out["update_hosts"]))
            for host in out["update_hosts"]:
                if host not in failing:
                    fake.start(host, out["update_map"][host]["version"])
            failed = dict((h, "boom") for h in out["update_hosts"] if h in failing)
            out = call(fake, phase="round", round=out["round"], update_failed=failed)
        return out, rounds

    return clock, names, make, call, drive


def test_every_agent_is_updated_in_the_round_after_it_stopped(wave_env):
    clock, names, make, call, drive = wave_env
    fake = make(drain={"a3": 20.0})
    out, rounds = drive(fake)
    # the three quick ones went in a round of their own, the slow one later: nobody waited for a3
    assert rounds == [["a0", "a1", "a2"], ["a3"]]
    # only stopped agents were started, each once, on the target
    assert list(fake.started) == [(n, TARGET, "down") for n in names]
    assert out["passed"] and out["done"] and not out["halt"]
    assert set(out["outcomes"]) == set(names) and all(o["result"] == "updated" for o in out["outcomes"].values())
    assert sorted(fake.asked) == names


def test_every_result_has_one_shape(wave_env, tmp_path):
    clock, names, make, call, drive = wave_env
    fake = make()
    keys = set(_wave.SHAPE)
    check = _wave.run_wave(params_for(tmp_path, names, fake), check_mode=True)
    assert keys <= set(check) and check["done"] and check["update_hosts"] == [] and check["lines"]
    first = call(fake, phase="ask")
    assert keys <= set(first) and not first["done"]
    out, dummy = drive(fake)
    assert keys <= set(out)
    # a closed deployment: a later call asks nobody and still has every key
    again = call(fake, phase="ask")
    assert keys <= set(again) and again["done"] and again["update_hosts"] == []


def test_an_auth_error_still_starts_the_agents_that_stopped(wave_env):
    clock, names, make, call, drive = wave_env
    fake = make(auth_fail={"a2"})
    out, rounds = drive(fake)
    assert rounds == [["a0", "a1", "a3"]]
    assert set(_wave.SHAPE) <= set(out)  # the error outcome keeps the one shape
    assert out["halt"] and out["error"] and "authentication failed" in out["error"]
    assert out["rollout_deployment_summary"]["status"] == "failed"
    for n in ("a0", "a1", "a3"):
        assert fake.agents[n]["up"] and fake.agents[n]["version"] == TARGET
        assert "started again on 2.0.0" in out["outcomes"][n]["detail"]
    assert out["outcomes"]["a2"]["failed"]
    assert "started again on 2.0.0" in " ".join(out["lines"])


def test_a_failed_update_task_fails_that_agent_only(wave_env):
    clock, names, make, call, drive = wave_env
    fake = make()
    out, rounds = drive(fake, failing={"a1"})
    assert out["outcomes"]["a1"]["result"] == "failed" and "boom" in out["outcomes"]["a1"]["detail"]
    assert [o["result"] for n, o in sorted(out["outcomes"].items()) if n != "a1"] == ["updated"] * 3


def test_a_rerun_takes_an_agent_found_on_the_target_as_updated(wave_env):
    clock, names, make, call, drive = wave_env
    fake = make()
    first = call(fake, phase="ask")
    # the run is killed after the update tasks started the agents, before the round was recorded
    for host in first["update_hosts"]:
        fake.start(host, TARGET)
    asked = list(fake.asked)
    started = list(fake.started)
    before = clock.now
    out, rounds = drive(fake)
    assert rounds == [] and fake.asked == asked and fake.started == started
    assert out["passed"] and all(o["result"] == "updated" for o in out["outcomes"].values())
    # no stop wait: the gate alone (min_healthy_time 0.3 s)
    assert clock.now - before < 5


def test_a_silent_decliner_is_never_started(wave_env):
    clock, names, make, call, drive = wave_env
    fake = make(decline={"a2"})
    out, rounds = drive(fake)
    assert "a2" not in [n for n, v, st in fake.started]
    assert out["outcomes"]["a2"]["result"] == "declined"


def test_409_shutdown_already_requested_is_an_accept_in_progress():
    already = map_shutdown_answer(409, {"detail": "Shutdown already requested: by the operator"}, 0.0)
    assert already["decision"] == "pending" and "already requested" in already["reason"]
    busy = map_shutdown_answer(409, {"detail": "busy", "retry_after_ms": 1000}, 0.0)
    assert busy["decision"] == "defer"


def test_round_results_read_the_hosts_of_the_round_only():
    rnd = {"id": "d1:1:2", "hosts": ["a", "b", "c"], "purpose": "update"}
    hostvars = {
        "a": {"_rollout_task_error": {"round": "d1:1:2", "msg": "image not found"}},
        "b": {"_rollout_task_error": {"round": "d1:1:1", "msg": "an older round"},
              "_rollout_driver_results": {"on_update": {"driver": "docker"}}},
        "c": {},
        "d": {"_rollout_task_error": {"round": "d1:1:2", "msg": "not in this round"}},
    }
    failed, driver = round_results({"hostvars": hostvars, "ansible_play_batch": ["a", "b"]}, rnd)
    assert failed == {"a": "image not found", "c": "its host became unreachable during the update tasks"}
    assert driver == {"b": {"driver": "docker"}}
