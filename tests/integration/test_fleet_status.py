"""Issue 21 item 6: ``agentfleet.rollout.status -e rollout_live=true`` probes every agent at once and prints the
version spread (version -> count), the cognitive states and who does not answer, with a deployment on record or
without any, and never asks or records anything."""

from __future__ import annotations

import re

from fleetsim.testing import FleetSim
from userpath import TOKEN, fleet, run


def spread(output):
    """``{version: count}`` from the printed lines."""
    return dict((v, int(n)) for v, n in re.findall(r"version (\S+)\s+(\d+)\s+[\d.]+ %", output))


def test_live_status_without_a_deployment_counts_versions_states_and_the_unreachable(tmp_path):
    overrides = {"agent-004": {"version": "2.0.0"}, "agent-005": {"version": "2.0.0"}}
    with FleetSim(config=fleet(6, overrides=overrides), workdir=tmp_path / "sim", token=TOKEN) as sim:
        sim.stop(["agent-003"])
        res = run(sim, tmp_path, "status", token=TOKEN, rollout_live=True)
        assert res.rc == 0, res.output[-4000:]
        assert "no deployment of agents on record" in res.output, res.output[-3000:]
        assert "fleet now: 6 agents, 5 healthy, 1 unreachable" in res.output, res.output[-3000:]
        assert spread(res.output) == {"1.0.0": 3, "2.0.0": 2, "unreachable": 1}, res.output[-3000:]
        assert "states: work 5, unreachable 1" in res.output
        assert "unreachable: agent-003" in res.output
        assert TOKEN not in res.output
        assert sim.log(event="shutdown_requested") == [], "the status asked an agent"
        assert not (tmp_path / "state.db").exists(), "the status created the state file"
        # without rollout_live nothing is probed
        before = len(sim.log())
        quiet = run(sim, tmp_path, "status", token=TOKEN)
        assert quiet.rc == 0, quiet.output[-3000:]
        assert "fleet now" not in quiet.output
        assert not [e for e in sim.log()[before:] if e.get("path", "").endswith("/health")]


def test_live_status_after_a_deployment_counts_the_agents_on_its_target(tmp_path):
    with FleetSim(config=fleet(4), workdir=tmp_path / "sim", token=TOKEN) as sim:
        deployed = run(sim, tmp_path, "canary", token=TOKEN, rollout_cohorts="all")
        assert deployed.rc == 0, deployed.output[-4000:]
        # an agent went back to 1.0.0 after the deployment (someone restarted it by hand)
        sim.start_occurrences(["agent-002"], version="1.0.0")
        res = run(sim, tmp_path, "status", token=TOKEN, rollout_live=True)
        assert res.rc == 0, res.output[-4000:]
        assert "completed" in res.output
        assert spread(res.output) == {"2.0.0": 3, "1.0.0": 1}, res.output[-3000:]
        assert "on 2.0.0: 3 of 4; not yet: agent-002" in res.output, res.output[-3000:]
