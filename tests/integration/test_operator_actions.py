"""Integration: an operator's pause or fail from another process while a tasks-driver rollout runs, with the local
state file and with the s3:// state (moto server), against agents that answer like real CIRIS agents.

The rollout leaves the deployment paused (or failed) with every agent up; resume finishes a paused one; nobody is
asked twice; nothing is started that had not stopped (fleetsim's violations stay at 0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ansible_env, run_playbook
from fleetsim.testing import FleetSim
from helpers import wait_for
from motoserver import MotoServer

SHUTDOWN = "/v1/system/shutdown"
UPDATE_TASKS = """\
- name: Start the agent on the version (fleetsim's control port, as a container recreate would)
  ansible.builtin.uri:
    url: "{{ fleetsim_control_url }}/_sim/start"
    method: POST
    body_format: json
    body: {occurrences: ["{{ inventory_hostname }}"], version: "{{ rollout_update_version }}"}
  delegate_to: localhost
"""


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    with MotoServer(tmp_path_factory.mktemp("moto")) as server:
        yield server


def shutdown_requests(sim):
    counts = {}
    for e in sim.log(path=SHUTDOWN, method="POST"):
        counts[e["occurrence"]] = counts.get(e["occurrence"], 0) + 1
    return counts


@pytest.mark.parametrize("backend", ["local", "s3"])
@pytest.mark.parametrize("action", ["pause", "fail"])
def test_an_operator_action_mid_rollout_leaves_every_agent_up(tmp_path, request, backend, action):
    env = ansible_env(tmp_path)
    if backend == "s3":
        moto = request.getfixturevalue("moto")
        bucket = moto.bucket("operator-%s-%d" % (action, os.getpid()))
        env.update(moto.env())
        state = "s3://%s/agentfleet/prod" % bucket
    else:
        state = str(tmp_path / "state.db")
    tasks = tmp_path / "update.yml"
    tasks.write_text(UPDATE_TASKS)
    # explorers (1 agent) drain 3 s: the operator acts while the first wave waits for them
    config = {"defaults": {"consent": "ciris", "decide_seconds": 0.2, "drain_seconds": 0.5},
              "agents": [{"count": 6, "name_prefix": "agent-", "overrides": {"agent-000": {"drain_seconds": 3}}}]}
    with FleetSim(config=config, workdir=tmp_path / "sim") as sim:
        common = {"rollout_driver": "tasks", "rollout_update_tasks": str(tasks), "rollout_state_path": state,
                  "rollout_min_healthy_time": 0.3, "rollout_poll_interval": 0.1, "rollout_healthy_deadline": 30,
                  "rollout_report_path": str(tmp_path / "report.json"), "rollout_allow_insecure_http": True,
                  "rollout_canary": 1, "rollout_auto_promote": True}
        varfile = tmp_path / "run-vars.json"
        varfile.write_text(json.dumps(dict(common, rollout_target_version="2.0.0")))
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "agentfleet.rollout.canary", "-i",
               str(sim.inventory_path), "-e", "@" + str(varfile)]
        with open(tmp_path / "run-output.txt", "w") as out:
            proc = subprocess.Popen(cmd, cwd=str(tmp_path), env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: shutdown_requests(sim), 60, "the first wave asked")
            op = run_playbook("agentfleet.rollout." + action, tmp_path, inventory=sim.inventory_path, env=env,
                              extra_vars=dict(common, rollout_deployment_id="deploy-agents-2.0.0",
                                              rollout_reason="operator test"))
            assert op.rc == 0, op.output
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        output = (tmp_path / "run-output.txt").read_text()
        # every agent is up: the one that stopped for the first wave was started again in the same run
        occurrences = sim.occurrences()
        down = [name for name, occ in occurrences.items() if occ.get("phase") == "down" or not occ.get("up", True)]
        assert down == [], output
        assert shutdown_requests(sim) == {"agent-000": 1}, output
        info = run_playbook("agentfleet.rollout.status", tmp_path, inventory=sim.inventory_path, env=env,
                            extra_vars=dict(common, rollout_deployment_id="deploy-agents-2.0.0"))
        assert info.rc == 0, info.output
        if action == "pause":
            assert proc.returncode == 0, output
            assert "is paused" in output and "paused" in info.output
            assert occurrences["agent-000"]["version"] == "2.0.0"
            res = run_playbook("agentfleet.rollout.resume", tmp_path, inventory=sim.inventory_path, env=env,
                               extra_vars=dict(common, rollout_deployment_id="deploy-agents-2.0.0"),
                               report_path=tmp_path / "report.json")
            assert res.rc == 0, res.output
            assert res.report()["status"] == "completed"
            assert all(occ["version"] == "2.0.0" for occ in sim.occurrences().values())
            assert set(shutdown_requests(sim).values()) == {1} and len(shutdown_requests(sim)) == 6
        else:
            assert proc.returncode != 0, output
            assert "failed by an operator" in output or "failed" in info.output
            # started again on the target (it consented) and nobody of the later wave asked
            assert occurrences["agent-000"]["version"] == "2.0.0"
            assert all(occ["version"] == "1.0.0" for name, occ in occurrences.items() if name != "agent-000")
        assert sim.control("GET", "/_sim/violations")["count"] == 0
