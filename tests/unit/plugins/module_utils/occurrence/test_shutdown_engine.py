"""Unit tests of the multi-occurrence shutdown engine: pure functions and the engines with a fake client."""

from __future__ import annotations

import time

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence import decision as dc
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence import deployment as dp
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence import liveness as lv
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence import message as msg
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence import plan as pl
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence import wakeup as wk
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence import waves as wv
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import ShutdownError
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DRAINING
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import NO_ANSWER
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import STOPPED
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.errors import TransportError
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import WORKING
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import open_store
from helpers import Clock


class FakeResp:
    def __init__(self, status, payload):
        self.status, self.json = status, payload


def occs(n, agent="datum", first="default"):
    ids = [first] + ["occ-%d" % i for i in range(1, n)]
    return [{"name": "%s-%s" % (agent, i), "agent_url": "http://127.0.0.1:1/%s" % i, "agent_id": agent,
             "occurrence_id": i} for i in ids]


# ------------------------------------------------------------------ pure functions

@pytest.mark.parametrize("answer,state", [
    (TransportError("connection refused", sent=False, kind="refused"), STOPPED),
    (TransportError("connection lost: RemoteDisconnected", sent=True, kind="reset"), STOPPED),
    (TransportError("read timeout after 10.0s", sent=True, kind="timeout"), NO_ANSWER),
    (TransportError("connect timeout after 3.0s", sent=False, kind="timeout"), NO_ANSWER),
    (FakeResp(502, None), STOPPED),
    (FakeResp(200, {"data": {"status": "healthy", "cognitive_state": "shutdown"}}), DRAINING),
    (FakeResp(200, {"data": {"status": "healthy", "cognitive_state": "work"}}), WORKING),
    (FakeResp(200, {"data": {"status": "degraded", "cognitive_state": "dream"}}), WORKING),
    (FakeResp(500, None), WORKING),
])
def test_probe_liveness_uses_the_one_classifier(answer, state):
    class Client:
        def request(self, method, url, body=None):
            if isinstance(answer, Exception):
                raise answer
            return answer

    assert lv.probe_liveness(Client(), "http://x")[0] == state


# 9 -> early adopters max(1, int(9 * 0.3)) = 2: the FSD's _get_canary_groups
@pytest.mark.parametrize("n,sizes", [(1, [1]), (2, [1, 1]), (3, [1, 1, 1]), (9, [1, 2, 6]), (10, [1, 3, 6]), (20, [1, 6, 13])])
def test_assign_groups_sizes(n, sizes):
    waves = pl.assign_groups(occs(n))
    assert [w["size"] for w in waves] == sizes
    assert waves[0]["name"] == "explorer" and waves[0]["members"][0]["occurrence_id"] == "default"


def test_assign_groups_sorted_without_default():
    waves = pl.assign_groups(occs(4, first="occ-0"))
    assert waves[0]["members"][0]["occurrence_id"] == "occ-0"


@pytest.mark.parametrize("salt", ["", "a", "b", "c", "d"])
def test_assign_groups_stable_default_is_the_only_explorer(salt):
    waves = pl.assign_groups(occs(12), method="stable", salt=salt)
    assert waves[0]["name"] == "explorer" and [m["occurrence_id"] for m in waves[0]["members"]] == ["default"]
    assert sum(w["size"] for w in waves) == 12
    assert "canary_group" not in waves[0]["members"][0]


@pytest.mark.parametrize("salt", ["x", "y", "z"])
def test_assign_groups_stable_without_default_one_explorer(salt):
    waves = pl.assign_groups(occs(12, first="occ-0"), method="stable", salt=salt)
    assert waves[0]["name"] == "explorer" and waves[0]["size"] == 1
    assert sum(w["size"] for w in waves) == 12


def test_assign_groups_two_pinned_explorers_is_an_error():
    members = occs(4)
    members[1]["canary_group"] = members[2]["canary_group"] = "explorer"
    with pytest.raises(ShutdownError):
        pl.assign_groups(members)


@pytest.mark.parametrize("serving,fraction,limit", [(9, 0.0, 9), (9, 0.8, 1), (8, 0.5, 4), (10, 0.8, 2), (4, 0.8, 1), (1, 0.9, 1)])
def test_batch_limit(serving, fraction, limit):
    assert pl.batch_limit(serving, fraction) == limit


def test_split_batches_floor_08_nine():
    waves, left = pl.split_batches(pl.assign_groups(occs(9)), 9, 0.8)
    assert left == 0
    # the floor applies until the final wave: the general wave is not split
    assert [[len(b["members"]) for b in w["batches"]] for w in waves] == [[1], [1, 1], [6]]
    low, low_final = pl.lowest_fractions([w["batches"] for w in waves])
    assert low == pytest.approx(6 / 9, abs=1e-3)  # of the 9 serving at the start
    assert low_final == 0.0
    low_batch = pl.lowest_fractions([w["batches"] for w in waves], "serving_fraction")[0]
    assert low_batch == pytest.approx(6 / 7, abs=1e-3) and low_batch >= 0.8  # of those serving when each batch started
    assert all(b["floor_kept"] for w in waves[:-1] for b in w["batches"])
    assert waves[-1]["batches"][0]["floor_kept"] is None
    assert pl.floor_violation(waves, 0.8) is None


def test_split_batches_no_floor_waves_at_once():
    waves = pl.split_batches(pl.assign_groups(occs(9)), 9, 0.0)[0]
    assert [[len(b["members"]) for b in w["batches"]] for w in waves] == [[1], [2], [6]]


def test_split_batches_half():
    waves = pl.split_batches(pl.assign_groups(occs(9)), 9, 0.5)[0]
    assert [[len(b["members"]) for b in w["batches"]] for w in waves] == [[1], [2], [6]]


def test_split_batches_twenty_splits_early_adopters_not_general():
    waves = pl.split_batches(pl.assign_groups(occs(20)), 20, 0.8)[0]
    assert [[len(b["members"]) for b in w["batches"]] for w in waves] == [[1], [3, 3], [13]]
    assert pl.lowest_fractions([w["batches"] for w in waves])[0] == pytest.approx(13 / 20, abs=1e-3)


def test_plan_floor_that_cannot_be_kept_fails_before_asking(tmp_path):
    members = occs(9)
    fleet = FakeFleet(members)
    with pytest.raises(ShutdownError) as err:
        plan_for(members, fleet, min_serving_fraction=0.9)
    assert str(err.value).startswith("cannot keep 90% serving: taking out even one of 9 leaves 88.9%")
    assert "lower shutdown_min_serving_fraction or add occurrences" in str(err.value)
    assert fleet.calls == []
    plan = plan_for(members, fleet, min_serving_fraction=0.9, allow_below_floor=True)
    assert plan["below_floor"].startswith("cannot keep 90% serving")
    assert any(line.startswith("CAPACITY FLOOR NOT KEPT") for line in plan["plan"])
    # 5 occurrences at 0.8: the explorer keeps 4/5, but one early adopter of the 4 left leaves 75%
    with pytest.raises(ShutdownError, match="taking out even one of 4 leaves 75.0%"):
        plan_for(occs(5), FakeFleet(occs(5)), min_serving_fraction=0.8)


def test_plan_message_states_the_plan():
    waves = pl.split_batches(pl.assign_groups(occs(9)), 9, 0.0)[0]
    text = msg.plan_message("datum", waves, "host maintenance", delays=[30, 60], wave_timeout=120)
    assert text.startswith("SYSTEM SHUTDOWN REQUEST")
    assert "on behalf of ALL 9 runtime occurrences" in text
    assert "Your decision applies to all occurrences." in text
    assert "Wave 1 (Explorer - 1 occurrence: default)" in text
    assert "Wave 2 (Early Adopters - 2 occurrences: occ-1, occ-2)" in text
    assert "Begin shutdown 30 seconds after the explorer wave's termination is verified" in text
    assert "Begin shutdown 60 seconds after the early adopters wave's termination is verified" in text
    assert "within 120 seconds" in text
    assert "If you reject, NO occurrences will shut down." in text
    assert "Reason for shutdown request: host maintenance" in text
    assert "[ACCEPT]" in text and "[REJECT]" in text
    # the explorer is told how long it has to stop, and that going on working is a refusal
    assert "Shutdown immediately (that is you): finish your current work and stop within 600 seconds" in text
    assert "If you keep working instead of stopping within 600 seconds, that counts as a refusal" in text
    assert "stop within 45 seconds" in msg.plan_message("datum", waves, "r", stop_timeout=45)


def test_plan_message_mentions_batches():
    waves = pl.split_batches(pl.assign_groups(occs(9)), 9, 0.8)[0]
    assert "In 2 batches of at most 1, keeping at least 80% of the serving occurrences up" in msg.plan_message("d", waves, "r", min_fraction=0.8)


@pytest.mark.parametrize("decision,reusable", [
    ({"decision": "accept"}, True), ({"decision": "reject"}, True),
    ({"decision": "defer", "defer_until": 200.0}, True), ({"decision": "defer", "defer_until": 50.0}, False),
    ({"decision": "defer", "defer_until": None}, False), (None, False),
])
def test_decision_is_reusable(decision, reusable):
    assert dc.decision_is_reusable(decision, now=100.0) is reusable


def test_select_agent():
    members = occs(2) + occs(2, agent="sage")
    with pytest.raises(ShutdownError, match="rollout_agent_id"):
        pl.select_agent(members)
    assert pl.select_agent(members, "sage") == "sage"
    with pytest.raises(ShutdownError):
        pl.select_agent(members, "nobody")


def test_apply_discovery_health_identity():
    members = [{"name": "h1", "agent_url": "http://x"}, {"name": "h2", "agent_url": "http://y"}]
    probes = {"h1": (WORKING, None, {"agent_id": "datum", "occurrence_id": "default", "version": "1.0"}),
              "h2": (STOPPED, "refused", {})}
    out = pl.apply_discovery(members, probes, "health")
    assert (out[0]["agent_id"], out[0]["occurrence_id"], out[0]["version"]) == ("datum", "default", "1.0")
    assert out[1]["state"] == STOPPED and out[1]["occurrence_id"] == "h2"


@pytest.mark.parametrize("delays,count,out", [([30, 60], 3, [0, 30, 60]), ([5], 3, [0, 5, 5]), ([], 2, [0, 0]), ([1, 2], 1, [0])])
def test_wave_delays(delays, count, out):
    assert pl.wave_delays(delays, count) == out


# ------------------------------------------------------------------ engines with a fake agent fleet

class FakeFleet:
    """Occurrences of one agent: decide once, comply with decision_ref, drain and stop when told.

    ``deliberation`` is the explorer's answer to ``scope: all_occurrences``
    (``silent``: 200 without a decision, like a real CIRIS agent). A told
    occurrence drains (``cognitive_state: shutdown``, answering) for
    ``drain_seconds`` of ``clock`` and then refuses connections; ``stuck``
    ones go on working; ``hung`` ones (and ``hang_when_told`` ones once told) time out on every health probe.
    """

    def __init__(self, members, deliberation="accept", stuck=(), own_reject=(), drain_seconds=0.0, hung=(),
                 hang_when_told=(), clock=None, decision_id="dec-1"):
        self.url = {m["agent_url"]: m["name"] for m in members}
        self.state = {m["name"]: "work" for m in members}
        self.deliberation = deliberation
        self.stuck = set(stuck)
        self.own_reject = set(own_reject)
        self.hung = set(hung)
        self.hang_when_told = set(hang_when_told)
        self.drain_seconds = drain_seconds
        self.stop_at = {}
        self.clock = clock or Clock(1000.0)
        self.decision_id = decision_id
        self.calls = []
        self.probes = []

    def current(self, name):
        if name in self.stop_at and self.clock() >= self.stop_at[name]:
            self.state[name] = "gone"
            del self.stop_at[name]
        return self.state[name]

    def request(self, method, url, body=None):
        name = self.url[url.rsplit("/v1/", 1)[0]]
        state = self.current(name)
        self.probes.append((self.clock(), name, state))
        if name in self.hung:
            raise TransportError("read timeout after 10.0s", sent=True, kind="timeout")
        if state == "gone":
            raise TransportError("connection refused", sent=False, kind="refused")
        return FakeResp(200, {"data": {"status": "healthy", "cognitive_state": state, "version": "1.0.0"}})

    def probe(self, url, expected_states=("work",), target_version=None):
        try:
            resp = self.request("GET", url + "/v1/system/health")
        except TransportError as exc:
            return {"healthy": False, "cause": str(exc), "info": {}, "reachable": False}
        cog = resp.json["data"]["cognitive_state"]
        return {"healthy": cog in expected_states, "cause": None if cog in expected_states else "state %s" % cog,
                "info": resp.json["data"], "reachable": True}

    def stop(self, name):
        if name in self.hang_when_told:
            self.hung.add(name)
        if name in self.stuck or self.current(name) != "work":
            return
        self.state[name] = "shutdown"
        self.stop_at[name] = self.clock() + self.drain_seconds

    def ask(self, url, body):
        name = self.url[url]
        self.calls.append((name, dict(body)))
        if name in self.own_reject:
            return {"decision": "reject", "reason": "my own call", "decision_id": "own-1", "defer_until": None}
        decision = self.deliberation if body.get("scope") == "all_occurrences" else "accept"
        if decision in ("accept", "silent"):
            self.stop(name)
        if decision == "silent":
            return {"decision": "pending", "reason": None, "decision_id": None, "defer_until": None}
        return {"decision": decision, "reason": "because", "decision_id": body.get("decision_ref") or self.decision_id,
                "defer_until": 10_000_000_000.0 if decision == "defer" else None}

    def fan_out(self, fn, items):
        return [fn(i) for i in items]

    def close(self):
        pass


def plan_for(members, fleet, **params):
    p = {"members": members, "group": "agents", "reason": "maintenance", "wave_delays": [0, 0], "wave_timeout": 5,
         "min_serving_fraction": 0.0, "probe": True}
    p.update(params)
    return pl.occurrence_plan(p, client=fleet)


def run_all(tmp_path, members, fleet, dep="d1", stop_timeout=5, **plan_params):
    plan = plan_for(members, fleet, **plan_params)
    clock = fleet.clock
    params = {"plan": plan, "deployment_id": dep, "state_path": str(tmp_path / "s.db"),
              "report_path": str(tmp_path / (dep + ".json")), "max_age": 3600, "poll_interval": 0.5,
              "stop_timeout": stop_timeout}
    store = open_store(params["state_path"])
    decided = dc.shutdown_decide(params, client=fleet, store=store, clock=clock)
    waves = []
    for w in decided["waves"] if decided["proceed"] else []:
        res = wv.shutdown_wave(dict(params, wave=w["index"]), client=fleet, store=store, clock=clock,
                               sleep=clock.sleep, monotonic=clock)
        waves.append(res)
    return decided, waves, store


def test_engine_accept_asks_exactly_one(tmp_path):
    members = occs(9)
    fleet = FakeFleet(members)
    decided, waves, store = run_all(tmp_path, members, fleet)
    assert decided["asked"] == ["datum-default"] and decided["decision"] == "accept"
    scopes = [b.get("scope") for dummy, b in fleet.calls]
    assert scopes.count("all_occurrences") == 1 and len(fleet.calls) == 9
    assert all(b["decision_ref"] == "dec-1" for dummy, b in fleet.calls[1:])
    assert [w["status"] for w in waves] == ["passed"] * 3 and waves[-1]["finished"]
    assert set(fleet.state.values()) == {"gone"}
    assert store.shared_decision("datum", "shutdown")["decided_by"] == "datum-default"


def test_engine_reuse_no_one_asked(tmp_path):
    members = occs(5)
    fleet = FakeFleet(members)
    run_all(tmp_path, members, fleet)
    fleet2 = FakeFleet(members)  # the occurrences came back
    decided, waves = run_all(tmp_path, members, fleet2, dep="d2")[:2]
    assert decided["reused"] and decided["asked"] == []
    assert not any(b.get("scope") == "all_occurrences" for dummy, b in fleet2.calls)
    assert all(w["status"] == "passed" for w in waves)


def test_engine_reject(tmp_path):
    members = occs(5)
    fleet = FakeFleet(members, deliberation="reject")
    decided, waves, store = run_all(tmp_path, members, fleet)
    assert decided["decision"] == "reject" and not decided["proceed"] and waves == []
    assert len(fleet.calls) == 1
    assert fleet.clock() == 1000.0 and fleet.probes[-1][0] == 1000.0  # an explicit reject needs no observation
    assert store.get_deployment("d1")["status"] == "completed"


def test_engine_defer_then_reused_until_due(tmp_path):
    members = occs(3)
    fleet = FakeFleet(members, deliberation="defer")
    decided = run_all(tmp_path, members, fleet)[0]
    assert decided["decision"] == "defer" and "ask again after" in decided["outcome"]
    decided2 = run_all(tmp_path, members, fleet, dep="d2")[0]
    assert decided2["reused"] and len(fleet.calls) == 1


def test_engine_explorer_stuck_stops_everything(tmp_path):
    members = occs(9)
    fleet = FakeFleet(members, stuck={"datum-default"})
    decided, waves, store = run_all(tmp_path, members, fleet)
    assert waves[0]["aborted"] and waves[0].get("should_fail")
    assert all(w["skipped"] for w in waves[1:])
    assert len(fleet.calls) == 1
    assert {r["result"] for r in store.agents("d1") if r["host"] != "datum-default"} == {"not_touched"}


def test_engine_early_failure_stops_before_general_and_next_batches(tmp_path):
    members = occs(9)
    fleet = FakeFleet(members, stuck={"datum-occ-1"})
    decided, waves, store = run_all(tmp_path, members, fleet, min_serving_fraction=0.8)
    assert waves[1]["aborted"]
    told = [n for n, dummy in fleet.calls]
    assert told == ["datum-default", "datum-occ-1"]  # batch of 1; the next batches were not sent


def test_engine_general_best_effort(tmp_path):
    members = occs(9)
    fleet = FakeFleet(members, stuck={"datum-occ-5"})
    decided, waves, store = run_all(tmp_path, members, fleet, min_serving_fraction=0.5)
    assert waves[2]["status"] == "partial" and not waves[2]["aborted"]
    assert waves[2]["failures"].keys() == {"datum-occ-5"}
    assert waves[2]["should_fail"]
    assert sum(1 for s in fleet.state.values() if s == "gone") == 8
    report = dp.build_report(store, "d1")
    assert dp.report_totals(store, store.get_deployment("d1")) == report["totals"]  # the history's one query
    assert report["capacity"]["lowest_serving_fraction"] == pytest.approx(6 / 9, abs=1e-3)
    assert report["capacity"]["lowest_batch_serving_fraction"] >= 0.5 and report["capacity"]["floor_kept_before_final_wave"]
    assert report["capacity"]["serving_at_start"] == 9


def test_engine_follower_own_reject_stops(tmp_path):
    members = occs(9)
    fleet = FakeFleet(members, own_reject={"datum-occ-2"})
    decided, waves, store = run_all(tmp_path, members, fleet)
    assert waves[1]["aborted"] and "my own call" in waves[1]["outcome"]
    rows = {r["host"]: r for r in store.agents("d1")}
    assert rows["datum-occ-2"]["result"] == "rejected" and rows["datum-occ-2"]["extra"]["own_decision"]
    assert all(rows[n]["result"] == "not_touched" for n in rows if rows[n]["cohort"] == "general")


def test_engine_resume_after_crash_uses_same_deployment(tmp_path):
    members = occs(5)
    fleet = FakeFleet(members)
    plan = plan_for(members, fleet)
    params = {"plan": plan, "deployment_id": "first", "state_path": str(tmp_path / "s.db"),
              "report_path": str(tmp_path / "r.json"), "max_age": 3600}
    store = open_store(params["state_path"])
    dc.shutdown_decide(params, client=fleet, store=store)
    # the controller "dies": its lease owner is a pid that no longer exists
    store.db.execute("UPDATE deployments SET owner_pid=999999999")
    again = dc.shutdown_decide(dict(params, deployment_id="second"), client=fleet, store=store)
    assert again["deployment_id"] == "first" and again["asked"] == [] and again["proceed"]


@pytest.mark.parametrize("second_id", ["second", "first"])
def test_engine_resume_with_stale_decision_asks_anew(tmp_path, second_id):
    members = occs(5)
    fleet = FakeFleet(members)
    params = {"plan": plan_for(members, fleet), "deployment_id": "first", "state_path": str(tmp_path / "s.db"),
              "report_path": str(tmp_path / "r.json"), "max_age": 3600}
    store = open_store(params["state_path"])
    dc.shutdown_decide(params, client=fleet, store=store)
    # the controller dies and the rerun comes two hours later: the accept is too old to go on with
    store.db.execute("UPDATE deployments SET owner_pid=999999999")
    store.db.execute("UPDATE shared_decisions SET decided_at = decided_at - 7200")
    again = dc.shutdown_decide(dict(params, plan=plan_for(members, fleet), deployment_id=second_id), client=fleet, store=store)
    assert again["deployment_id"] != "first" and again["deployment_id"].startswith(second_id)
    assert again["asked"] == ["datum-occ-1"] and not again["reused"] and again["proceed"]  # the old explorer is down
    assert [b.get("scope") for dummy, b in fleet.calls].count("all_occurrences") == 2
    old = store.get_deployment("first")
    assert old["status"] == "aborted" and "older than max_age 3600s" in old["message"]
    assert again["replaced_deployment"]["deployment_id"] == "first"
    assert dp.build_report(store, again["deployment_id"])["replaced_deployment"]["deployment_id"] == "first"
    assert {r["result"] for r in store.agents("first") if r["host"] != "datum-default"} == {"not_touched"}


def test_engine_fresh_decision_asks_again(tmp_path):
    members = occs(3)
    fleet = FakeFleet(members, deliberation="reject")
    params = {"plan": plan_for(members, fleet), "deployment_id": "d1", "state_path": str(tmp_path / "s.db"),
              "report_path": str(tmp_path / "r.json"), "max_age": 3600}
    store = open_store(params["state_path"])
    dc.shutdown_decide(params, client=fleet, store=store)
    reused = dc.shutdown_decide(dict(params, deployment_id="d2"), client=fleet, store=store)
    assert reused["reused"] and len(fleet.calls) == 1
    check = dc.shutdown_decide(dict(params, deployment_id="d3", fresh_decision=True), check_mode=True, client=fleet, store=store)
    assert check["would_ask"] == "datum-default"
    fresh = dc.shutdown_decide(dict(params, deployment_id="d3", fresh_decision=True), client=fleet, store=store)
    assert not fresh["reused"] and fresh["asked"] == ["datum-default"] and len(fleet.calls) == 2


def test_check_mode_touches_nothing(tmp_path):
    members = occs(4)
    fleet = FakeFleet(members)
    plan = plan_for(members, fleet)
    res = dc.shutdown_decide({"plan": plan, "deployment_id": "x", "state_path": str(tmp_path / "none.db")},
                             check_mode=True, client=fleet)
    assert res["would_ask"] == "datum-default" and not res["proceed"]
    assert not (tmp_path / "none.db").exists() and fleet.calls == []


def test_plan_leaves_out_down_occurrences(tmp_path):
    members = occs(4)
    fleet = FakeFleet(members)
    fleet.state["datum-default"] = "gone"
    fleet.state["datum-occ-3"] = "shutdown"
    plan = plan_for(members, fleet)
    assert plan["explorer"] == "datum-occ-1"
    assert {o["name"]: o["state"] for o in plan["left_out"]} == {"datum-default": "stopped", "datum-occ-3": "draining"}
    assert any("datum-default is stopped" in line for line in plan["plan"])


def test_wakeup_engine_unhealthy_explorer_leaves_others_down(tmp_path):
    members = occs(4)
    fleet = FakeFleet(members)
    for n in fleet.state:
        fleet.state[n] = "gone"
    plan = pl.occurrence_plan({"members": members, "group": "agents", "purpose": "wakeup", "wave_delays": [0, 0],
                               "wave_timeout": 2, "probe": True}, client=fleet)
    params = {"plan": plan, "deployment_id": "w1", "state_path": str(tmp_path / "s.db"),
              "report_path": str(tmp_path / "w.json"), "wave": 1, "target_version": None}
    store = open_store(params["state_path"])
    clock = Clock(1000.0)
    prep = wk.wakeup_prepare(dict(params, target_version="1.0.0"), client=fleet, store=store, clock=clock, sleep=clock.sleep)
    assert [m["name"] for m in prep["to_start"]] == ["datum-default"]
    fleet.state["datum-default"] = "wakeup"  # started, never reaches work
    gate = wk.wakeup_gate(params, client=fleet, store=store, clock=clock, sleep=clock.sleep, monotonic=clock)
    assert gate["aborted"] and gate["should_fail"]
    rows = {r["host"]: r["result"] for r in store.agents("w1")}
    assert rows == {"datum-default": "unhealthy", "datum-occ-1": "left_down", "datum-occ-2": "left_down", "datum-occ-3": "left_down"}
    nxt = wk.wakeup_prepare(dict(params, wave=2), client=fleet, store=store, clock=clock, sleep=clock.sleep)
    assert nxt["skipped"] and nxt["to_start"] == []


# ------------------------------------------------------------------ observed consent (PROTOCOL.md)

def test_stop_timeline_draining_then_stopped():
    tl = lv.StopTimeline()
    tl.observe("a", WORKING, None, {"cognitive_state": "work"}, 10.0)
    tl.observe("a", DRAINING, "cognitive_state shutdown (draining)", {"cognitive_state": "shutdown"}, 11.0)
    tl.observe("a", DRAINING, "cognitive_state shutdown (draining)", {"cognitive_state": "shutdown"}, 12.0)
    assert tl.drained("a") and not tl.stopped("a") and tl.get("a")["drained_at"] == 11.0
    assert tl.describe("a") == "still draining (cognitive_state shutdown)"
    tl.observe("a", NO_ANSWER, "read timeout after 10.0s", {}, 13.0)
    assert not tl.stopped("a")  # a timeout is no evidence of a stop
    tl.observe("a", STOPPED, "connection refused", {}, 14.0)
    tl.observe("a", STOPPED, "connection refused", {}, 15.0)
    assert tl.get("a")["exited_at"] == 14.0 and tl.get("a")["drained_at"] == 11.0 and tl.get("a")["probes"] == 6


def test_fallback_decision_id_is_stable_per_deployment():
    from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import fallback_decision_id

    one = fallback_decision_id("datum", "d1")
    assert one == fallback_decision_id("datum", "d1") and one.startswith("dec-")
    assert one != fallback_decision_id("datum", "d2") and one != fallback_decision_id("sage", "d1")


def test_silent_explorer_that_stops_accepts_one_deliberation_with_made_decision_id(tmp_path):
    members = occs(9)
    fleet = FakeFleet(members, deliberation="silent", drain_seconds=3.0)
    decided, waves, store = run_all(tmp_path, members, fleet, stop_timeout=30)
    assert decided["decision"] == "pending" and decided["proceed"] and decided["asked"] == ["datum-default"]
    ref = decided["decided"]["decision_id"]
    from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import fallback_decision_id
    assert ref == fallback_decision_id("datum", "d1")
    assert [b.get("scope") for dummy, b in fleet.calls].count("all_occurrences") == 1
    followers = [b for dummy, b in fleet.calls[1:]]
    assert len(followers) == 8 and all(b["decision_ref"] == ref for b in followers)
    assert [w["status"] for w in waves] == ["passed"] * 3
    shared = store.shared_decision("datum", "shutdown")
    assert shared["decision"] == "accept" and shared["decision_id"] == ref and "observed" in shared["reason"]
    report = dp.build_report(store, "d1")
    assert report["decision"]["decision_id_origin"] == "collection"
    explorer = {o["host"]: o for o in report["agents"]}["datum-default"]
    assert explorer["result"] == "stopped"
    assert explorer["asked_at"] <= explorer["drained_at"] < explorer["exited_at"]
    # the explorer was first seen draining right after it was asked, and stopped 3 s later
    assert shared["decided_at"] == pytest.approx(1000.0, abs=1.0)


def test_explicit_accept_is_still_observed_before_followers_are_told(tmp_path):
    members = occs(5)
    fleet = FakeFleet(members, deliberation="accept", drain_seconds=4.0)
    decided, waves, store = run_all(tmp_path, members, fleet)
    assert decided["decision"] == "accept" and decided["decided"]["decision_id_origin"] == "agent"
    explorer_gone = min(t for t, n, state in fleet.probes if n == "datum-default" and state == "gone")
    first_follower = next(t for t, n, state in fleet.probes if n != "datum-default" and t > 1000.0)
    assert explorer_gone >= 1004.0 and first_follower >= explorer_gone
    assert all(w["status"] == "passed" for w in waves)


def test_silent_explorer_still_working_declines_nobody_shuts_down(tmp_path):
    members = occs(9)
    fleet = FakeFleet(members, deliberation="silent", stuck={"datum-default"})
    decided, waves, store = run_all(tmp_path, members, fleet, stop_timeout=600)
    assert decided["decision"] == "pending"
    assert waves[0]["status"] == "declined" and waves[0]["finished"] and not waves[0]["aborted"]
    assert "should_fail" not in waves[0]
    assert "did not stop within 600 s: declined or still busy" in waves[0]["outcome"]
    assert all(w["skipped"] for w in waves[1:])
    assert len(fleet.calls) == 1 and set(fleet.state.values()) == {"work"}
    assert fleet.clock() >= 1600.0  # it was observed for the whole stop timeout
    assert store.get_deployment("d1")["status"] == "completed"
    shared = store.shared_decision("datum", "shutdown")
    assert shared["decision"] == "declined" and "still working (cognitive_state work)" in shared["reason"]
    report = dp.build_report(store, "d1")
    assert dp.report_totals(store, store.get_deployment("d1")) == report["totals"]
    assert {o["result"] for o in report["agents"]} == {"kept_running"}
    assert report["decision"]["decision"] == "declined"
    # a declined decision is not reused: the next run asks the explorer again
    again = run_all(tmp_path, members, fleet, dep="d2", stop_timeout=600)[0]
    assert again["asked"] == ["datum-default"] and not again["reused"]


def test_silent_explorer_draining_past_the_stop_timeout_is_a_failure_not_an_accept(tmp_path):
    members = occs(5)
    fleet = FakeFleet(members, deliberation="silent", drain_seconds=100.0)
    decided, waves, store = run_all(tmp_path, members, fleet, stop_timeout=10)
    assert waves[0]["aborted"] and waves[0]["should_fail"]
    assert "still draining (cognitive_state shutdown)" in waves[0]["failures"]["datum-default"]
    assert len(fleet.calls) == 1  # no follower told
    assert store.shared_decision("datum", "shutdown")["decision"] == "pending"
    explorer = {o["host"]: o for o in dp.build_report(store, "d1")["agents"]}["datum-default"]
    assert explorer["drained_at"] and explorer["exited_at"] is None


def test_no_answer_is_not_counted_as_stopped(tmp_path):
    members = occs(9)
    fleet = FakeFleet(members, hang_when_told={"datum-occ-5"})
    decided, waves, store = run_all(tmp_path, members, fleet)
    assert waves[2]["status"] == "partial"
    assert "no answer (read timeout after 10.0s)" in waves[2]["failures"]["datum-occ-5"]
    rows = {r["host"]: r for r in store.agents("d1")}
    assert rows["datum-occ-5"]["result"] == "failed"


def test_silent_hung_explorer_is_neither_an_accept_nor_a_decline(tmp_path):
    members = occs(3)
    fleet = FakeFleet(members, deliberation="silent")
    plan = plan_for(members, fleet)
    fleet.hung.add("datum-default")  # planned while working; after the request its health times out
    clock = fleet.clock
    params = {"plan": plan, "deployment_id": "d1", "state_path": str(tmp_path / "s.db"),
              "report_path": str(tmp_path / "r.json"), "poll_interval": 1.0, "stop_timeout": 20}
    store = open_store(params["state_path"])
    assert dc.shutdown_decide(params, client=fleet, store=store, clock=clock)["proceed"]
    res = wv.shutdown_wave(dict(params, wave=1), client=fleet, store=store, clock=clock, sleep=clock.sleep, monotonic=clock)
    assert res["aborted"] and "no answer" in res["failures"]["datum-default"]
    assert len(fleet.calls) == 1


def test_draining_follower_is_not_terminated(tmp_path):
    members = occs(9)
    fleet = FakeFleet(members, drain_seconds=2.0)
    decided, waves, store = run_all(tmp_path, members, fleet)
    assert all(w["status"] == "passed" for w in waves)
    report = dp.build_report(store, "d1")
    for o in report["agents"]:
        assert o["drained_at"] < o["exited_at"], o
    # drains longer than the wave timeout (5 s): a failure, never counted as terminated
    fleet2 = FakeFleet(members, drain_seconds=50.0)
    waves2, store2 = run_all(tmp_path / "slow", members, fleet2, stop_timeout=60)[1:]
    assert waves2[0]["status"] == "passed" and waves2[1]["aborted"]
    assert all("still draining" in why for why in waves2[1]["failures"].values())


def test_resumed_silent_deployment_does_not_ask_the_explorer_twice(tmp_path):
    members = occs(5)
    fleet = FakeFleet(members, deliberation="silent", drain_seconds=1.0)
    params = {"plan": plan_for(members, fleet), "deployment_id": "first", "state_path": str(tmp_path / "s.db"),
              "report_path": str(tmp_path / "r.json"), "max_age": 3600, "stop_timeout": 10, "poll_interval": 0.5}
    store = open_store(params["state_path"])
    first = dc.shutdown_decide(params, client=fleet, store=store, clock=fleet.clock)
    store.db.execute("UPDATE deployments SET owner_pid=999999999")  # the controller dies while observing
    again = dc.shutdown_decide(dict(params, deployment_id="second"), client=fleet, store=store, clock=fleet.clock)
    assert again["deployment_id"] == "first" and again["asked"] == [] and again["proceed"]
    assert again["decided"]["decision_id"] == first["decided"]["decision_id"]
    assert len(fleet.calls) == 1


def test_reused_decision_without_id_still_sends_a_decision_ref(tmp_path):
    members = occs(3)
    store = open_store(str(tmp_path / "s.db"))
    store.record_shared_decision("datum", "old", "shutdown", "accept", None, "datum-default", "ok", decided_at=time.time())
    fleet = FakeFleet(members)
    decided, waves = run_all(tmp_path, members, fleet)[:2]
    assert decided["reused"]
    from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import fallback_decision_id
    assert {b["decision_ref"] for dummy, b in fleet.calls} == {fallback_decision_id("datum", "old")}


def test_wakeup_waits_for_draining_occurrences_before_starting(tmp_path):
    members = occs(3)
    fleet = FakeFleet(members, drain_seconds=4.0)
    fleet.state["datum-occ-1"] = fleet.state["datum-occ-2"] = "gone"
    fleet.stop("datum-default")  # still draining when the wakeup comes
    plan = pl.occurrence_plan({"members": members, "group": "agents", "purpose": "wakeup", "wave_delays": [0, 0],
                               "wave_timeout": 10, "probe": True}, client=fleet)
    params = {"plan": plan, "deployment_id": "w1", "state_path": str(tmp_path / "s.db"),
              "report_path": str(tmp_path / "w.json"), "wave": 1, "target_version": "1.0.0", "poll_interval": 0.5}
    store = open_store(params["state_path"])
    clock = fleet.clock
    prep = wk.wakeup_prepare(params, client=fleet, store=store, clock=clock, sleep=clock.sleep, monotonic=clock)
    assert [m["name"] for m in prep["to_start"]] == ["datum-default"]
    assert clock() >= 1004.0 and fleet.state["datum-default"] == "gone"  # started only once it had stopped
    extra = {r["host"]: r["extra"] for r in store.agents("w1")}["datum-default"]
    assert extra["drained_at"] < extra["exited_at"] and extra["asked"]["waited_for_stop_seconds"] >= 4.0


def test_wakeup_never_starts_an_occurrence_that_has_not_stopped(tmp_path):
    members = occs(3)
    fleet = FakeFleet(members, drain_seconds=1000.0)
    for n in ("datum-occ-1", "datum-occ-2"):
        fleet.state[n] = "gone"
    fleet.stop("datum-default")
    plan = pl.occurrence_plan({"members": members, "group": "agents", "purpose": "wakeup", "wave_delays": [0, 0],
                               "wave_timeout": 10, "probe": True}, client=fleet)
    params = {"plan": plan, "deployment_id": "w1", "state_path": str(tmp_path / "s.db"),
              "report_path": str(tmp_path / "w.json"), "wave": 1, "target_version": "1.0.0", "poll_interval": 1.0}
    store = open_store(params["state_path"])
    clock = fleet.clock
    prep = wk.wakeup_prepare(params, client=fleet, store=store, clock=clock, sleep=clock.sleep, monotonic=clock)
    assert prep["to_start"] == [] and prep["not_stopped"] == ["datum-default"]
    gate = wk.wakeup_gate(params, client=fleet, store=store, clock=clock, sleep=clock.sleep, monotonic=clock)
    assert gate["aborted"] and "still draining" in gate["failures"]["datum-default"]
    rows = {r["host"]: r["result"] for r in store.agents("w1")}
    assert rows == {"datum-default": "unhealthy", "datum-occ-1": "left_down", "datum-occ-2": "left_down"}
