"""Issue 19, "Why": the six symptoms a new user meets, each as a test on the user's path.

Every test runs the real playbooks with ``rollout_driver=tasks`` and a task file that starts the agent on
``rollout_update_version`` through fleetsim's control port (tests/integration/files/fleetsim-update.yml),
against agents that answer like ciris-agent 2.16.5 (fleetsim ``consent: ciris``: 200 "initiated", the decision
shown only by stopping or not). Timing is read from fleetsim's lifecycle log (``exited`` -> ``started`` per
occurrence), never asserted on the run's wall clock: (4)'s 120 s subprocess timeout is the failure signal of a
rerun that waits ``rollout_stop_timeout`` (600 s) for agents already working on the target.
"""

from __future__ import annotations

import subprocess

import pytest

from fleetsim.testing import FleetSim
from userpath import (CANDIDATE_TASKS, FILES, TOKEN, asked, by_host, deliberations, down, downtimes, fleet, kill9, lifecycle_op, records,
                      run, start_background, states)
from helpers import wait_for

TWO_WAVES = [{"name": "canary", "count": 2}, {"name": "rest", "rest": True}]


def settled(sim):
    """No occurrence is still deciding or draining (a stuck one counts as working)."""
    return all(o["phase"] in ("working", "down") for o in sim.occurrences().values())


def test_1_check_mode_of_a_tasks_driver_canary_prints_the_plan_and_asks_nobody(tmp_path):
    with FleetSim(config=fleet(6), workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, check=True, rollout_cohorts=[{"name": "canary", "count": 1},
                                                              {"name": "rest", "rest": True}])
        assert res.rc == 0, res.output[-4000:]
        assert "wave canary: 1" in res.output and "wave rest: 5" in res.output, res.output[-4000:]
        assert sim.log(event="shutdown_requested") == [], "check mode asked an agent"
        assert sim.log(event="sim_start") == [] and sim.log(event="started") == []
        assert set(states(sim).values()) == {(True, "1.0.0")}
        assert not (tmp_path / "state.db").exists() and not (tmp_path / "report.json").exists()


def test_2_pause_from_a_second_process_then_resume_finishes(tmp_path):
    with FleetSim(config=fleet(6), workdir=tmp_path / "sim") as sim:
        # the canary wave's gate lasts 4 s of stability: the pause arrives while the wave runs
        proc = start_background(sim, tmp_path, rollout_cohorts=TWO_WAVES, rollout_min_healthy_time=4)
        try:
            wait_for(lambda: len(sim.log(event="shutdown_requested")) >= 2, 120, "the first wave's agents asked")
            paused = lifecycle_op(tmp_path, "pause")
            assert paused.rc == 0, paused.output[-3000:]
            proc.wait(240)
        finally:
            if proc.poll() is None:
                kill9(proc)
        out = proc.out_path.read_text()
        assert proc.returncode == 0, out[-5000:]
        assert records(tmp_path) == {1: "paused"}, out[-5000:]
        wait_for(lambda: settled(sim), 30, "no agent deciding or draining")
        assert down(sim) == [], "agents left down by the pause: %s" % down(sim)
        resumed = run(sim, tmp_path, "resume", rollout_cohorts=TWO_WAVES)
        assert resumed.rc == 0, resumed.output[-5000:]
        assert records(tmp_path) == {1: "completed"}
        assert set(states(sim).values()) == {(True, "2.0.0")}
        assert deliberations(sim) == {n: 1 for n in states(sim)}
        assert sim.violations()["count"] == 0


def test_3_a_401_in_mid_wave_leaves_no_agent_down(tmp_path):
    cfg = fleet(4, overrides={"agent-002": {"reject_token": True}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim", token=TOKEN) as sim:
        res = run(sim, tmp_path, token=TOKEN,
                  rollout_cohorts=[{"name": "canary", "count": 1}, {"name": "rest", "rest": True}])
        assert res.rc != 0, res.output[-4000:]
        assert TOKEN not in res.output
        wait_for(lambda: settled(sim), 30, "no agent deciding or draining")
        assert down(sim) == [], "agents that stopped for the update were left down: %s\n%s" % (
            down(sim), res.output[-3000:])
        agents = by_host(res.report())
        assert agents["agent-002"]["result"] != "updated"
        stopped = sorted({e["occurrence"] for e in sim.log(event="exited")})
        assert stopped, "nobody stopped: the test did not reach the 401 mid wave"
        for name in stopped:
            a = agents[name]
            assert a["result"] == "updated" or "started again on" in (a.get("detail") or ""), a
        assert sim.violations()["count"] == 0


def test_3_a_401_in_mid_wave_with_a_failing_update_leaves_no_agent_down(tmp_path):
    # the same 401 (agent-002), and agent-000's update tasks fail: the wave stops early (no gate), yet agent-000,
    # which stopped because it was asked, goes back on 1.0.0 before the run ends
    tasks = tmp_path / "update.yml"
    tasks.write_text(
        "- name: A broken update on one agent (its revert works)\n"
        "  ansible.builtin.fail:\n    msg: image pull failed\n"
        "  when: inventory_hostname == 'agent-000' and rollout_update_purpose == 'update'\n"
        "- name: Start the agent\n"
        "  ansible.builtin.include_tasks: " + str(FILES / "fleetsim-update.yml") + "\n")
    cfg = fleet(4, overrides={"agent-002": {"reject_token": True}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim", token=TOKEN) as sim:
        res = run(sim, tmp_path, token=TOKEN, rollout_update_tasks=str(tasks), rollout_cohorts="all")
        assert res.rc != 0, res.output[-4000:]
        assert "authentication failed" in res.output
        wait_for(lambda: settled(sim), 30, "no agent deciding or draining")
        assert down(sim) == [], "agents that stopped for the update were left down: %s\n%s" % (
            down(sim), res.output[-3000:])
        agents = by_host(res.report())
        assert agents["agent-000"]["result"] == "reverted", agents["agent-000"]
        assert "image pull failed" in agents["agent-000"]["detail"]
        assert "started again on its previous version 1.0.0" in agents["agent-000"]["detail"]
        assert states(sim)["agent-000"] == (True, "1.0.0")
        assert sim.violations()["count"] == 0


def test_4_rerun_after_kill9_between_the_starts_and_their_results_does_not_wait_for_the_stop_timeout(tmp_path):
    hold = tmp_path / "hold"
    hold.mkdir()
    with FleetSim(config=fleet(4), workdir=tmp_path / "sim") as sim:
        proc = start_background(sim, tmp_path, rollout_cohorts=TWO_WAVES, fleetsim_update_hold_dir=str(hold))
        try:
            # deterministic point: both canary agents run 2.0.0 (their update tasks started them) and the
            # tasks are held before the wave's results are written
            wait_for(lambda: len(list(hold.glob("started-*"))) == 2,
                     120, "the canary wave's agents started on 2.0.0")
            started = sorted(p.name[len("started-"):] for p in hold.glob("started-*"))
            assert all(states(sim)[n] == (True, "2.0.0") for n in started)
        finally:
            kill9(proc)
        (hold / "release").write_text("")
        try:
            # rollout_stop_timeout left at its default (600 s): a rerun that waits for these agents to stop
            # would run into this timeout
            res = run(sim, tmp_path, rollout_cohorts=TWO_WAVES, fleetsim_update_hold_dir=str(hold), timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("the rerun did not end within 120 s: it waits for agents already working on the target")
        assert res.rc == 0, res.output[-5000:]
        assert res.report()["status"] == "completed"
        assert set(states(sim).values()) == {(True, "2.0.0")}
        assert asked(sim) == {n: 1 for n in states(sim)}, "an agent was asked twice"
        assert sim.violations()["count"] == 0


def test_4_blue_green_rerun_after_kill9_between_the_promotions_and_their_results(tmp_path):
    # the blue-green form of (4): the retire tasks promoted the candidates of the first wave (the agents answer
    # on 2.0.0 where the primaries ran) and the run is killed before their results are written. A rerun that
    # takes them for primaries still to stop waits rollout_stop_timeout (600 s) for agents that never stop
    hold = tmp_path / "hold"
    hold.mkdir()
    bg = {"rollout_max_parallel": 2, "rollout_candidate_tasks": str(CANDIDATE_TASKS),
          "rollout_retire_tasks": str(FILES / "fleetsim-retire.yml"), "fleetsim_retire_hold_dir": str(hold)}
    with FleetSim(config=fleet(4), workdir=tmp_path / "sim") as sim:
        proc = start_background(sim, tmp_path, "blue_green", **bg)
        try:
            wait_for(lambda: len(list(hold.glob("promoted-*"))) == 2, 120, "the first wave's candidates promoted")
            promoted = sorted(p.name[len("promoted-"):] for p in hold.glob("promoted-*"))
            assert all(states(sim)[n] == (True, "2.0.0") for n in promoted)
        finally:
            kill9(proc)
        (hold / "release").write_text("")
        try:
            res = run(sim, tmp_path, "blue_green", timeout=120, **bg)
        except subprocess.TimeoutExpired:
            pytest.fail("the rerun did not end within 120 s: it waits for promoted candidates to stop")
        assert res.rc == 0, res.output[-5000:]
        assert res.report()["status"] == "completed"
        assert set(states(sim).values()) == {(True, "2.0.0")}
        assert asked(sim) == {n: 1 for n in states(sim)}, "an agent was asked twice"
        results = by_host(res.report())
        assert all(results[n]["result"] == "updated" for n in states(sim)), results
        assert sim.violations()["count"] == 0


@pytest.mark.timing
@pytest.mark.parametrize("slow", ["drain_25s", "stuck_on_shutdown"])
def test_5_no_agent_waits_for_another(tmp_path, slow):
    setting = {"drain_seconds": 25} if slow == "drain_25s" else {"stuck_on_shutdown": True}
    with FleetSim(config=fleet(4, overrides={"agent-001": setting}), workdir=tmp_path / "sim") as sim:
        # a wave of four; a stuck agent is given up on after 30 s (it declined, by behaviour)
        res = run(sim, tmp_path, rollout_cohorts="all", rollout_stop_timeout=30 if slow != "drain_25s" else 600)
        assert res.rc == 0, res.output[-5000:]
        others = ["agent-000", "agent-002", "agent-003"]
        gaps = downtimes(sim)
        for name in others:
            # own stop (exited) -> own start: update tasks (0 s here) + 2 s; boot is 0
            assert gaps.get(name) and max(gaps[name]) <= 2.0, (
                "%s was down %.1f s: it waited for agent-001 (%s)" % (name, max(gaps.get(name) or [0]), slow))
        final = states(sim)
        assert all(final[n] == (True, "2.0.0") for n in others)
        if slow == "drain_25s":
            assert final["agent-001"] == (True, "2.0.0")
        else:
            assert final["agent-001"] == (True, "1.0.0")
            assert by_host(res.report())["agent-001"]["result"] == "declined"
        assert sim.violations()["count"] == 0


@pytest.mark.timing
def test_6_twenty_agents_each_started_as_soon_as_it_stopped(tmp_path):
    # drains spread from 0.5 to 6.5 s in every wave; the update task takes 1 s; forks 10. No timing of the
    # run: the per-agent pipeline bounds each agent's own exited -> started gap by the round in flight when it
    # stopped plus its own round (each ~ the update task + ~1 s of Ansible per round), never by the slowest agent
    # of its wave (waiting for it took 3.8-11.4 s here before the pipeline)
    overrides = {"agent-%03d" % i: {"drain_seconds": 0.5 + (i % 5) * 1.5} for i in range(20)}
    with FleetSim(config=fleet(20, overrides=overrides), workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, fleetsim_update_seconds=1, args=["--forks", "10"])
        assert res.rc == 0, res.output[-5000:]
        assert set(states(sim).values()) == {(True, "2.0.0")}
        gaps = downtimes(sim)
        late = {n: round(max(g), 1) for n, g in gaps.items() if max(g) > 2 * (1.0 + 1.0) + 1.0}
        assert late == {}, "agents left down waiting for slower agents of their wave: %s" % late
        assert deliberations(sim) == {n: 1 for n in states(sim)}
        assert sim.violations()["count"] == 0
