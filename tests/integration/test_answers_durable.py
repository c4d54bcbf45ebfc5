# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration: every answer is durable the moment it arrives; an agent stopped for us is never left down.

Real ``ansible-playbook`` runs against fleetsim on loopback. Issue 12, defects 4 and 3:

* a run killed (every process of it, SIGKILL) while one agent of the round hangs has already
  recorded the answers of the others: the resumed run asks nobody twice (fleetsim counts the asks);
* a wave that aborts while asking (one agent refuses the token) starts again the agents of that
  wave that had already accepted and stopped, says so, and a rerun finishes them.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import ansible_env, run_playbook
from fleetsim.testing import FleetSim
from helpers import wait_for
from test_canary import SHUTDOWN, fleet, rollout_vars
from test_kill import MARK, run_pids

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds a run's processes in /proc")

TOKEN = "tok-durable-5c1e77"


def asks(sim):
    """{occurrence: number of shutdown requests it received}."""
    out = {}
    for e in sim.log(path=SHUTDOWN, method="POST"):
        out[e["occurrence"]] = out.get(e["occurrence"], 0) + 1
    return out


def decisions(state_path):
    if not Path(state_path).exists():
        return {}
    db = sqlite3.connect(str(state_path), timeout=30)
    try:
        return dict(db.execute("SELECT host, decision FROM agents WHERE decision IS NOT NULL").fetchall())
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()


def start_marked(playbook, inventory, tmp_path, mark, extra_vars):
    varfile = tmp_path / ("vars-%s.json" % mark)
    varfile.write_text(json.dumps(extra_vars))
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), playbook, "-i", str(inventory), "-e", "@" + str(varfile)]
    with open(tmp_path / ("out-%s.txt" % mark), "w") as out:
        return subprocess.Popen(cmd, cwd=str(tmp_path), env=ansible_env(tmp_path, **{MARK: mark}), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def kill_everything(proc, mark):
    """SIGKILL every process of the run, the forked workers too (as a power cut would)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in run_pids(mark):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=10)
    wait_for(lambda: not run_pids(mark), 10, "every process of the killed run gone")


def test_answers_recorded_on_arrival_survive_a_kill_during_a_hanging_round(tmp_path):
    # one agent of the only wave hangs (its requests take a minute); the three others answer at once
    with FleetSim(config=fleet(4), workdir=tmp_path / "sim") as sim:
        sim.configure(["agent-003"], slow_ms=60000)
        extra = rollout_vars(tmp_path, rollout_read_timeout=120)
        mark = uuid.uuid4().hex
        proc = start_marked("agentfleet.rollout.immediate", sim.inventory_path, tmp_path, mark, extra)
        try:
            # the answers of the three are in the state while the round still waits for the fourth
            wait_for(lambda: set(decisions(tmp_path / "state.db")) >= {"agent-000", "agent-001", "agent-002"},
                     60, "the three answers recorded while agent-003 hangs")
            assert asks(sim) == {"agent-000": 1, "agent-001": 1, "agent-002": 1}
        finally:
            kill_everything(proc, mark)
        sim.configure(["agent-003"], slow_ms=0)
        res = run_playbook("agentfleet.rollout.immediate", tmp_path, inventory=sim.inventory_path, extra_vars=extra,
                           report_path=tmp_path / "report.json", timeout=240)
        assert res.rc == 0, res.output
        assert "resum" in res.output
        assert asks(sim) == {"agent-000": 1, "agent-001": 1, "agent-002": 1, "agent-003": 1}, asks(sim)
        report = res.report()
        assert report["status"] == "completed", report
        assert {a["result"] for a in report["agents"]} == {"updated"}, report["agents"]
        assert {o["version"] for o in sim.occurrences().values()} == {"2.0.0"}


def inventory_with_one_bad_token(tmp_path, sim, bad_host):
    hosts = {}
    for name, host in sim.hosts().items():
        hosts[name] = dict(host, fleetsim_control_url=sim.control_url,
                           rollout_token="wrong-token" if name == bad_host else TOKEN)
    inv = {"all": {"vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
                   "children": {"agents": {"hosts": hosts}}}}
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(inv))
    return path


def test_a_wave_aborted_by_a_refused_token_starts_its_stopped_agents_again(tmp_path):
    # one wave of four: agent-002 has a wrong token (401), the three others accept and stop
    with FleetSim(config=fleet(4), workdir=tmp_path / "sim", token=TOKEN) as sim:
        inv = inventory_with_one_bad_token(tmp_path, sim, "agent-002")
        env = ansible_env(tmp_path)
        env.pop("AGENTFLEET_TOKEN", None)
        extra = rollout_vars(tmp_path)
        res = run_playbook("agentfleet.rollout.immediate", tmp_path, inventory=inv, extra_vars=extra, env=env,
                           report_path=tmp_path / "report.json", timeout=240)
        assert res.rc != 0, res.output
        assert "authentication failed" in res.output
        # nobody is left down: the three that stopped for us run again (on the target: they consented)
        occ = sim.occurrences()
        assert all(o["up"] for o in occ.values()), occ
        started = [n for e in sim.log(event="sim_start") for n in e["body"]["occurrences"]]
        assert sorted(started) == ["agent-000", "agent-001", "agent-003"], started
        assert "started again" in res.output
        report = res.report()
        assert report["status"] == "failed"
        by_host = {a["host"]: a for a in report["agents"]}
        for h in ("agent-000", "agent-001", "agent-003"):
            assert "started again" in (by_host[h]["detail"] or ""), by_host[h]
            assert by_host[h]["result"] != "skipped", by_host[h]
        assert "nothing was updated" not in res.output
        # the rerun with the right token finishes them (gated) and asks nobody who answered twice
        inv.write_text(inv.read_text().replace("wrong-token", TOKEN))
        res2 = run_playbook("agentfleet.rollout.immediate", tmp_path, inventory=inv, extra_vars=extra, env=env,
                            report_path=tmp_path / "report.json", timeout=240)
        assert res2.rc == 0, res2.output
        report = res2.report()
        assert report["status"] == "completed", report
        assert {a["result"] for a in report["agents"]} == {"updated"}, report["agents"]
        counts = asks(sim)
        assert counts == {"agent-000": 1, "agent-001": 1, "agent-002": 2, "agent-003": 1}, counts
        assert {o["version"] for o in sim.occurrences().values()} == {"2.0.0"}
        assert TOKEN not in res.output + res2.output
