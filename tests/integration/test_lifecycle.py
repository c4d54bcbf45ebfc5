"""Integration: the deployment lifecycle (docs/lifecycle.md) with the real playbooks against fleetsim.

Version history, rollback to version N as a new version, pause from a second process (in a gate wait and
before the next wave) then resume, a canary waiting for its promotion, fail then rollback, and the CLI.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import ansible_env, run_playbook
from fleetsim.testing import FleetSim
from helpers import wait_for
from test_canary import asked_hosts, fleet, posts, rollout_vars, versions

REPO = Path(__file__).resolve().parents[2]


def play(sim, tmp_path, playbook, **extra):
    return run_playbook("agentfleet.rollout." + playbook, tmp_path, inventory=sim.inventory_path,
                        extra_vars=rollout_vars(tmp_path, **extra), report_path=tmp_path / "report.json", timeout=240)


def start(sim, tmp_path, playbook="canary", **extra):
    """The playbook in the background (the rollout a second process acts on)."""
    varfile = tmp_path / ("bg-%s.json" % playbook)
    varfile.write_text(json.dumps(rollout_vars(tmp_path, **extra)))
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "agentfleet.rollout." + playbook,
           "-i", str(sim.inventory_path), "-e", "@%s" % varfile]
    return subprocess.Popen(cmd, cwd=str(tmp_path), env=ansible_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def cli(tmp_path, *args):
    cmd = [sys.executable, "-m", "agentfleet_cli", "--state", str(tmp_path / "state.db"),
           "--audit", str(tmp_path / "audit.jsonl")] + list(args)
    env = ansible_env(tmp_path, PYTHONPATH=str(REPO))
    return subprocess.run(cmd, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=120, check=False)


def query(tmp_path, sql, *args):
    path = tmp_path / "state.db"
    if not path.exists():
        return []
    db = sqlite3.connect(str(path), timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def records(tmp_path):
    return {v: (s, t, src, rb) for v, s, t, src, rb in query(
        tmp_path, "SELECT version, status, target_version, source_version, rollback_to FROM deployments")}


def audit(tmp_path):
    return [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]


def test_three_versions_then_rollback_to_version_1_is_version_4(tmp_path):
    with FleetSim(config=fleet(4), workdir=tmp_path / "sim") as sim:
        for target in ("2.0.0", "3.0.0", "4.0.0"):
            res = play(sim, tmp_path, "canary", rollout_target_version=target, rollout_cohorts="all",
                       rollout_reason="release %s" % target)
            assert res.rc == 0, res.output
        assert set(versions(sim).values()) == {"4.0.0"}
        assert records(tmp_path) == {1: ("completed", "2.0.0", None, None), 2: ("completed", "3.0.0", "2.0.0", None),
                                     3: ("completed", "4.0.0", "3.0.0", None)}
        hist = play(sim, tmp_path, "history")
        assert hist.rc == 0, hist.output
        assert "3       completed" in hist.output and "canary     3.0.0      4.0.0      4/4" in hist.output

        back = play(sim, tmp_path, "rollback", rollout_rollback_to=1, rollout_rollback_skip_canary=True,
                    rollout_reason="restore stable worker")
        assert back.rc == 0, back.output
        assert records(tmp_path)[4] == ("completed", "2.0.0", "4.0.0", 1)
        # history is append-only: versions 1-3 are as they were
        assert [records(tmp_path)[v][0] for v in (1, 2, 3)] == ["completed"] * 3
        assert set(versions(sim).values()) == {"2.0.0"}
        # through the consent flow, in one wave: each agent asked once more, for 2.0.0
        rollback_posts = [e for e in posts(sim) if e["body"]["target_version"] == "2.0.0" and "rollback" in
                          e["body"]["deployment_id"]]
        assert sorted(e["occurrence"] for e in rollback_posts) == sorted(versions(sim))
        report = back.report()
        assert {w["name"] for w in report["waves"]} == {"all"} and len(report["waves"]) == 1

        status = play(sim, tmp_path, "status")
        assert status.rc == 0, status.output
        assert "agents version 4: completed" in status.output
        assert "rollback to version 1" in status.output
        # who, when and why of every deployment in the audit log
        started = [e for e in audit(tmp_path) if e["event"] == "deployment_new"]
        assert [e["version"] for e in started] == [1, 2, 3, 4]
        assert started[-1]["reason"] == "restore stable worker" and started[-1]["actor"] and started[-1]["ts"]

        # the CLI reads the same records
        out = cli(tmp_path, "history", "agents")
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[1].split()[:2] == ["4", "completed"]
        assert cli(tmp_path, "rollback", "agents", "--version", "9").returncode == 1


def test_pause_in_a_gate_wait_then_resume_finishes(tmp_path):
    with FleetSim(config=fleet(10), workdir=tmp_path / "sim") as sim:
        # the explorers' gate waits 90 s for stability: the pause arrives during it
        proc = start(sim, tmp_path, rollout_min_healthy_time=90, rollout_healthy_deadline=120)
        try:
            wait_for(lambda: query(tmp_path, "SELECT host FROM agents WHERE wave=1 AND result='updated'"),
                     60.0, "the explorer updated (the gate waiting)", interval=0.1)
            began = time.monotonic()
            paused = cli(tmp_path, "pause", "agents", "--reason", "investigating health")
            assert paused.returncode == 0, paused.stderr
            out, dummy = proc.communicate(timeout=80)
            # it stopped in the gate, not after its 90 s
            assert time.monotonic() - began < 60
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, out
        assert "paused" in out and "during the health gate in wave 1" in out
        assert asked_hosts(sim) == ["agent-000"]  # no agent of a later wave was asked
        assert records(tmp_path)[1][0] == "paused"
        pause_line = [e for e in audit(tmp_path) if e["event"] == "deployment_pause"][0]
        assert pause_line["reason"] == "investigating health" and pause_line["actor"]

        res = play(sim, tmp_path, "resume", rollout_reason="continue rollout")
        assert res.rc == 0, res.output
        assert res.report()["status"] == "completed"
        assert set(versions(sim).values()) == {"2.0.0"}
        assert sorted(asked_hosts(sim)) == sorted(versions(sim))  # nobody asked twice
        assert records(tmp_path)[1][0] == "completed" and len(records(tmp_path)) == 1


def test_pause_while_a_wave_stops_its_agents_stops_before_the_next_wave(tmp_path):
    cfg = fleet(10, overrides={"agent-000": {"shutdown_exit_seconds": 10}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        proc = start(sim, tmp_path)
        try:
            wait_for(lambda: asked_hosts(sim), 60.0, "the explorer asked", interval=0.1)
            paused = cli(tmp_path, "pause", "agents", "--reason", "hold on")
            assert paused.returncode == 0, paused.stderr
            out, dummy = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, out
        # wave 1 finished (its agent updated and gated), wave 2 never started
        assert asked_hosts(sim) == ["agent-000"], out + paused.stdout
        assert versions(sim)["agent-000"] == "2.0.0"
        assert "is paused (paused by" in out
        res = play(sim, tmp_path, "resume")
        assert res.rc == 0, res.output
        assert res.report()["status"] == "completed" and set(versions(sim).values()) == {"2.0.0"}


def test_canary_without_auto_promote_waits_for_promote(tmp_path):
    with FleetSim(config=fleet(10), workdir=tmp_path / "sim") as sim:
        res = play(sim, tmp_path, "canary", rollout_auto_promote=False)
        assert res.rc == 0, res.output
        assert "is staged, awaiting promotion (auto_promote is false)" in res.output
        assert asked_hosts(sim) == ["agent-000"]
        status = cli(tmp_path, "status", "agents")
        assert "staged: awaiting promotion" in status.stdout, status.stdout
        shown = cli(tmp_path, "promote", "agents")
        assert shown.returncode == 3 and "agentfleet.rollout.promote" in shown.stdout

        prom = play(sim, tmp_path, "promote", rollout_auto_promote=False)
        assert prom.rc == 0, prom.output
        assert prom.report()["status"] == "completed"
        assert set(versions(sim).values()) == {"2.0.0"}
        assert len(posts(sim)) == 10


def test_fail_then_rollback_puts_the_canary_back(tmp_path):
    # an operator fails a canary waiting for its promotion; the rollback playbook puts the canary back on the
    # last completed version through the update driver (the tasks driver, as users run it)
    with FleetSim(config=fleet(10), workdir=tmp_path / "sim") as sim:
        assert play(sim, tmp_path, "canary", rollout_target_version="2.0.0", rollout_cohorts="all").rc == 0
        res = play(sim, tmp_path, "canary", rollout_target_version="3.0.0", rollout_auto_promote=False)
        assert res.rc == 0, res.output
        assert versions(sim)["agent-000"] == "3.0.0"
        failed = play(sim, tmp_path, "fail", rollout_reason="candidate failed checks")
        assert failed.rc == 0, failed.output
        assert records(tmp_path)[2][0] == "failed"
        assert "deployment_fail" in [e["event"] for e in audit(tmp_path)]
        # the rollback target of the key is still version 1
        status = cli(tmp_path, "--json", "status", "agents")
        assert json.loads(status.stdout)["rollback_target"] == {"version": 1, "target_version": "2.0.0"}
        back = play(sim, tmp_path, "rollback", rollout_rollback_to=1, rollout_rollback_skip_canary=True,
                    rollout_reason="candidate failed checks")
        assert back.rc == 0, back.output
        status, target, dummy, rollback_to = records(tmp_path)[3]
        assert (status, target, rollback_to) == ("completed", "2.0.0", 1)
        assert set(versions(sim).values()) == {"2.0.0"}
        assert sim.violations()["count"] == 0
