# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration: per-agent tokens. Agents that each accept only their own token
(two simulated fleets with different tokens, one inventory), rolled by the real
canary playbook with the tasks driver: every agent is asked with its own token,
none is refused, and no token shows anywhere the run wrote."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ansible_env, run_playbook
from fleetsim.testing import FleetSim, Supervisor
from test_canary import SHUTDOWN, rollout_vars

TOKEN_A = "tok-fleet-a-3b8d0e"
TOKEN_B = "tok-fleet-b-9a41c7"


def inventory(tmp_path: Path, sims: dict) -> Path:
    """One inventory over both fleets; each host's token comes from an environment lookup (as from Vault)."""
    hosts = {}
    for env_name, sim in sims.items():
        for name, host in sim.hosts().items():
            hosts[name] = dict(host, fleetsim_control_url=sim.control_url,
                               rollout_token="{{ lookup('ansible.builtin.env', '%s') }}" % env_name)
    inv = {"all": {"vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
                   "children": {"agents": {"hosts": hosts}}}}
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps(inv))
    return path


def written_files(root: Path, skip: tuple) -> list:
    return [p for p in root.rglob("*") if p.is_file() and not any(s in p.parents or p == s for s in skip)]


def test_each_agent_is_asked_with_its_own_token(tmp_path):
    fleet_a = {"agents": [{"count": 2, "name_prefix": "a-"}]}
    fleet_b = {"agents": [{"count": 2, "name_prefix": "b-"}]}
    with FleetSim(config=fleet_a, token=TOKEN_A, workdir=tmp_path / "sim-a") as sim_a, \
            FleetSim(config=fleet_b, token=TOKEN_B, workdir=tmp_path / "sim-b") as sim_b:
        inv = inventory(tmp_path, {"AGENT_TOKEN_A": sim_a, "AGENT_TOKEN_B": sim_b})
        env = ansible_env(tmp_path, AGENT_TOKEN_A=TOKEN_A, AGENT_TOKEN_B=TOKEN_B)
        env.pop("AGENTFLEET_TOKEN", None)
        res = run_playbook("agentfleet.rollout.canary", tmp_path, inventory=inv, env=env, timeout=240,
                           report_path=tmp_path / "report.json",
                           extra_vars=rollout_vars(tmp_path))
        assert res.rc == 0, res.output
        for sim, names in ((sim_a, {"a-000", "a-001"}), (sim_b, {"b-000", "b-001"})):
            asked = sim.log(path=SHUTDOWN, method="POST")
            assert {e["occurrence"] for e in asked} == names
            assert {e["auth"] for e in asked} == {"ok"}, asked
            assert {e["status"] for e in asked} == {200}
        report = res.report()
        assert report["status"] == "completed", report
        assert {a["result"] for a in report["agents"]} == {"updated"}, report["agents"]
        assert sorted(a["host"] for a in report["agents"]) == ["a-000", "a-001", "b-000", "b-001"]
        # the tokens are nowhere: output, report, state, audit, ansible's own files (the simulators' are theirs)
        assert TOKEN_A not in res.output and TOKEN_B not in res.output
        for path in written_files(tmp_path, (tmp_path / "sim-a", tmp_path / "sim-b")):
            data = path.read_bytes()
            assert TOKEN_A.encode() not in data and TOKEN_B.encode() not in data, path


def test_a_host_without_its_own_token_never_gets_another_agents(tmp_path):
    """The first host of the batch has a token of its own; the next has none and there is no play-level
    token: it is asked without a token (401: the rollout stops, saying so), never with the other agent's."""
    with FleetSim(config={"agents": [{"count": 2, "name_prefix": "a-"}]}, token=TOKEN_A,
                  workdir=tmp_path / "sim-a") as sim:
        hosts = sim.hosts()
        hosts["a-000"]["rollout_token"] = "{{ lookup('ansible.builtin.env', 'AGENT_TOKEN_A') }}"
        inv = {"all": {"vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}",
                                "fleetsim_control_url": sim.control_url},
                       "children": {"agents": {"hosts": hosts}}}}
        (tmp_path / "inventory.yml").write_text(json.dumps(inv))
        env = ansible_env(tmp_path, AGENT_TOKEN_A=TOKEN_A)
        env.pop("AGENTFLEET_TOKEN", None)
        res = run_playbook("agentfleet.rollout.canary", tmp_path, inventory=tmp_path / "inventory.yml", env=env,
                           timeout=240, extra_vars=rollout_vars(tmp_path, rollout_cohorts="all"))
        assert res.rc != 0, res.output
        assert "authentication failed" in res.output
        auth = {e["occurrence"]: e["auth"] for e in sim.log(path=SHUTDOWN, method="POST")}
        assert auth == {"a-000": "ok", "a-001": "none"}
        assert TOKEN_A not in res.output


def test_none_driver_asks_the_next_wave_ahead_with_each_of_its_agents_own_token(tmp_path):
    """Issue 20's ask-ahead: a passed wave asks the next wave's agents from its own call. Those agents are not
    in the batch, yet each is asked with its own token (read from its host's variables), none is refused,
    and none is left failed as unauthorized."""
    ciris = {"consent": "ciris", "decide_seconds": 0.1, "drain_seconds": 0.3}
    fleet_a = {"defaults": ciris, "agents": [{"count": 2, "name_prefix": "a-"}]}
    fleet_b = {"defaults": ciris, "agents": [{"count": 2, "name_prefix": "b-"}]}
    with FleetSim(config=fleet_a, token=TOKEN_A, workdir=tmp_path / "sim-a") as sim_a, \
            FleetSim(config=fleet_b, token=TOKEN_B, workdir=tmp_path / "sim-b") as sim_b, \
            Supervisor(sim_a, "2.0.0"), Supervisor(sim_b, "2.0.0"):
        inv = inventory(tmp_path, {"AGENT_TOKEN_A": sim_a, "AGENT_TOKEN_B": sim_b})
        env = ansible_env(tmp_path, AGENT_TOKEN_A=TOKEN_A, AGENT_TOKEN_B=TOKEN_B)
        env.pop("AGENTFLEET_TOKEN", None)
        # the first wave holds a-000 only (hosts sorted by name): the second wave, asked ahead, holds both fleets'
        # agents
        res = run_playbook("agentfleet.rollout.canary", tmp_path, inventory=inv, env=env, timeout=240,
                           report_path=tmp_path / "report.json",
                           extra_vars=rollout_vars(tmp_path, rollout_driver="none",
                                                   rollout_cohorts=[{"name": "first", "count": 1},
                                                                    {"name": "rest", "rest": True}]))
        assert res.rc == 0, res.output
        assert "wave 2 (rest) asked ahead as wave 1 passed: 3 of 3 agents asked" in res.output, res.output
        for sim, names in ((sim_a, {"a-000", "a-001"}), (sim_b, {"b-000", "b-001"})):
            asked = sim.log(path=SHUTDOWN, method="POST")
            assert sorted(e["occurrence"] for e in asked) == sorted(names)
            assert {e["auth"] for e in asked} == {"ok"}, asked
        report = res.report()
        assert report["status"] == "completed", report
        assert {a["result"] for a in report["agents"]} == {"updated"}, report["agents"]
        assert TOKEN_A not in res.output and TOKEN_B not in res.output
