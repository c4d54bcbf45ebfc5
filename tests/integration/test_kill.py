"""Integration: a killed, cancelled or interrupted rollout stops acting on agents.

Each test starts a real ``ansible-playbook agentfleet.rollout.canary`` in its own
process group against fleetsim on loopback, kills or cancels it at a chosen
moment, and checks from fleetsim's request log (every request carries the run
id in ``X-Agentfleet-Run``) and from /proc that nothing of the killed run acts
any more. Ansible's workers call setsid(), so they leave the playbook's process
group: the processes of a run are found by a marker in their environment.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import ansible_env, run_playbook
from fleetsim.testing import FleetSim, Supervisor
from helpers import wait_for
from test_canary import SHUTDOWN, fleet
from test_canary import rollout_vars as canary_vars

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds a run's processes in /proc")

HEALTH = "/v1/system/health"
MARK = "AGENTFLEET_KILLTEST_MARK"


def rollout_vars(tmp_path, **extra):
    """test_canary's rollout variables, with a gate deadline long enough to kill a run inside it."""
    return canary_vars(tmp_path, **dict({"rollout_healthy_deadline": 60}, **extra))


def start(sim, tmp_path, mark, **extra):
    """ansible-playbook in a process group of its own, its processes (workers too) marked in their environment."""
    varfile = tmp_path / ("vars-%s.json" % mark)
    varfile.write_text(json.dumps(rollout_vars(tmp_path, **extra)))
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "agentfleet.rollout.canary", "-i",
           str(sim.inventory_path), "-e", "@" + str(varfile)]
    out = open(tmp_path / ("out-%s.txt" % mark), "w")
    try:
        return subprocess.Popen(cmd, cwd=str(tmp_path), env=ansible_env(tmp_path, **{MARK: mark}), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        out.close()


def rerun(sim, tmp_path, **extra):
    return run_playbook("agentfleet.rollout.canary", tmp_path, inventory=sim.inventory_path,
                        extra_vars=rollout_vars(tmp_path, **extra), report_path=tmp_path / "report.json", timeout=240)


def run_pids(mark):
    """Live (not zombie) processes whose environment carries ``MARK=mark``."""
    needle = ("%s=%s" % (MARK, mark)).encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as fh:
                env = fh.read()
            with open("/proc/%s/stat" % entry) as fh:
                state = fh.read().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if (b"\0" + env).find(b"\0" + needle) >= 0 and state not in ("Z", "X"):
            found.append(int(entry))
    return found


def kill_run(proc, mark, sig=signal.SIGKILL, within=2.0):
    """Signal the playbook's process group; every process of the run must be gone ``within`` seconds."""
    killed_at = time.monotonic()
    os.killpg(proc.pid, sig)
    proc.wait(timeout=within)
    while run_pids(mark):
        assert time.monotonic() - killed_at < within, "processes of the killed run still alive %.1fs after %s: %s" % (
            time.monotonic() - killed_at, signal.Signals(sig).name, run_pids(mark))
        time.sleep(0.02)


def run_ids(entries):
    """The run ids of the protocol requests (health, shutdown) and of the driver's starts in ``entries``."""
    return {e.get("run") for e in entries if e.get("path") in (HEALTH, SHUTDOWN)
            or (e.get("path") == "/_sim/start" and e.get("run"))}


def asked(sim):
    return [e["occurrence"] for e in sim.log(path=SHUTDOWN, method="POST")]


def last_seq(sim):
    entries = sim.log()
    return entries[-1]["seq"] if entries else 0


def deployment(tmp_path):
    db = sqlite3.connect(str(tmp_path / "state.db"))
    db.row_factory = sqlite3.Row
    try:
        return dict(db.execute("SELECT * FROM deployments").fetchone())
    finally:
        db.close()


def killed_then_rerun(sim, tmp_path, ready, sig=signal.SIGKILL, **extra):
    """Start a run, kill it once ``ready(log)`` holds, check it is gone and silent, rerun; returns (rerun, killed id)."""
    mark = uuid.uuid4().hex
    proc = start(sim, tmp_path, mark, **extra)
    try:
        wait_for(lambda: ready(sim.log()), 120, "the moment to kill")
        ids = run_ids(sim.log())
        assert len(ids) == 1 and None not in ids, "every request of the run carries one run id: %s" % ids
        killed = ids.pop()
        kill_run(proc, mark, sig)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    gone_seq = last_seq(sim)
    res = rerun(sim, tmp_path, **extra)
    late = [e for e in sim.log(since=gone_seq) if e.get("run") == killed]
    assert not late, "the killed run sent requests after it was gone: %s" % late[:5]
    assert killed not in run_ids(sim.log(since=gone_seq)), "the rerun has a run id of its own"
    hosts = asked(sim)
    assert sorted(hosts) == sorted(set(hosts)), "an agent was asked twice: %s" % hosts
    return res, killed


def _started_then_gating(log):
    starts = [e["seq"] for e in log if e.get("event") == "sim_start"]
    return starts and any(e["seq"] > starts[0] and e.get("path") == HEALTH and e.get("run") for e in log)


def test_sigkill_during_the_gate_wait(tmp_path):
    # agents boot for 4 s after their start: the run is killed while it gates wave 1
    with FleetSim(config=fleet(10, boot_seconds=4), workdir=tmp_path / "sim") as sim:
        res, dummy = killed_then_rerun(sim, tmp_path, _started_then_gating)
        assert res.rc == 0, res.output
        assert "resumed" in res.output
        assert "ended before the deployment did" in res.output
        report = res.report()
        assert report["status"] == "completed"
        assert all(a["result"] == "updated" for a in report["agents"]), report["agents"]
        assert len(asked(sim)) == 10
        # wave 1 was gated again by the rerun, not started a second time
        starts = [n for e in sim.log(event="sim_start") for n in e["body"]["occurrences"]]
        assert sorted(starts) == sorted(set(starts)), starts


def test_sigkill_one_second_into_wave_1_of_a_none_driver_canary(tmp_path):
    # the reported case: the none driver (the supervisor starts the new version), agents that take 8 s to boot,
    # the process group killed 1 s into wave 1: no health request of the killed run may follow
    first_ask = []

    def one_second_into_wave_1(log):
        if not first_ask and any(e.get("path") == SHUTDOWN for e in log):
            first_ask.append(time.monotonic())
        return first_ask and time.monotonic() - first_ask[0] >= 1.0

    with FleetSim(config=fleet(10, boot_seconds=8), workdir=tmp_path / "sim") as sim, Supervisor(sim, "2.0.0"):
        res, dummy = killed_then_rerun(sim, tmp_path, one_second_into_wave_1, rollout_driver="none")
        assert res.rc == 0, res.output
        report = res.report()
        assert report["status"] == "completed", report
        assert all(a["result"] == "updated" for a in report["agents"]), report["agents"]
        assert len(asked(sim)) == 10


def test_sigkill_during_the_ask_phase(tmp_path):
    # CIRIS-like agents: the shutdown request is answered at once, the agent decides after 3 s and drains
    # for 2 s: the run is killed while it waits for wave 1 to stop
    cfg = fleet(10, consent="ciris", decide_seconds=3, drain_seconds=2)
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res, dummy = killed_then_rerun(sim, tmp_path, lambda log: any(e.get("path") == SHUTDOWN for e in log))
        assert res.rc == 0, res.output
        report = res.report()
        assert report["status"] == "completed", report
        assert all(a["result"] == "updated" for a in report["agents"]), report["agents"]
        # one deliberation per agent: the rerun observed wave 1 instead of asking it again
        assert all(sim.deliberations(occurrence=name) == 1 for name in sim.occurrences()), asked(sim)


def test_sigkill_during_a_revert(tmp_path):
    # every agent is unhealthy on 2.0.0: wave 1 fails its gate and is put back on 1.0.0; the run is
    # killed as the revert is sent
    cfg = fleet(10, unhealthy_after_update=True)
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        def reverting(log):
            return any(e.get("event") == "sim_start" and (e.get("body") or {}).get("version") == "1.0.0" for e in log)

        res, dummy = killed_then_rerun(sim, tmp_path, reverting, rollout_auto_revert=True, rollout_healthy_deadline=2)
        assert res.rc != 0, res.output  # the wave failed: the rollout stops there
        report = res.report()
        assert report["status"] == "failed", report
        assert {o["version"] for o in sim.occurrences().values()} == {"1.0.0"}
        assert len(asked(sim)) == len(set(asked(sim))) < 10


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_mid_wave_interrupts_and_leaves_every_agent_running(tmp_path, sig):
    # an AWX cancel (SIGTERM) or a Ctrl-C (SIGINT) to the playbook's process group while wave 1 decides and drains;
    # the none driver: the agents' own supervisor starts the ones that stopped for us
    cfg = fleet(10, consent="ciris", decide_seconds=1, drain_seconds=1)
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim, Supervisor(sim, "2.0.0"):
        mark = uuid.uuid4().hex
        proc = start(sim, tmp_path, mark, rollout_driver="none")
        try:
            wait_for(lambda: any(e.get("path") == SHUTDOWN for e in sim.log()), 120, "wave 1 asked")
            killed = run_ids(sim.log()).pop()
            # the worker waits for what stopped for us before it ends: a few seconds, not 2
            kill_run(proc, mark, sig, within=30.0)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        dep = deployment(tmp_path)
        assert dep["status"] == "interrupted", dep
        assert "interrupted by %s" % sig.name in dep["message"] and "wave 1" in dep["message"], dep["message"]
        first = set(asked(sim))
        wait_for(lambda: all(o["up"] for o in sim.occurrences().values()), 30, "every agent up")
        occs = sim.occurrences()
        assert first and all(occs[n]["version"] == "2.0.0" for n in first)
        gone_seq = last_seq(sim)
        # the rerun resumes: wave 1 is gated, the later waves asked, nobody twice
        res = rerun(sim, tmp_path, rollout_driver="none")
        assert res.rc == 0, res.output
        assert "resumed" in res.output
        # the plan says why the last run ended early
        assert "the last run ended early: interrupted by %s" % sig.name in res.output
        assert res.report()["status"] == "completed"
        assert not [e for e in sim.log(since=gone_seq) if e.get("run") == killed]
        hosts = asked(sim)
        assert sorted(hosts) == sorted(set(hosts)) and len(hosts) == 10


def test_sigterm_with_the_tasks_driver_names_the_stopped_agents_and_the_rerun_starts_them_first(tmp_path):
    # the tasks driver: after SIGTERM ansible-playbook runs no further task (it kills itself once it has told its
    # workers), so nothing can run the update tasks of the agents that stopped for us in that run. The interrupted
    # wave names them, and the rerun's first round updates them before it asks anyone new (docs/reliability.md)
    cfg = fleet(10, consent="ciris", decide_seconds=1, drain_seconds=1)
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        mark = uuid.uuid4().hex
        proc = start(sim, tmp_path, mark)
        try:
            wait_for(lambda: any(e.get("path") == SHUTDOWN for e in sim.log()), 120, "wave 1 asked")
            kill_run(proc, mark, signal.SIGTERM, within=30.0)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        dep = deployment(tmp_path)
        assert dep["status"] == "interrupted", dep
        down = sorted(n for n, o in sim.occurrences().items() if not o["up"])
        for name in down:
            assert name in dep["message"], dep["message"]
        gone_seq = last_seq(sim)
        res = rerun(sim, tmp_path)
        assert res.rc == 0, res.output
        assert res.report()["status"] == "completed"
        assert all(o["up"] and o["version"] == "2.0.0" for o in sim.occurrences().values())
        # the agents left down were started before any agent of a later wave was asked
        later = sim.log(since=gone_seq)
        first_ask = min([e["seq"] for e in later if e.get("path") == SHUTDOWN] or [float("inf")])
        starts = dict((n, e["seq"]) for e in later if e.get("event") == "sim_start"
                      for n in (e.get("body") or {}).get("occurrences") or [])
        assert all(starts[n] < first_ask for n in down), (down, starts, first_ask)
        hosts = asked(sim)
        assert sorted(hosts) == sorted(set(hosts)) and len(hosts) == 10
