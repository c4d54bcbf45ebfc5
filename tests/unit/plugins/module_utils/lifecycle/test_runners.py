"""The deployment, deployment_info and rollout_state modules' engines (_runners), on a real SQLite state file."""
from __future__ import annotations

import os

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils import _argspecs
from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.errors import RolloutError
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import LockedError
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import open_store

WAVES = [{"index": 1, "name": "explorers", "members": [{"name": "a", "agent_url": "http://127.0.0.1:1/a"}]},
         {"index": 2, "name": "rest", "members": [{"name": "b", "agent_url": "http://127.0.0.1:1/b"},
                                                  {"name": "c", "agent_url": "http://127.0.0.1:1/c"}]}]


def params(spec, **kw):
    out = {k: v.get("default") for k, v in spec.items()}
    out.update(kw)
    return out


def deployment(tmp_path, check_mode=False, **kw):
    base = dict(state_path=str(tmp_path / "state.db"), deployment_id="d1", fleet_key="fleet", target_version="2.0.0",
                waves=WAVES)
    base.update(kw)
    return _runners.run_deployment(params(_argspecs.DEPLOYMENT_SPEC, **base), check_mode=check_mode)


def info(tmp_path, **kw):
    return _runners.run_deployment_info(params(_argspecs.DEPLOYMENT_INFO_SPEC, state_path=str(tmp_path / "state.db"), **kw))


def record(tmp_path, **kw):
    return _runners.run_state(params(_argspecs.STATE_SPEC, state_path=str(tmp_path / "state.db"), deployment_id="d1", **kw))


def test_running_returns_the_play_shape_and_closed_takes_the_status_from_the_results(tmp_path):
    out = deployment(tmp_path, play_hosts=["a", "b", "c"], limit="agents")
    assert out["mode"] == "new" and out["order"] == ["a", "b", "c"] and out["batches"] == [1, 2]
    assert record(tmp_path, op="wave_start", wave=1, wave_name="explorers")["previous_waves"] == []
    assert record(tmp_path, op="mark", hosts=["a", "b"], result="updated")["marked"] == 2
    assert record(tmp_path, op="mark", results=[{"host": "c", "result": "failed", "detail": "not stable"}])["marked"] == 1
    closed = deployment(tmp_path, state="closed", report_path=str(tmp_path / "r.json"))
    assert closed["status"] == "completed_with_failures"
    assert closed["report"]["totals"]["updated"] == 2 and closed["report"]["totals"]["failed"] == 1
    assert closed["report"]["kind"] == "rollout" and closed["report"]["limit"] == "agents"
    assert os.path.exists(tmp_path / "r.json")
    # closing with failures reopens on the next run: a retry of exactly the failed agent
    again = deployment(tmp_path)
    assert again["mode"] == "retry"


def test_a_closing_state_sets_that_status_with_its_reason(tmp_path):
    deployment(tmp_path)
    out = deployment(tmp_path, state="failed", status_reason="the new version loses conversations")
    assert out["status"] == "failed" and out["deployment_summary"]["message"] == "the new version loses conversations"
    listed = info(tmp_path, fleet_key="fleet")["deployments"]
    assert [(d["deployment_id"], d["status"], d["active"]) for d in listed] == [("d1", "failed", False)]


def test_staged_runs_nothing_and_promote_starts_the_latest_staged(tmp_path):
    out = deployment(tmp_path, state="staged")
    assert out["mode"] == "staged" and info(tmp_path, deployment_id="d1")["report"]["status"] == "staged"
    promoted = deployment(tmp_path, deployment_id=None, target_version=None, waves=None, promote=True)
    assert promoted["mode"] == "promoted" and promoted["deployment_id"] == "d1" and promoted["target_version"] == "2.0.0"


def test_staged_and_promote_at_once_is_one_clear_error_naming_the_field(tmp_path):
    with pytest.raises(ValueError, match="^promote: "):
        deployment(tmp_path, state="staged", promote=True)
    assert not os.path.exists(tmp_path / "state.db")


def test_another_active_deployment_of_the_fleet_is_refused(tmp_path):
    deployment(tmp_path)  # owned by this (live) process
    with pytest.raises(LockedError):
        deployment(tmp_path, deployment_id="d2", target_version="3.0.0")


def test_check_mode_reads_without_creating_the_state_file(tmp_path):
    out = deployment(tmp_path, check_mode=True)
    assert out["mode"] == "check" and out["changed"] is True
    assert not os.path.exists(tmp_path / "state.db")
    assert deployment(tmp_path, check_mode=True, state="failed")["changed"] is True
    assert not os.path.exists(tmp_path / "state.db")


def test_info_on_a_missing_state_file_is_empty_and_creates_nothing(tmp_path):
    assert info(tmp_path) == {"changed": False, "deployments": [], "report": None, "summary_table": [], "keys": [],
                              "status": None, "history": []}
    assert not os.path.exists(tmp_path / "state.db")


def test_info_lists_newest_first_per_fleet_and_reports_one(tmp_path):
    deployment(tmp_path)
    deployment(tmp_path, state="completed")
    deployment(tmp_path, deployment_id="d2", target_version="3.0.0")
    deployment(tmp_path, deployment_id="o1", fleet_key="other", target_version="1.0.0")
    assert [d["deployment_id"] for d in info(tmp_path, fleet_key="fleet")["deployments"]] == ["d2", "d1"]
    assert [d["deployment_id"] for d in info(tmp_path, max_deployments=1)["deployments"]] == ["o1"]
    one = info(tmp_path, deployment_id="d1")
    assert one["report"]["deployment_id"] == "d1" and one["report"]["schema"] == 2
    assert one["summary_table"][0].startswith("deployment d1 (canary -> 2.0.0): completed")
    assert one["deployments"][0]["totals"]["not_asked"] == 3
    with pytest.raises(RolloutError, match="unknown deployment nope"):
        info(tmp_path, deployment_id="nope")
    with pytest.raises(ValueError, match="^max_deployments "):
        info(tmp_path, max_deployments=0)


def test_rollout_state_needs_a_known_deployment_and_hosts_need_a_result(tmp_path):
    deployment(tmp_path)
    with pytest.raises(RolloutError, match="unknown deployment d9"):
        _runners.run_state(params(_argspecs.STATE_SPEC, state_path=str(tmp_path / "state.db"), deployment_id="d9",
                                  op="mark", hosts=["a"], result="updated"))
    with pytest.raises(ValueError, match="^result: "):
        record(tmp_path, op="mark", hosts=["a"])


def test_wave_done_judges_the_wave_from_the_gate(tmp_path):
    deployment(tmp_path)
    record(tmp_path, op="wave_start", wave=2, wave_name="rest")
    with open_store(tmp_path / "state.db") as store:  # what notify records: both accepted
        store.record_answers("d1", [{"host": h, "decision": "accept", "reason": None} for h in ("b", "c")])
    gate = {"agents": {"b": {"stable": True, "version": "2.0.0"}, "c": {"stable": False, "cause": "crashed"}},
            "reason": "1/2 stable"}
    out = record(tmp_path, op="wave_done", wave=2, wave_name="rest", gate=gate, updated_hosts=["b", "c"],
                 success_threshold=1.0)
    assert out["passed"] is False and out["summary"]["healthy"] == 1 and out["summary"]["required"] == 2
    report = info(tmp_path, deployment_id="d1")["report"]
    assert {a["host"]: a["result"] for a in report["agents"]}["c"] == "failed"


@pytest.mark.parametrize("waves, field", [
    ([{"name": "x", "members": []}], "waves[0].index"),
    ([{"index": 1, "name": "", "members": []}], "waves[0].name"),
    ([{"index": 1, "name": "x", "members": [{"agent_url": "http://h"}]}], "waves[0].members"),
])
def test_a_malformed_wave_plan_is_one_error_naming_the_field_and_records_nothing(tmp_path, waves, field):
    with pytest.raises(ValueError, match="^" + field.replace("[", r"\[").replace("]", r"\]") + ": "):
        deployment(tmp_path, waves=waves)
    assert info(tmp_path)["deployments"] == []


def test_the_history_counts_the_same_totals_as_the_report(tmp_path):
    deployment(tmp_path)
    record(tmp_path, op="mark", hosts=["a"], result="updated")
    record(tmp_path, op="mark", results=[{"host": "b", "result": "failed", "detail": "not stable"}])
    for dummy in ("open", "closed"):
        listed = info(tmp_path, fleet_key="fleet")["deployments"][0]["totals"]
        assert listed == info(tmp_path, deployment_id="d1")["report"]["totals"]
        deployment(tmp_path, state="closed")
    assert listed["pending"] == 1 and listed["updated"] == 1 and listed["failed"] == 1
