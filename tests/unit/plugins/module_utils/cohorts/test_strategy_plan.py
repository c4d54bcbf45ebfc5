"""The strategies' wave plans: a canary count, rolling batches of max_parallel, auto_promote defaults."""

from __future__ import annotations

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._cohorts import (
    CohortError, effective_auto_promote, parse_canary, strategy_cohorts, wave_plan,
)


def plan(n, **params):
    base = {"members": ["agent-%03d" % i for i in range(n)], "cohorts": "ciris", "method": "sorted", "salt": "",
            "id_key": "name", "max_parallel": 0, "canary": None, "auto_promote": None, "strategy": None}
    base.update(params)
    return wave_plan(base)


def shape(result):
    return [(w["name"], w["size"]) for w in result["waves"]]


def test_without_strategy_the_cohorts_as_before():
    out = plan(10)
    assert shape(out) == [("explorers", 1), ("early_adopters", 3), ("pragmatists", 4), ("conservatives", 2)]
    assert out["promote_after"] == 0


def test_canary_cohorts_roll_on_by_default():
    out = plan(10, strategy="canary")
    assert shape(out)[0] == ("explorers", 1)
    assert out["auto_promote"] is True and out["canary_wave"] == 1 and out["promote_after"] == 0


def test_canary_cohorts_with_auto_promote_false_stop_after_the_first_wave():
    out = plan(10, strategy="canary", auto_promote=False)
    assert out["promote_after"] == 1


@pytest.mark.parametrize("count", [2, "2", 2.0])
def test_canary_count_then_the_rest_and_waits_for_promotion(count):
    out = plan(10, strategy="canary", canary=count)
    assert shape(out) == [("canary", 2), ("rest", 8)]
    assert out["auto_promote"] is False and out["promote_after"] == 1
    # max_parallel does not cut the canary strategy's rest
    assert shape(plan(10, strategy="canary", canary=2, max_parallel=3)) == [("canary", 2), ("rest", 8)]


def test_canary_count_with_auto_promote_true_rolls_on():
    out = plan(10, strategy="canary", canary=2, auto_promote="true")
    assert out["auto_promote"] is True and out["promote_after"] == 0


def test_canary_as_cohorts_replaces_rollout_cohorts():
    out = plan(10, strategy="canary", canary=[{"name": "one", "count": 1}, {"name": "others", "rest": True}])
    assert shape(out) == [("one", 1), ("others", 9)]
    assert out["auto_promote"] is True


def test_rolling_batches_of_max_parallel():
    out = plan(7, strategy="rolling", max_parallel=2)
    assert shape(out) == [("batch-1", 2), ("batch-2", 2), ("batch-3", 2), ("batch-4", 1)]
    assert out["canary_wave"] == 0 and out["promote_after"] == 0
    assert [m["cohort"] for w in out["waves"] for m in w["members"]] == ["batch"] * 7
    assert [w["index"] for w in out["waves"]] == [1, 2, 3, 4]


def test_rolling_with_a_canary_count():
    out = plan(7, strategy="rolling", max_parallel=2, canary=3)
    assert shape(out) == [("canary", 3), ("batch-1", 2), ("batch-2", 2)]
    assert out["promote_after"] == 1
    assert plan(7, strategy="rolling", max_parallel=2, canary=3, auto_promote=True)["promote_after"] == 0


def test_a_canary_wave_that_is_the_whole_fleet_does_not_wait():
    out = plan(2, strategy="canary", canary=5)
    assert shape(out) == [("canary", 2)]
    assert out["promote_after"] == 0


def test_immediate_is_one_wave_whatever_the_canary():
    assert shape(plan(5, strategy="immediate", canary=2)) == [("all", 5)]


@pytest.mark.parametrize("params, field", [
    ({"strategy": "rolling", "max_parallel": 0}, "max_parallel"),
    ({"strategy": "rolling", "max_parallel": -1}, "max_parallel"),
    ({"strategy": "rolling", "max_parallel": 2, "canary": "ciris"}, "canary"),
    ({"strategy": "canary", "canary": 0}, "canary"),
    ({"strategy": "canary", "canary": -2}, "canary"),
    ({"strategy": "canary", "canary": True}, "canary"),
    ({"strategy": "canary", "canary": {"count": 2}}, "canary"),
    ({"strategy": "canary", "canary": 2, "auto_promote": "maybe"}, "auto_promote"),
])
def test_bad_policy_is_one_error_naming_the_field(params, field):
    with pytest.raises(CohortError) as exc:
        plan(10, **params)
    assert str(exc.value).startswith(field)


def test_parse_canary_and_auto_promote_default():
    assert parse_canary(None) is None and parse_canary("") is None
    assert parse_canary(" 3 ") == 3
    assert parse_canary("ciris")[0]["name"] == "explorers"
    assert effective_auto_promote(None, "count") is False
    assert effective_auto_promote(None, "cohorts") is True
    assert effective_auto_promote(None, None) is True
    assert strategy_cohorts("blue_green", 0)[1] == 0


# -- the policy's pure parts ---------------------------------------------------------------------------

from ansible_collections.agentfleet.rollout.plugins.module_utils._health import agent_state_ready  # noqa: E402
from ansible_collections.agentfleet.rollout.plugins.module_utils._policy import remaining, waves_to_run  # noqa: E402
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.verdict import judge_wave  # noqa: E402


@pytest.mark.parametrize("info, ready", [
    ({"status": "degraded", "cognitive_state": "work", "version": "2.0.0"}, True),
    ({"status": "healthy", "cognitive_state": "work", "version": "2.0.0-stable"}, True),
    ({"status": "healthy", "cognitive_state": "wakeup", "version": "2.0.0"}, False),
    ({"status": "healthy", "cognitive_state": "work", "version": "2.0.0", "initialization_complete": False}, False),
    ({"status": "healthy", "cognitive_state": "work", "version": "1.0.0"}, False),
    ({}, False),
])
def test_agent_states_readiness(info, ready):
    assert agent_state_ready(info, ("work",), "2.0.0")[0] is ready


def test_waves_to_run_stops_at_the_canary_until_promoted():
    plan = [{"index": 1, "name": "canary"}, {"index": 2, "name": "rest"}]
    held = waves_to_run(plan, {"promote_after": 1})
    assert held == [{"index": 1, "name": "canary", "await_promotion": True}]
    assert waves_to_run(plan, {"promote_after": 1}, promote=True) == plan
    assert waves_to_run(plan, {"promote_after": 1, "promoted": True}) == plan
    assert waves_to_run(plan, {}) == plan


def test_progress_deadline_caps_waits():
    assert remaining(None, 100.0, 30.0) == (30.0, False)
    assert remaining(110.0, 100.0, 30.0) == (10.0, True)
    assert remaining(150.0, 100.0, 30.0) == (30.0, False)
    assert remaining(90.0, 100.0, 30.0) == (0.0, True)


def test_a_stalled_wave_fails_even_when_healthy_enough():
    counts = {"accepted": 2, "unreachable": 0, "healthy": 2}
    assert judge_wave(counts, 0.8) == (True, 2)
    assert judge_wave(counts, 0.8, blocked=True) == (False, 2)
