"""The fleet as it is (_fleet.fleet_view, the fleet_status module's engine): one probe per agent, the version
spread, the states, the agents on a target version and who does not answer; one result shape."""

from __future__ import annotations

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._fleet import fleet_view
from ansible_collections.agentfleet.rollout.plugins.module_utils._fleet import run_fleet_status
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import evaluate_health


class FakeClient:
    def __init__(self, answers):
        self.answers = answers
        self.probed = []

    def fan_out(self, fn, items):
        return [fn(i) for i in items]

    def probe(self, url, expected_states=("work",), target_version=None):
        self.probed.append(url)
        answer = self.answers[url]
        if answer is None:
            return {"healthy": False, "cause": "connection refused", "info": {}, "reachable": False}
        healthy, cause, info = evaluate_health(200, {"data": answer}, expected_states, target_version)
        return {"healthy": healthy, "cause": cause, "info": info, "reachable": True}


def agents(n):
    return [{"name": "a%d" % i, "agent_url": "http://127.0.0.1:1/a%d" % i} for i in range(n)]


def health(version, state="work", status="healthy"):
    out = {"status": status, "cognitive_state": state}
    if version is not None:
        out["version"] = version
    return out


def test_spread_states_target_and_unreachable():
    answers = {"http://127.0.0.1:1/a0": health("2.0.0"), "http://127.0.0.1:1/a1": health("2.0.0"),
               "http://127.0.0.1:1/a2": health("1.0.0", state="shutdown"), "http://127.0.0.1:1/a3": None,
               "http://127.0.0.1:1/a4": health(None)}
    client = FakeClient(answers)
    view = fleet_view(client, agents(5), target_version="2.0.0")
    assert sorted(client.probed) == sorted(answers), "every agent probed exactly once"
    assert view["versions"] == {"2.0.0": 2, "1.0.0": 1, "unreachable": 1, "unknown": 1}
    assert view["states"] == {"work": 3, "shutdown": 1, "unreachable": 1}
    assert view["healthy"] == 3
    assert view["unreachable_agents"] == ["a3"]
    assert view["on_target"] == ["a0", "a1"] and view["off_target"] == ["a2", "a3", "a4"]
    assert view["lines"][0] == "fleet now: 5 agents, 3 healthy, 1 unreachable"
    # most agents first, then by name
    assert [line.split()[1] for line in view["lines"][1:5]] == ["2.0.0", "1.0.0", "unknown", "unreachable"]
    assert "  on 2.0.0: 2 of 5; not yet: a2, a3, a4" in view["lines"]


def test_one_shape_with_and_without_agents_or_target():
    full = fleet_view(FakeClient({"http://127.0.0.1:1/a0": health("1.0.0")}), agents(1))
    empty = run_fleet_status({"agents": [], "group": None, "hosts": None, "target_version": None,
                              "expected_states": ["work"]})
    assert set(full) == set(empty) - {"changed"}
    assert full["on_target"] == [] and full["off_target"] == []
    assert empty["lines"] == ["fleet now: 0 agents, 0 healthy, 0 unreachable"]


def test_group_is_for_the_action_plugin_only():
    with pytest.raises(ValueError, match="group and hosts are resolved by the controller-side action plugin"):
        run_fleet_status({"agents": None, "group": "agents", "hosts": None, "target_version": None})
