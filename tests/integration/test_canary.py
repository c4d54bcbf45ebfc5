"""Integration: the canary / immediate / manual+promote playbooks against fleetsim.

Every test runs the real playbook (ansible-playbook subprocess) against real
HTTP agents served by fleetsim on loopback, and asserts from fleetsim's
request log who was asked what.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ansible_env, run_playbook
from fleetsim.testing import FleetSim, tasks_driver_vars
from helpers import wait_for
from userpath import fleet as ciris_fleet

SHUTDOWN = "/v1/system/shutdown"
TOKEN = "s3cr3t-token-do-not-print-91f2"


def fleet(count=10, overrides=None, **defaults):
    group = {"count": count, "name_prefix": "agent-"}
    if overrides:
        group["overrides"] = overrides
    cfg = {"agents": [group]}
    if defaults:
        cfg["defaults"] = defaults
    return cfg


def rollout_vars(tmp_path, **extra):
    v = {
        "rollout_target_version": "2.0.0",
        **tasks_driver_vars(),
        "rollout_min_healthy_time": 0,
        "rollout_poll_interval": 0.1,
        "rollout_healthy_deadline": 8,
        "rollout_state_path": str(tmp_path / "state.db"),
        "rollout_report_path": str(tmp_path / "report.json"),
        "rollout_audit_path": str(tmp_path / "audit.jsonl"),
    }
    v.update(extra)
    return v


def run(sim, tmp_path, playbook="agentfleet.rollout.canary", check=False, env=None, args=None, **extra):
    return run_playbook(playbook, tmp_path, inventory=sim.inventory_path, extra_vars=rollout_vars(tmp_path, **extra),
                        check=check, env=env, report_path=tmp_path / "report.json", timeout=240, args=args)


def posts(sim, name=None):
    return sim.log(path=SHUTDOWN, method="POST", occurrence=name)


def asked_hosts(sim):
    return [e["occurrence"] for e in posts(sim)]


def by_host(report):
    return {a["host"]: a for a in report["agents"]}


def versions(sim):
    return {n: (o.get("health") or {}).get("version") or o.get("version") for n, o in sim.occurrences().items()}


def recap_changed(output):
    """How many changes PLAY RECAP counts over all hosts (the agents)."""
    total, rows = 0, 0
    for line in output.splitlines():
        if " : ok=" in line and "changed=" in line:
            rows += 1
            total += int(line.split("changed=")[1].split()[0])
    if not rows:
        raise AssertionError("no recap in output:\n" + output[-3000:])
    return total


def test_all_accept_then_rerun_is_a_noop(tmp_path):
    with FleetSim(config=fleet(10), workdir=tmp_path / "sim", token=TOKEN) as sim:
        env = ansible_env(tmp_path, AGENTFLEET_TOKEN=TOKEN)
        res = run(sim, tmp_path, env=env, rollout_message="faster memory consolidation")
        assert res.rc == 0, res.output
        report = res.report()
        assert report["status"] == "completed"
        assert [w["name"] for w in report["waves"]] == ["explorers", "early_adopters", "pragmatists", "conservatives"]
        assert [w["summary"]["size"] for w in report["waves"]] == [1, 3, 4, 2]
        for agent in report["agents"]:
            assert agent["result"] == "updated", agent
            assert agent["decision"] == "accept"
            assert agent["version_before"] == "1.0.0" and agent["version_after"] == "2.0.0"
        assert set(versions(sim).values()) == {"2.0.0"}
        # one line per wave as it happens, then a summary
        for n, name in enumerate(["explorers", "early_adopters", "pragmatists", "conservatives"], start=1):
            assert "wave %d/4 %s:" % (n, name) in res.output
        assert "total: 10 agents: 10 updated" in res.output
        # every agent asked exactly once, with the deployment id and a CIRISManager-like reason
        sent = posts(sim)
        assert sorted(e["occurrence"] for e in sent) == sorted(by_host(report))
        bodies = {e["occurrence"]: e["body"] for e in sent}
        assert all(b["deployment_id"] == report["deployment_id"] for b in bodies.values())
        later = [b for h, b in bodies.items() if by_host(report)[h]["wave"] == 2][0]
        assert "2.0.0" in later["reason"] and "faster memory consolidation" in later["reason"]
        assert "explorers: 1/1 healthy on 2.0.0" in later["reason"]
        assert all(e["auth"] == "ok" for e in sent)
        # waves strictly in order: no wave-2 agent asked before wave 1 was updated
        wave_of = {h: a["wave"] for h, a in by_host(report).items()}
        seen = [wave_of[e["occurrence"]] for e in sent]
        assert seen == sorted(seen)
        # audit trail: a decision line per agent and wave events; the token nowhere
        audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
        assert sum(1 for e in audit if e["event"] == "decision") == 10
        assert sum(1 for e in audit if e["event"] == "wave_passed") == 4
        for text in (res.output, (tmp_path / "audit.jsonl").read_text(), (tmp_path / "report.json").read_text()):
            assert TOKEN not in text

        again = run(sim, tmp_path, env=env)
        assert again.rc == 0, again.output
        assert recap_changed(again.output) == 0
        assert "already completed" in again.output
        assert len(posts(sim)) == 10  # nobody asked again


def test_unhealthy_explorers_stop_the_rollout(tmp_path):
    cfg = fleet(10, overrides={"agent-000": {"unhealthy_after_update": True}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_healthy_deadline=2)
        assert res.rc != 0
        assert "wave 1 (explorers) failed its health gate" in res.output
        assert "status degraded" in res.output  # the per-agent cause table
        assert asked_hosts(sim) == ["agent-000"]  # no agent of a later wave was asked
        report = res.report()
        assert report["status"] == "failed"
        agents = by_host(report)
        assert agents["agent-000"]["result"] == "failed"
        assert "status degraded" in agents["agent-000"]["detail"]
        assert all(a["result"] == "not_asked" and a["decision"] is None for h, a in agents.items() if h != "agent-000")


def test_unreachable_agents_fail_the_wave(tmp_path):
    cfg = fleet(10, overrides={"agent-000": {"down": True}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path)
        assert res.rc != 0
        assert "wave 1 (explorers) failed its health gate: 0/1 healthy, 1 required; 1 unreachable" in res.output
        assert asked_hosts(sim) == []  # the down explorer never answered; nobody else was asked
        agents = by_host(res.report())
        assert agents["agent-000"]["result"] == "failed" and "unreachable" in agents["agent-000"]["detail"]


def test_check_mode_of_a_finished_deployment_reports_it(tmp_path):
    with FleetSim(config=fleet(3), workdir=tmp_path / "sim") as sim:
        assert run(sim, tmp_path).rc == 0
        res = run(sim, tmp_path, check=True)
        assert res.rc == 0, res.output
        assert "is already completed" in res.output and "total: 3 agents: 3 updated" in res.output
        assert len(posts(sim)) == 3


def test_auto_revert_puts_the_failed_wave_back(tmp_path):
    cfg = fleet(10, overrides={"agent-001": {"unhealthy_after_update": True}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_cohorts=[{"name": "canary", "count": 3}, {"name": "rest", "rest": True}],
                  rollout_healthy_deadline=2, rollout_auto_revert=True)
        assert res.rc != 0
        report = res.report()
        agents = by_host(report)
        for host in ("agent-000", "agent-001", "agent-002"):
            assert agents[host]["result"] == "reverted", agents[host]
        assert versions(sim)["agent-000"] == "1.0.0"
        assert versions(sim)["agent-001"] == "1.0.0"
        assert sorted(asked_hosts(sim)) == ["agent-000", "agent-001", "agent-002"]
        # the update tasks started the canary wave on 2.0.0, then its revert put each agent back on 1.0.0
        starts = [(n, s["body"]["version"]) for s in sim.log(event="sim_start") for n in s["body"]["occurrences"]]
        assert [v for dummy, v in starts] == ["2.0.0"] * 3 + ["1.0.0"] * 3, starts
        assert sorted(n for n, v in starts if v == "1.0.0") == ["agent-000", "agent-001", "agent-002"]


def test_defer_then_accept_on_reask_and_reject_is_never_updated(tmp_path):
    cfg = fleet(5, overrides={
        "agent-000": {"decision": "defer", "defer_seconds": 1.5},
        "agent-001": {"decision": "reject", "decision_reason": "incompatible memory schema"},
        "agent-002": {"decision": "busy", "busy_times": 1, "busy_retry_after_ms": 500},
    })
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_cohorts="all", rollout_defer_deadline=20)
        assert res.rc == 0, res.output
        agents = by_host(res.report())
        assert agents["agent-000"]["result"] == "updated" and agents["agent-000"]["decision"] == "accept"
        assert agents["agent-000"]["asked_count"] == 2
        assert agents["agent-002"]["result"] == "updated"
        assert agents["agent-001"]["result"] == "rejected"
        assert agents["agent-001"]["decision_reason"] == "incompatible memory schema"
        assert len(posts(sim, "agent-001")) == 1
        assert len(posts(sim, "agent-000")) == 2
        # the re-ask came after defer_until, with the same deployment id
        first, second = posts(sim, "agent-000")
        assert second["ts"] - first["ts"] >= 1.4
        assert first["body"]["deployment_id"] == second["body"]["deployment_id"]
        assert versions(sim)["agent-001"] == "1.0.0"


def test_defer_outside_deadline_is_reported_not_forced(tmp_path):
    cfg = fleet(3, overrides={"agent-000": {"decision": "defer", "defer_seconds": 600}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_cohorts="all", rollout_defer_deadline=5)
        assert res.rc == 0, res.output
        agents = by_host(res.report())
        assert agents["agent-000"]["result"] == "deferred"
        assert agents["agent-000"]["defer_until"]
        assert len(posts(sim, "agent-000")) == 1
        assert versions(sim)["agent-000"] == "1.0.0"


def test_immediate_asks_everyone_at_once_with_force(tmp_path):
    with FleetSim(config=fleet(8), workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, playbook="agentfleet.rollout.immediate")
        assert res.rc == 0, res.output
        report = res.report()
        assert report["strategy"] == "immediate"
        assert len(report["waves"]) == 1
        sent = posts(sim)
        assert len(sent) == 8 and all(e["body"]["force"] is True for e in sent)
        assert "emergency" in sent[0]["body"]["reason"]
        assert all(a["result"] == "updated" for a in report["agents"])


def test_manual_stages_then_promote_runs(tmp_path):
    with FleetSim(config=fleet(6), workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, playbook="agentfleet.rollout.manual")
        assert res.rc == 0, res.output
        assert "is staged: nobody was asked" in res.output
        assert posts(sim) == []
        extra = rollout_vars(tmp_path)
        del extra["rollout_target_version"]
        prom = run_playbook("agentfleet.rollout.promote", tmp_path, inventory=sim.inventory_path, extra_vars=extra,
                            report_path=tmp_path / "report.json", timeout=240)
        assert prom.rc == 0, prom.output
        report = prom.report()
        assert report["status"] == "completed" and report["target_version"] == "2.0.0"
        assert len(posts(sim)) == 6
        assert set(versions(sim).values()) == {"2.0.0"}


def test_check_mode_asks_nobody_and_prints_the_plan(tmp_path):
    with FleetSim(config=fleet(10), workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, check=True)
        assert res.rc == 0, res.output
        for line in ("wave explorers: 1", "wave early_adopters: 3", "wave pragmatists: 4", "wave conservatives: 2"):
            assert line in res.output
        assert posts(sim) == []
        assert sim.log(event="sim_start") == []
        assert not (tmp_path / "state.db").exists()


def test_wrong_token_is_a_clear_auth_error_and_nothing_is_updated(tmp_path):
    with FleetSim(config=fleet(4), workdir=tmp_path / "sim", token=TOKEN) as sim:
        env = ansible_env(tmp_path, AGENTFLEET_TOKEN="wrong-token-7731")
        res = run(sim, tmp_path, env=env)
        assert res.rc != 0
        assert "authentication failed" in res.output and "AGENTFLEET_TOKEN" in res.output
        assert "wrong-token-7731" not in res.output
        assert sim.log(event="sim_start") == []
        assert set(versions(sim).values()) == {"1.0.0"}
        report = res.report()
        assert all(a["result"] != "updated" for a in report["agents"])


def test_second_concurrent_rollout_for_the_fleet_is_refused(tmp_path):
    cfg = fleet(4, boot_seconds=6)
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        env = ansible_env(tmp_path)
        first = _start_playbook(sim, tmp_path, env, rollout_healthy_deadline=30)
        try:
            wait_for(lambda: len(posts(sim)) >= 1, 60, "the first agent asked", interval=0.1)
            second = run(sim, tmp_path, rollout_target_version="3.0.0", rollout_deployment_id="other")
            assert second.rc != 0
            assert "another rollout is active" in second.output
        finally:
            first.wait(timeout=120)
        assert first.returncode == 0
        assert {e["body"]["deployment_id"] for e in posts(sim)} == {"deploy-agents-2.0.0"}


def test_kill_9_mid_rollout_then_rerun_completes_without_asking_twice(tmp_path):
    # wave 2 agents boot slowly, so the controller is killed while it waits on their gate
    cfg = fleet(10, boot_seconds=4, overrides={"agent-000": {"boot_seconds": 0}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        env = ansible_env(tmp_path)
        proc = _start_playbook(sim, tmp_path, env, rollout_healthy_deadline=60)
        wait_for(lambda: len(posts(sim)) >= 4, 90, "the explorers done and wave 2 asked", interval=0.1)
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        asked_before = sorted(asked_hosts(sim))
        assert len(asked_before) == 4
        res = run(sim, tmp_path, rollout_healthy_deadline=60)
        assert res.rc == 0, res.output
        assert "resumed" in res.output
        report = res.report()
        assert report["status"] == "completed"
        assert all(a["result"] == "updated" for a in report["agents"]), report["agents"]
        hosts = asked_hosts(sim)
        assert sorted(hosts) == sorted(set(hosts)), "an agent was asked twice"
        assert len(hosts) == 10
        # the wave-2 agents were not restarted a second time either
        starts = [n for e in sim.log(event="sim_start") for n in e["body"]["occurrences"]]
        assert sorted(starts) == sorted(set(starts))


def test_tasks_driver_runs_the_users_update_tasks_per_accepting_host(tmp_path):
    tasks = tmp_path / "update.yml"
    tasks.write_text(
        "- name: Recreate the agent on the new version (here through the simulator)\n"
        "  ansible.builtin.uri:\n"
        "    url: \"{{ fleetsim_control_url }}/_sim/start\"\n"
        "    method: POST\n"
        "    body_format: json\n"
        "    body: {occurrences: [\"{{ rollout_agent_host }}\"], version: \"{{ rollout_update_version }}\"}\n"
        "- name: Leave a trace of the variables the driver passes\n"
        "  ansible.builtin.copy:\n"
        "    dest: \"" + str(tmp_path) + "/trace-{{ rollout_agent_host }}.json\"\n"
        "    content: \"{{ {'agent_url': agent_url, 'target': rollout_update_version, 'previous': rollout_previous_version,"
        " 'deployment': rollout_deployment_id, 'purpose': rollout_update_purpose} | to_json }}\"\n"
    )
    cfg = fleet(3, overrides={"agent-002": {"decision": "reject"}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        # a relative path: relative to where ansible-playbook runs (run_playbook's cwd is tmp_path)
        res = run(sim, tmp_path, rollout_driver="tasks", rollout_update_tasks="update.yml", rollout_cohorts="all")
        assert res.rc == 0, res.output
        traces = sorted(p.name for p in tmp_path.glob("trace-*.json"))
        assert traces == ["trace-agent-000.json", "trace-agent-001.json"]
        trace = json.loads((tmp_path / "trace-agent-000.json").read_text())
        assert trace == {"agent_url": sim.hosts()["agent-000"]["agent_url"], "target": "2.0.0", "previous": "1.0.0",
                         "deployment": "deploy-agents-2.0.0", "purpose": "update"}
        assert versions(sim) == {"agent-000": "2.0.0", "agent-001": "2.0.0", "agent-002": "1.0.0"}


def _start_playbook(sim, tmp_path, env, **extra):
    varfile = tmp_path / "bg-vars.json"
    varfile.write_text(json.dumps(rollout_vars(tmp_path, **extra)))
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "agentfleet.rollout.canary", "-i",
           str(sim.inventory_path), "-e", "@" + str(varfile)]
    return subprocess.Popen(cmd, cwd=str(tmp_path), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def test_tasks_driver_reverts_a_failed_wave_with_the_users_tasks(tmp_path):
    tasks = tmp_path / "update.yml"
    tasks.write_text(
        "- name: Start the agent on the version asked for\n"
        "  ansible.builtin.uri:\n"
        "    url: \"{{ fleetsim_control_url }}/_sim/start\"\n"
        "    method: POST\n"
        "    body_format: json\n"
        "    body: {occurrences: [\"{{ rollout_agent_host }}\"], version: \"{{ rollout_update_version }}\"}\n"
        # one file per host and purpose: hosts run these tasks in parallel forks, and lineinfile on one shared
        # file is a read-modify-write that loses a line when two forks write at once
        "- name: Trace the purpose\n"
        "  ansible.builtin.copy:\n"
        "    dest: \"" + str(tmp_path) + "/purpose-{{ rollout_agent_host }}-{{ rollout_update_purpose }}.txt\"\n"
        "    content: \"{{ rollout_agent_host }} {{ rollout_update_purpose }} {{ rollout_update_version }}\"\n"
    )
    # agents that answer like ciris-agent: 200 "initiated", the decision shown by stopping
    cfg = ciris_fleet(4, overrides={"agent-000": {"unhealthy_after_update": True}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_driver="tasks", rollout_update_tasks=str(tasks), rollout_cohorts=[
            {"name": "canary", "count": 2}, {"name": "rest", "rest": True}], rollout_auto_revert=True,
            rollout_healthy_deadline=2)
        assert res.rc != 0
        assert "(reverted)" in res.output
        lines = sorted(p.read_text() for p in tmp_path.glob("purpose-*.txt"))
        assert lines == [
            "agent-000 revert 1.0.0", "agent-000 update 2.0.0", "agent-001 revert 1.0.0", "agent-001 update 2.0.0"]
        agents = by_host(res.report())
        assert agents["agent-000"]["result"] == "reverted" and agents["agent-001"]["result"] == "reverted"
        assert agents["agent-002"]["result"] == "not_asked" and agents["agent-002"]["decision"] is None
        assert versions(sim)["agent-000"] == "1.0.0"
