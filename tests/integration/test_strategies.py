"""Integration: the update policy and the rolling / blue-green strategies against fleetsim.

Real ansible-playbook runs against real HTTP agents served by fleetsim on loopback; what the
agents went through is read from fleetsim's request and lifecycle log.
"""

from __future__ import annotations

import time

from conftest import run_playbook
from fleetsim.testing import FleetSim
from test_canary import asked_hosts, by_host, fleet, posts, rollout_vars, run, versions


def down_intervals(sim):
    """Per agent, the spans it was not serving: from drain_started (cognitive_state shutdown, then gone) to started."""
    spans = []
    open_at = {}
    for e in sorted(sim.log(), key=lambda e: e["seq"]):
        if e.get("event") == "drain_started":
            open_at.setdefault(e["occurrence"], e["ts"])
        elif e.get("event") == "started" and e["occurrence"] in open_at:
            spans.append((open_at.pop(e["occurrence"]), e["ts"], e["occurrence"]))
    spans += [(t, float("inf"), name) for name, t in open_at.items()]
    return spans


def most_down_at_once(spans):
    points = sorted([(a, 1) for a, b, n in spans] + [(b, -1) for a, b, n in spans], key=lambda p: (p[0], p[1]))
    now = peak = 0
    for dummy, step in points:
        now += step
        peak = max(peak, now)
    return peak


def promote(sim, tmp_path, **extra):
    v = rollout_vars(tmp_path, **extra)
    del v["rollout_target_version"]
    return run_playbook("agentfleet.rollout.promote", tmp_path, inventory=sim.inventory_path, extra_vars=v,
                        report_path=tmp_path / "report.json", timeout=240)


def test_canary_count_stops_after_the_canary_wave_and_promote_finishes(tmp_path):
    with FleetSim(config=fleet(6), workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_canary=2)
        assert res.rc == 0, res.output
        assert "wave 1/2 canary: 2 agents" in res.output
        assert "awaiting promotion" in res.output and "agentfleet.rollout.promote" in res.output
        report = res.report()
        assert report["status"] == "staged"
        assert sorted(asked_hosts(sim)) == ["agent-000", "agent-001"]
        agents = by_host(report)
        assert [agents[h]["result"] for h in ("agent-000", "agent-001")] == ["updated", "updated"]
        assert all(agents[h]["result"] == "pending" for h in agents if h not in ("agent-000", "agent-001"))
        # a rerun of the same canary does not go past the canary wave
        again = run(sim, tmp_path, rollout_canary=2)
        assert again.rc == 0, again.output
        assert len(posts(sim)) == 2
        prom = promote(sim, tmp_path)
        assert prom.rc == 0, prom.output
        report = prom.report()
        assert report["status"] == "completed"
        assert len(posts(sim)) == 6  # the canaries were not asked again
        assert set(versions(sim).values()) == {"2.0.0"}


def test_canary_count_with_auto_promote_rolls_on(tmp_path):
    with FleetSim(config=fleet(5), workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_canary=1, rollout_auto_promote=True)
        assert res.rc == 0, res.output
        assert res.report()["status"] == "completed"
        assert [(w["name"], w["summary"]["size"]) for w in res.report()["waves"]] == [("canary", 1), ("rest", 4)]


def test_rolling_max_parallel_two_never_has_more_than_two_agents_down(tmp_path):
    with FleetSim(config=fleet(7, boot_seconds=0.3), workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, playbook="agentfleet.rollout.rolling", rollout_max_parallel=2)
        assert res.rc == 0, res.output
        report = res.report()
        assert report["status"] == "completed" and report["strategy"] == "rolling"
        assert [(w["name"], w["summary"]["size"]) for w in report["waves"]] == [
            ("batch-1", 2), ("batch-2", 2), ("batch-3", 2), ("batch-4", 1)]
        assert set(versions(sim).values()) == {"2.0.0"}
        spans = down_intervals(sim)
        assert sorted(n for a, b, n in spans) == sorted(by_host(report))
        assert all(b < float("inf") for a, b, n in spans)
        assert most_down_at_once(spans) == 2


CANARY_2 = [{"name": "canary", "count": 2}, {"name": "rest", "rest": True}]


def test_progress_deadline_fails_a_stalled_gate_and_reverts(tmp_path):
    # The progress deadline (3.5 s) is longer than the healthy deadline (3 s), as it must be, but the wave spent
    # >= 1.5 s waiting for its canaries to stop: the gate, which alone would wait until >= 4.5 s, is cut at 3.5 s.
    # agent-000 never becomes healthy on the new version.
    slow = {"shutdown_exit_seconds": 1.5}
    cfg = fleet(5, overrides={"agent-000": dict(slow, unhealthy_after_update=True, unhealthy_mode="stuck_wakeup"),
                              "agent-001": slow})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        started = time.monotonic()
        res = run(sim, tmp_path, rollout_cohorts=CANARY_2, rollout_healthy_deadline=3, rollout_progress_deadline=3.5,
                  rollout_auto_revert=True)
        took = time.monotonic() - started
        assert res.rc != 0, res.output
        assert took < 60, took
        assert "wave 1 (canary) failed:" in res.output
        assert "no progress within rollout_progress_deadline (3.5s)" in res.output
        report = res.report()
        assert report["status"] == "failed"
        agents = by_host(report)
        assert agents["agent-000"]["result"] == "reverted" and agents["agent-001"]["result"] == "reverted"
        assert versions(sim)["agent-000"] == "1.0.0" and versions(sim)["agent-001"] == "1.0.0"
        assert sorted(asked_hosts(sim)) == ["agent-000", "agent-001"]  # the rest never asked
        # each canary started on 2.0.0 by the update tasks, then put back on 1.0.0 by the revert
        assert [s["body"]["version"] for s in sim.log(event="sim_start")] == ["2.0.0"] * 2 + ["1.0.0"] * 2


def test_progress_deadline_fails_agents_that_never_stop(tmp_path):
    # agent-001 accepts but never stops; the stop timeout alone would wait 120 s
    cfg = fleet(4, overrides={"agent-001": {"stuck_on_shutdown": True}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        started = time.monotonic()
        res = run(sim, tmp_path, rollout_cohorts=CANARY_2, rollout_stop_timeout=120, rollout_healthy_deadline=2,
                  rollout_progress_deadline=3, rollout_auto_revert=True)
        took = time.monotonic() - started
        assert res.rc != 0, res.output
        assert took < 60, took
        report = res.report()
        assert report["status"] == "failed"
        agents = by_host(report)
        assert agents["agent-001"]["result"] == "failed"
        assert "no progress within rollout_progress_deadline (3s)" in agents["agent-001"]["detail"]
        # the canary that did stop and was updated goes back; agent-001 was never touched
        assert agents["agent-000"]["result"] == "reverted" and versions(sim)["agent-000"] == "1.0.0"
        started_names = [n for s in sim.log(event="sim_start") for n in s["body"]["occurrences"]]
        assert "agent-001" not in started_names
        assert sim.violations(occurrence="agent-001")["count"] == 0
        assert sorted(asked_hosts(sim)) == ["agent-000", "agent-001"]


def test_health_check_agent_states_ignores_the_health_checks(tmp_path):
    # every agent reports status degraded on the new version, in cognitive_state work
    cfg = fleet(3, unhealthy_after_update=True)
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_cohorts="all", rollout_health_check="agent_states")
        assert res.rc == 0, res.output
        assert res.report()["status"] == "completed"
        assert set(versions(sim).values()) == {"2.0.0"}
    with FleetSim(config=cfg, workdir=tmp_path / "sim2") as sim:
        res = run(sim, tmp_path, rollout_cohorts="all", rollout_healthy_deadline=1.5, rollout_state_path=str(tmp_path / "s2.db"))
        assert res.rc != 0
        assert "status degraded" in res.output


def serving_capacity(sim, names):
    """The lowest number of serving instances over the run, from fleetsim's log: a primary serves until it starts
    draining and again once started (or promoted); a candidate from its first healthy answer until it is promoted
    (then its primary serves) or discarded."""
    primary = dict.fromkeys(names, True)
    candidate = dict.fromkeys(names, False)
    lowest = len(names)
    for e in sorted(sim.log(), key=lambda e: e["seq"]):
        occ, event = e.get("occurrence") or "", e.get("event")
        if occ.endswith("@candidate"):
            base = occ[:-len("@candidate")]
            if event == "health" and e.get("health_status") == "healthy" and e.get("cognitive_state") == "work":
                candidate[base] = True
        elif occ in primary:
            if event in ("drain_started", "exited"):
                primary[occ] = False
            elif event == "started":
                primary[occ] = True
            elif event == "candidate_promoted":
                # one move: the candidate's instance serves at the primary's address from now on
                candidate[occ], primary[occ] = False, True
            elif event == "candidate_discarded":
                candidate[occ] = False
        lowest = min(lowest, sum(primary.values()) + sum(candidate.values()))
    return lowest


def test_blue_green_never_drops_serving_capacity_below_the_fleet_size(tmp_path):
    cfg = fleet(6, boot_seconds=0.3, overrides={"agent-004": {"decision": "reject"}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, playbook="agentfleet.rollout.blue_green", rollout_max_parallel=2)
        assert res.rc == 0, res.output
        report = res.report()
        assert report["strategy"] == "blue_green"
        agents = by_host(report)
        assert agents["agent-004"]["result"] == "rejected"
        assert all(a["result"] == "updated" for h, a in agents.items() if h != "agent-004")
        v = versions(sim)
        assert v["agent-004"] == "1.0.0" and all(v[h] == "2.0.0" for h in v if h != "agent-004")
        assert serving_capacity(sim, list(v)) >= 6
        # every primary was asked only after its candidate answered healthy, and no candidate is left
        for name in v:
            healthy = [e["ts"] for e in sim.log(occurrence=name + "@candidate", event="health")
                       if e.get("health_status") == "healthy"]
            asked = [e["ts"] for e in posts(sim, name)]
            assert healthy and asked and min(asked) > min(healthy), name
        assert sim.candidates() == []
        assert sim.violations()["count"] == 0
        assert [e["occurrence"] for e in sim.log(event="candidate_discarded")] == ["agent-004"]


def test_blue_green_candidates_that_fail_their_gate_ask_nobody(tmp_path):
    cfg = fleet(4, overrides={"agent-001": {"unhealthy_after_update": True}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, playbook="agentfleet.rollout.blue_green", rollout_max_parallel=2,
                  rollout_healthy_deadline=2)
        assert res.rc != 0
        assert "the candidates failed their health gate: 1 of 2 stable, 2 required" in res.output
        assert posts(sim) == []
        assert set(versions(sim).values()) == {"1.0.0"}
        assert sim.candidates() == []
        assert res.report()["status"] == "failed"
        assert serving_capacity(sim, list(versions(sim))) >= 4


def test_blue_green_needs_a_driver_that_starts_candidates(tmp_path):
    with FleetSim(config=fleet(2), workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, playbook="agentfleet.rollout.blue_green", rollout_driver="none")
        assert res.rc != 0
        assert "rollout_driver: the blue-green strategy needs a driver that can start a candidate" in res.output
        assert posts(sim) == []
        assert not (tmp_path / "state.db").exists()


def test_blue_green_tasks_driver_refuses_a_canary_waiting_for_promotion(tmp_path):
    with FleetSim(config=fleet(3), workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, playbook="agentfleet.rollout.blue_green", rollout_canary=1)
        assert res.rc != 0
        assert "rollout_auto_promote: a blue-green canary with the tasks driver cannot wait for promotion" in res.output
        assert posts(sim) == [] and not (tmp_path / "state.db").exists()
        res = run(sim, tmp_path, playbook="agentfleet.rollout.blue_green", rollout_candidate_tasks=str(tmp_path / "nope.yml"))
        assert res.rc != 0 and "rollout_candidate_tasks, rollout_retire_tasks:" in res.output
