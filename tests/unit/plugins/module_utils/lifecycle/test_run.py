# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A run's liveness check, its stop flag and the state's fencing generation."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
from ansible_collections.agentfleet.rollout.plugins.module_utils._run import ControllerGone, Interrupted, Run, RUN_HEADER
from ansible_collections.agentfleet.rollout.plugins.module_utils._run import controller_run_id
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import LockedError, StaleRunError
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import open_store
from helpers import FakeAgent

PLAN = [{"index": 1, "name": "explorers", "size": 2,
         "members": [{"name": "a", "agent_url": "http://x"}, {"name": "b", "agent_url": "http://y"}]}]
DEAD_PID = 999999


def _dead_parent_run():
    # a controller pid that is not our parent: as after the controller died and the worker was re-parented
    return Run(controller_pid=os.getppid() + 100000)


# ---------------------------------------------------------------- liveness and stop
def test_a_live_controller_passes_the_check():
    run = Run(controller_pid=os.getppid())
    run.check()
    assert run.controller_alive()


def test_a_dead_controller_stops_the_run_and_its_waits():
    run = _dead_parent_run()
    with pytest.raises(ControllerGone, match="is gone"):
        run.check()
    with pytest.raises(ControllerGone):
        run.sleep(30)


def test_a_requested_stop_interrupts_a_wait_at_once_and_names_the_step():
    run = Run()
    run.step = "the health gate"
    threading.Timer(0.1, run.request_stop, ("SIGTERM",)).start()
    started = time.monotonic()
    with pytest.raises(Interrupted, match="interrupted by SIGTERM during the health gate"):
        run.sleep(30)
    assert time.monotonic() - started < 5


def test_a_stop_wins_over_a_dead_controller_and_its_cleanup_may_go_on():
    run = _dead_parent_run()
    run.request_stop("SIGTERM")
    with pytest.raises(Interrupted):
        run.check()
    with run.cleaning_up():
        run.check()
    with pytest.raises(Interrupted):
        run.check()


def test_progress_is_silent_once_the_controller_is_gone():
    lines = []
    Run(controller_pid=os.getppid()).progress(lines.append)("alive")
    _dead_parent_run().progress(lines.append)("orphan")
    assert lines == ["alive"]


def test_the_run_id_is_the_same_for_one_controller_and_can_be_given(monkeypatch):
    monkeypatch.delenv("AGENTFLEET_RUN_ID", raising=False)
    assert controller_run_id(os.getppid()) == controller_run_id(os.getppid()) != controller_run_id(1)
    monkeypatch.setenv("AGENTFLEET_RUN_ID", "awx-job-42")
    assert controller_run_id(os.getppid()) == "awx-job-42"


def test_a_worker_notices_its_controller_killed(tmp_path):
    """Real processes: controller -> worker (in its own session, as Ansible's); SIGKILL the controller."""
    out = tmp_path / "worker.txt"
    worker = textwrap.dedent("""
        import os, sys, time
        sys.path[:0] = %r
        from ansible_collections.agentfleet.rollout.plugins.module_utils._run import ControllerGone, Run
        os.setsid()
        run = Run.of_controller()
        with run.attached():
            open(%r, "w").write("waiting")
            t = time.monotonic()
            try:
                run.sleep(60)
                result = "slept"
            except ControllerGone:
                result = "gone %%.2f" %% (time.monotonic() - t)
        open(%r, "w").write(result)
    """) % (sys.path, str(out), str(out))
    controller = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', %r]); time.sleep(120)"
                  % worker)
    proc = subprocess.Popen([sys.executable, "-c", controller])
    try:
        deadline = time.monotonic() + 30
        while not (out.exists() and out.read_text() == "waiting"):
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 5
        while not out.read_text().startswith(("gone", "slept")):
            assert time.monotonic() < deadline, "the orphan went on waiting"
            time.sleep(0.02)
        assert out.read_text().startswith("gone")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- the agent client
@pytest.fixture
def echo():
    srv = FakeAgent()
    yield srv
    srv.stop()


def test_every_request_carries_the_run_id_and_a_stopped_run_sends_nothing(echo):
    run = Run(run_id="run-1")
    url = echo.url + "/v1/system/health"
    with AgentClient(run_id=run.run_id, guard=run.check) as client:
        assert client.request("GET", url).status == 200
        run.request_stop("SIGINT")
        with pytest.raises(Interrupted):
            client.request("GET", url)
    assert [s.header(RUN_HEADER) for s in echo.seen] == ["run-1"]


# ---------------------------------------------------------------- fencing
def test_generation_moves_on_with_every_resume(tmp_path):
    with open_store(tmp_path / "s.db") as s:
        assert s.create_or_resume("d1", "fleet", "canary", "2.0", PLAN, {}, owner_pid=DEAD_PID)[0]["generation"] == 1
        assert s.create_or_resume("d1", "fleet", "canary", "2.0", PLAN, {}, owner_pid=DEAD_PID)[0]["generation"] == 2
        s.set_status("d1", "interrupted", "interrupted by SIGTERM")
        dep, mode = s.create_or_resume("d1", "fleet", "canary", "2.0", PLAN, {}, owner_pid=DEAD_PID)
        assert (mode, dep["generation"], dep["status"]) == ("resumed", 3, "running")


def test_a_stale_writer_is_refused_and_writes_nothing(tmp_path):
    path = tmp_path / "s.db"
    old = open_store(path)
    dep = old.create_or_resume("d1", "fleet", "canary", "2.0", PLAN, {}, owner_pid=DEAD_PID)[0]
    old.fence("d1", dep["generation"])
    old.record_answers("d1", [{"host": "a", "decision": "accept"}])  # current: written
    with open_store(path) as new:
        # the old run's controller is gone: a rerun resumes the deployment (and takes the lease)
        assert new.create_or_resume("d1", "fleet", "canary", "2.0", PLAN, {}, owner_pid=os.getpid())[1] == "resumed"
    with pytest.raises(StaleRunError, match="resumed or taken over by a newer run"):
        old.set_results("d1", [{"host": "a", "result": "failed", "detail": "stale"}])
    with pytest.raises(StaleRunError):
        old.wave_started("d1", 1)
    with pytest.raises(StaleRunError):
        old.check_fence()
    old.close()
    with open_store(path) as s:
        rows = dict((r["host"], r) for r in s.agents("d1"))
        assert rows["a"]["decision"] == "accept" and rows["a"]["result"] is None
        assert [w["status"] for w in s.waves("d1")] == ["pending"]


def test_a_takeover_fences_the_aborted_deployments_run(tmp_path):
    path = tmp_path / "s.db"
    old = open_store(path)
    dep = old.create_or_resume("d1", "fleet", "canary", "2.0", PLAN, {}, owner_pid=DEAD_PID)[0]
    old.fence("d1", dep["generation"])
    with open_store(path) as new:
        assert new.create_or_resume("d2", "fleet", "canary", "3.0", PLAN, {}, takeover=True)[1] == "new"
        assert new.get_deployment("d1")["status"] == "aborted"
    with pytest.raises(StaleRunError):
        old.heartbeat("d1")
    old.close()


def test_an_interrupted_deployment_blocks_another_for_its_fleet(tmp_path):
    with open_store(tmp_path / "s.db") as s:
        s.create_or_resume("d1", "fleet", "canary", "2.0", PLAN, {}, owner_pid=DEAD_PID)
        s.set_status("d1", "interrupted", "interrupted by SIGINT in wave 1")
        with pytest.raises(LockedError, match="rerun it with rollout_deployment_id=d1"):
            s.create_or_resume("d2", "fleet", "canary", "3.0", PLAN, {})


def test_a_schema_1_state_file_gets_the_generation(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(str(path))
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE deployments (deployment_id TEXT PRIMARY KEY, fleet_key TEXT NOT NULL, strategy TEXT NOT NULL,
            target_version TEXT, status TEXT NOT NULL, plan TEXT NOT NULL, params TEXT NOT NULL,
            created_at REAL NOT NULL, started_at REAL, finished_at REAL, updated_at REAL NOT NULL,
            owner_pid INTEGER, owner_host TEXT, heartbeat REAL, message TEXT);
        INSERT INTO deployments VALUES ('d0', 'fleet', 'canary', '1.0', 'completed', '[]', '{}', 1, 1, 2, 2,
            NULL, NULL, NULL, NULL);
    """)
    db.close()
    with open_store(path) as s:
        assert s.get_deployment("d0")["generation"] == 0
        # and on to schema 3: the deployment records (docs/lifecycle.md)
        assert s.get_deployment("d0")["version"] == 1 and s.get_deployment("d0")["deployment_key"] == "fleet"
        assert s.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "3"


def test_an_interrupted_occurrence_engine_records_its_deployment_interrupted(tmp_path):
    from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import engine_resources
    from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.deployment import fence_run

    params = {"state_path": str(tmp_path / "s.db")}
    run = Run(run_id="run-9")
    with pytest.raises(Interrupted):
        with engine_resources(params, run=run) as (store, client):
            dep = store.create_or_resume("sd-1", "agent:datum", "shutdown", "", PLAN, {}, owner_pid=DEAD_PID)[0]
            fence_run(run, store, dep)
            run.request_stop("SIGINT")
            run.sleep(30)
    with open_store(tmp_path / "s.db") as s:
        dep = s.get_deployment("sd-1")
        assert dep["status"] == "interrupted"
        assert dep["message"].startswith("interrupted by SIGINT") and "resume deployment sd-1" in dep["message"]
