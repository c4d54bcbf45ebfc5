"""A CIRIS agent's whole health in fleetsim (issue 21 #1): status critical with adapters that failed to load,
cognitive_state wakeup_error, and data.warnings."""

from __future__ import annotations

import pytest

from fleetsim.config import ConfigError, build_fleet
from fleetsim.testing import FleetSim

CONFIG = {
    "defaults": {"version": "1.0.0"},
    "agents": [
        {"count": 4, "name_prefix": "w-", "overrides": {
            "w-000": {"unhealthy_after_update": True, "unhealthy_mode": "critical"},
            "w-001": {"unhealthy_after_update": True, "unhealthy_mode": "wakeup_error"},
            "w-002": {"warnings": ["shared_task_stranded",
                                   {"code": "occurrence_identity", "message": "occurrence_id=002", "severity": "info"}]},
        }},
    ],
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with FleetSim(CONFIG, workdir=tmp_path_factory.mktemp("fleet")) as s:
        yield s


def data(sim, name):
    status, body = sim.health(name)
    assert status == 200
    return body["data"]


def test_a_plain_agent_lists_no_warnings(sim):
    d = data(sim, "w-003")
    assert (d["status"], d["cognitive_state"], d["warnings"], d["degraded_mode"]) == ("healthy", "work", [], False)


def test_critical_after_a_start_on_a_new_version_with_the_adapter_warning(sim):
    assert data(sim, "w-000")["status"] == "healthy"
    sim.start(["w-000"], "2.0.0")
    d = data(sim, "w-000")
    assert (d["status"], d["cognitive_state"], d["version"]) == ("critical", "work", "2.0.0")
    assert [(w["code"], w["severity"]) for w in d["warnings"]] == [("adapters_failed_to_load", "error")]
    assert "failed to start" in d["warnings"][0]["message"]
    sim.start(["w-000"], "1.0.0")  # back on the original version: healthy again
    d = data(sim, "w-000")
    assert (d["status"], d["warnings"]) == ("healthy", [])


def test_wakeup_error_after_a_start_on_a_new_version(sim):
    sim.start(["w-001"], "2.0.0")
    d = data(sim, "w-001")
    assert (d["cognitive_state"], d["degraded_mode"]) == ("wakeup_error", True)
    assert [w["code"] for w in d["warnings"]] == ["wakeup_step_rejected"]


def test_warnings_setting_in_ciris_shape_and_at_run_time(sim):
    d = data(sim, "w-002")
    assert d["status"] == "healthy"
    assert d["warnings"] == [
        {"code": "shared_task_stranded", "message": "shared task stranded", "severity": "warning", "action_url": None},
        {"code": "occurrence_identity", "message": "occurrence_id=002", "severity": "info", "action_url": None}]
    sim.configure("w-002", warnings=[])
    assert data(sim, "w-002")["warnings"] == []
    sim.configure("w-003", warnings=[{"code": "adapters_config_stale", "severity": "error"}])
    assert [w["code"] for w in data(sim, "w-003")["warnings"]] == ["adapters_config_stale"]


@pytest.mark.parametrize("bad", ["adapters_failed_to_load", [{"message": "no code"}], [{"code": "x", "severity": "fatal"}],
                                 [{"code": "x", "colour": "red"}], [3]])
def test_a_bad_warnings_setting_is_refused(bad):
    with pytest.raises(ConfigError, match="warnings"):
        build_fleet({"defaults": {"warnings": bad}})
