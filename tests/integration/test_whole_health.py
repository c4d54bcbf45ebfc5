"""Integration (issue 21 #1): a CIRIS agent's whole health in the rollout's gate, against fleetsim agents that
consent as real CIRIS agents do, updated by the tasks driver.

A version that reports cognitive_state wakeup_error (or status critical) fails its canary wave at once,
although rollout_healthy_deadline is 300 s: the playbook ends well inside the subprocess timeout (200 s) and the
report says why. A blocking warning keeps an agent unhealthy until the deadline.
"""

from __future__ import annotations

from conftest import run_playbook
from fleetsim.testing import FleetSim, tasks_driver_vars


def fleet(overrides):
    return {"defaults": {"consent": "ciris", "decide_seconds": 0.2, "drain_seconds": 0.3},
            "agents": [{"count": 10, "name_prefix": "agent-", "overrides": overrides}]}


def run(sim, tmp_path, **extra):
    extra_vars = {
        "rollout_target_version": "2.0.0",
        **tasks_driver_vars(),
        "rollout_min_healthy_time": 1,
        "rollout_poll_interval": 0.2,
        "rollout_state_path": str(tmp_path / "state.db"),
        "rollout_report_path": str(tmp_path / "report.json"),
        "rollout_audit_path": str(tmp_path / "audit.jsonl"),
        **extra,
    }
    # the timeout is generous but shorter than rollout_healthy_deadline: a gate that waited for the deadline
    # would not finish in it
    return run_playbook("agentfleet.rollout.canary", tmp_path, inventory=sim.inventory_path, extra_vars=extra_vars,
                        report_path=tmp_path / "report.json", timeout=200)


def by_host(report):
    return {a["host"]: a for a in report["agents"]}


def shutdown_asked(sim):
    return sorted({e["occurrence"] for e in sim.log(path="/v1/system/shutdown", method="POST")})


def test_wakeup_error_fails_the_canary_wave_at_once(tmp_path):
    cfg = fleet({"agent-000": {"unhealthy_after_update": True, "unhealthy_mode": "wakeup_error"}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_healthy_deadline=300)
        assert res.rc != 0
        assert "wave 1 (explorers) failed its health gate" in res.output
        assert "cognitive_state wakeup_error" in res.output  # the gate's cause table
        report = res.report()
        assert report["status"] == "failed"
        agents = by_host(report)
        assert agents["agent-000"]["result"] == "failed"
        assert "cognitive_state wakeup_error" in agents["agent-000"]["detail"]
        assert shutdown_asked(sim) == ["agent-000"]  # no agent of a later wave was asked
        assert all(a["result"] == "not_asked" for h, a in agents.items() if h != "agent-000")


def test_status_critical_held_fails_the_wave_with_its_cause(tmp_path):
    cfg = fleet({"agent-000": {"unhealthy_after_update": True, "unhealthy_mode": "critical"}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_healthy_deadline=300, rollout_fail_fast_after=2)
        assert res.rc != 0
        cause = "status critical for 2 s: adapters failed to load"
        assert cause in res.output
        agents = by_host(res.report())
        assert agents["agent-000"]["result"] == "failed" and cause in agents["agent-000"]["detail"]
        assert shutdown_asked(sim) == ["agent-000"]


def test_a_blocking_warning_keeps_an_agent_unhealthy(tmp_path):
    stranded = {"code": "shared_task_stranded", "severity": "error",
                "message": "1 shared task(s) unsettled for over 24h (oldest 17.0 days): SHUTDOWN_SHARED_20260731."}
    cfg = fleet({"agent-000": {"warnings": [stranded]},
                 "agent-001": {"warnings": [{"code": "occurrence_identity", "severity": "info",
                                             "message": "occurrence_id=default multi_occurrence=False"}]}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_healthy_deadline=4)
        assert res.rc != 0
        assert "warning shared_task_stranded" in res.output
        agents = by_host(res.report())
        assert agents["agent-000"]["result"] == "failed"
        assert "warning shared_task_stranded: 1 shared task(s) unsettled" in agents["agent-000"]["detail"]
        assert "failed fast" not in agents["agent-000"]["detail"]

    # the same fleet without the code in rollout_blocking_warnings: the explorer passes, and an agent that
    # reports a warning not listed (occurrence_identity, a state report) is updated too
    again = tmp_path / "again"
    again.mkdir()
    with FleetSim(config=cfg, workdir=again / "sim") as sim:
        res = run(sim, again, rollout_healthy_deadline=30, rollout_blocking_warnings=["adapters_failed_to_load"])
        assert res.rc == 0, res.output
        agents = by_host(res.report())
        assert agents["agent-000"]["result"] == "updated" and agents["agent-001"]["result"] == "updated"
