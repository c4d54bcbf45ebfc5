# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration: docs/examples/compose.yml (wave_split, notify, health_gate used on their own) against fleetsim.

The example playbook from the docs runs as users would run it, with the installed collection,
against real HTTP agents served by fleetsim; fleetsim's request log says who was asked what.
"""

from __future__ import annotations

from pathlib import Path

from conftest import REPO, ansible_env, run_playbook
from fleetsim.testing import FleetSim

EXAMPLE = REPO / "docs" / "examples" / "compose.yml"
SHUTDOWN = "/v1/system/shutdown"
TOKEN = "compose-s3cr3t-token-7d1e"
# wave_split's ciris preset with the sorted method, over agent-000 .. agent-009
WAVE_OF = {"agent-000": 1, "agent-001": 2, "agent-002": 2, "agent-003": 2, "agent-004": 3, "agent-005": 3,
           "agent-006": 3, "agent-007": 3, "agent-008": 4, "agent-009": 4}


def fleet(overrides=None):
    group = {"count": 10, "name_prefix": "agent-"}
    if overrides:
        group["overrides"] = overrides
    return {"agents": [group]}


def compose(sim, tmp_path: Path, check=False, args=None, **extra):
    extra_vars = {"target_version": "2.0.0", "update_tasks": str(REPO / "fleetsim" / "ansible" / "compose-update.yml"),
                  "min_healthy_time": 0, "poll_interval": 0.1, "healthy_deadline": 8}
    extra_vars.update(extra)
    env = ansible_env(tmp_path, AGENTFLEET_TOKEN=TOKEN)
    return run_playbook(str(EXAMPLE), tmp_path, inventory=sim.inventory_path, extra_vars=extra_vars, check=check,
                        env=env, args=args, timeout=240)


def asked(sim):
    return [e["occurrence"] for e in sim.log(path=SHUTDOWN, method="POST")]


def started(sim):
    return [(sorted(e["body"]["occurrences"]), e["body"]["version"]) for e in sim.log(event="sim_start")]


def versions(sim):
    return {n: (o.get("health") or {}).get("version") for n, o in sim.occurrences().items()}


def test_every_agent_is_asked_once_and_updated_wave_by_wave(tmp_path):
    with FleetSim(config=fleet(), workdir=tmp_path / "sim", token=TOKEN) as sim:
        dry = compose(sim, tmp_path, check=True)
        assert dry.rc == 0, dry.output
        assert "wave 4 conservatives: 2" in dry.output  # the plan
        assert asked(sim) == [] and started(sim) == []

        res = compose(sim, tmp_path)
        assert res.rc == 0, res.output
        sent = sim.log(path=SHUTDOWN, method="POST")
        assert sorted(e["occurrence"] for e in sent) == sorted(WAVE_OF)  # every agent, once
        assert all(e["auth"] == "ok" and e["status"] == 200 for e in sent)
        assert {e["body"]["deployment_id"] for e in sent} == {"compose-2.0.0"}
        assert {e["body"]["target_version"] for e in sent} == {"2.0.0"}
        waves = [WAVE_OF[e["occurrence"]] for e in sent]
        assert waves == sorted(waves)  # no agent asked before the wave before it was through its gate
        # a later wave's notice tells how the earlier waves went
        later = [e["body"]["reason"] for e in sent if e["occurrence"] == "agent-008"][0]
        assert "explorers: 1/1 healthy on 2.0.0" in later and "pragmatists: 4/4 healthy on 2.0.0" in later
        # the update step started each wave's accepting agents, one call per wave, in order
        assert started(sim) == [
            (["agent-000"], "2.0.0"),
            (["agent-001", "agent-002", "agent-003"], "2.0.0"),
            (["agent-004", "agent-005", "agent-006", "agent-007"], "2.0.0"),
            (["agent-008", "agent-009"], "2.0.0"),
        ]
        occurrences = sim.occurrences()
        assert all(o["updated"] and o["up"] for o in occurrences.values())
        assert set(versions(sim).values()) == {"2.0.0"}
        assert "every wave passed" in res.output
        assert TOKEN not in res.output

        again = compose(sim, tmp_path)  # everyone is on 2.0.0 already: nobody is asked or restarted
        assert again.rc == 0, again.output
        assert len(asked(sim)) == 10 and len(started(sim)) == 4
        assert "already on 2.0.0 2" in again.output  # wave 4's agents, skipped


def test_an_unhealthy_agent_fails_its_wave_and_stops_the_playbook(tmp_path):
    with FleetSim(config=fleet({"agent-000": {"unhealthy_after_update": True}}), workdir=tmp_path / "sim",
                  token=TOKEN) as sim:
        res = compose(sim, tmp_path, healthy_deadline=2)
        assert res.rc != 0, res.output
        assert "health gate failed: 0/1 stable, 1 required" in res.output
        assert "status degraded" in res.output  # the cause table
        assert asked(sim) == ["agent-000"]  # the explorers' gate failed: no later wave was asked
        assert started(sim) == [(["agent-000"], "2.0.0")]
        assert versions(sim)["agent-000"] == "2.0.0"
        assert all(v == "1.0.0" for name, v in versions(sim).items() if name != "agent-000")
        assert "every wave passed" not in res.output
        assert TOKEN not in res.output


def test_limit_keeps_the_other_agents_out(tmp_path):
    with FleetSim(config=fleet(), workdir=tmp_path / "sim", token=TOKEN) as sim:
        res = compose(sim, tmp_path, args=["--limit", "agent-002,agent-009"])
        assert res.rc == 0, res.output
        assert asked(sim) == ["agent-002", "agent-009"]
        assert started(sim) == [(["agent-002"], "2.0.0"), (["agent-009"], "2.0.0")]
        assert {n for n, v in versions(sim).items() if v == "2.0.0"} == {"agent-002", "agent-009"}
