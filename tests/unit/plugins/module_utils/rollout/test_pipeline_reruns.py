"""The per-agent pipeline's reruns and operator actions (found in review, reproduced first): an explicit accepter
that still works is never handed over (after an error, or on a rerun); a kill between the revert tasks and their
record does not gate the reverted agents as updated; an operator's fail during the gate stands."""

from __future__ import annotations

import contextlib
from ansible_collections.agentfleet.rollout.plugins.module_utils import _wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import map_shutdown_answer
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import open_store
from test_pipeline import Clock, FakeAgents, params_for, TARGET  # noqa: F401


class Accepting(FakeAgents):
    """explicit data.decision=accept agents that keep working for `work` s before they drain"""
    def __init__(self, clock, names, explicit=(), work=5.0, **kw):
        super().__init__(clock, names, **kw)
        self.explicit, self.work = set(explicit), work

    def state(self, name):
        a = self.agents[name]
        if name in self.explicit and a["up"] and a["asked_at"] is not None \
                and self.clock.now < a["asked_at"] + self.work:
            return "working"
        return super().state(name)

    def ask(self, url, body):
        name = self._name(url)
        if name in self.explicit:
            self.asked.append(name)
            self.agents[name]["asked_at"] = self.clock.now
            self.drain[name] = self.work + 1.0
            return map_shutdown_answer(200, {"data": {"decision": "accept"}}, self.clock.now)
        return super().ask(url, body)


def _env(tmp_path, monkeypatch, clock, names, fake):
    monkeypatch.setattr(_wave, "client_from_params", lambda params, run=None: contextlib.nullcontext(fake))
    with open_store(tmp_path / "state.db", clock=clock.time) as store:
        store.create_or_resume("d1", "fleet", "canary", TARGET, [{"index": 1, "name": "all", "members": [
            {"name": n, "agent_url": fake.url(n)} for n in names]}], {}, owner_pid=999999)

    def call(**kw):
        return _wave.run_wave(params_for(tmp_path, names, fake, **kw), clock=clock.time, monotonic=clock.time,
                              sleep=clock.sleep)
    return call


def test_explicit_accepter_handed_over_while_working_after_auth_error(tmp_path, monkeypatch):
    clock, names = Clock(), ["a0", "a1", "a2", "a3"]
    fake = Accepting(clock, names, explicit={"a0"}, auth_fail={"a2"})
    call = _env(tmp_path, monkeypatch, clock, names, fake)
    out = call(phase="ask")
    print(out["update_hosts"], fake.state("a0"))
    assert not ("a0" in out["update_hosts"] and fake.state("a0") == "working"), \
        "a0 (explicit accept, still working) handed to the update tasks"


def test_rerun_hands_over_a_working_explicit_accepter(tmp_path, monkeypatch):
    clock, names = Clock(), ["a0", "a1", "a2", "a3"]
    fake = Accepting(clock, names, explicit={"a0"}, work=30.0)
    call = _env(tmp_path, monkeypatch, clock, names, fake)
    first = call(phase="ask")
    assert "a0" not in first["update_hosts"]
    for h in first["update_hosts"]:
        fake.start(h, TARGET)
    # kill -9 here (round never recorded); the rerun asks again
    out = call(phase="ask")
    print(out["update_hosts"], fake.state("a0"))
    assert not ("a0" in out["update_hosts"] and fake.state("a0") == "working"), \
        "rerun handed a0 (explicit accept, still working) to the update tasks"


class FailDuringGate(FakeAgents):
    hook = None

    def probe(self, url, *a, **kw):
        if self.hook:
            hook, self.hook = self.hook, None
            hook()
        return super().probe(url, *a, **kw)


def test_operator_fail_during_the_gate_of_the_last_wave_is_overwritten(tmp_path, monkeypatch):
    clock, names = Clock(), ["a0", "a1", "a2", "a3"]
    fake = FailDuringGate(clock, names)
    call = _env(tmp_path, monkeypatch, clock, names, fake)
    out = call(phase="ask")
    for h in out["update_hosts"]:
        fake.start(h, TARGET)

    def operator_fail():
        with open_store(tmp_path / "state.db", clock=clock.time) as store:
            assert store.set_status("d1", "failed", "failed by ops: stop", data={"actor": "ops", "reason": "stop"},
                                    only_from=("running", "paused"))
    fake.hook = operator_fail          # the operator's agentfleet.rollout.fail lands while the gate probes
    out = call(phase="round", round=out["round"])
    assert out["done"]
    with open_store(tmp_path / "state.db", clock=clock.time) as store:
        status = store.get_deployment("d1")["status"]
    print(out["rollout_deployment_summary"].get("status"), status, out["halt"])
    assert status == "failed", "operator's fail overwritten: %s" % status


class BadTarget(FakeAgents):
    def health(self, name):
        resp = super().health(name)
        if resp.status == 200 and self.agents[name]["version"] == TARGET:
            resp.json["data"]["status"] = "degraded"
        return resp


def test_rerun_after_kill_between_revert_tasks_and_record(tmp_path, monkeypatch):
    clock, names = Clock(), ["a0", "a1", "a2", "a3"]
    fake = BadTarget(clock, names)
    call = _env(tmp_path, monkeypatch, clock, names, fake)
    out = call(phase="ask", auto_revert=True, require_target_version=False)
    while out["update_map"] and not out["needs_revert"]:
        for h in out["update_hosts"]:
            fake.start(h, out["update_map"][h]["version"])
        out = call(phase="round", round=out["round"], auto_revert=True, require_target_version=False)
    assert out["needs_revert"] and not out["done"]
    for h in out["update_hosts"]:          # the revert tasks ran: every agent is back on 1.0.0
        fake.start(h, out["update_map"][h]["version"])
    # kill -9 before the round that records the revert; the rerun:
    out = call(phase="ask", auto_revert=True, require_target_version=False)
    while not out["done"]:
        for h in out["update_hosts"]:
            fake.start(h, out["update_map"][h]["version"])
        out = call(phase="round", round=out["round"], auto_revert=True, require_target_version=False)
    print(out["passed"], {n: (o["result"], o["version_after"]) for n, o in out["outcomes"].items()},
          {n: a["version"] for n, a in fake.agents.items()})
    assert not (out["passed"] and all(o["result"] == "updated" for o in out["outcomes"].values())), \
        "wave passed, agents recorded 'updated' while they run 1.0.0"
