"""Integration: the update policy and the rolling / blue-green strategies against fleetsim.

Real ansible-playbook runs against real HTTP agents served by fleetsim on loopback; what the
agents went through is read from fleetsim's request and lifecycle log.
"""

from __future__ import annotations

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
    for _, step in points:
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
