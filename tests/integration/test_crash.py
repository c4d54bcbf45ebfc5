# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration: the crash test (issue 12). SIGKILL ``ansible-playbook`` at 20 seeded-random points of a
100-agent canary against fleetsim, rerun it each time, and check at the end that every agent is on the
target (or reverted), that no agent was asked (so deliberated) twice, and that no answer was lost.

(Issue 20: 100 agents rather than 200, for a cheaper `make test`: the 20 kill points are still 20 distinct
steps of the rollout, drawn over its 200 steps, each followed by 0-20 more requests of the run; and
fleetsim's log is read from where the last read ended instead of whole on every kill.)

A kill point is "once the rollout reached step N of its 200 (100 shutdown requests, 100 agents started),
then after M more requests of the run" (N and M drawn from a seeded generator, so the same points come
back on every run of the test), counted in fleetsim's log, which tags each request with the run's id.
The whole process group is killed; the forked worker (which Ansible puts in
a session of its own) must notice and be gone within seconds, sending nothing after. Each kill point and
what the rerun found are written to tests/output/reliability/kills.json (docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import sys
import uuid

import pytest

from conftest import REPO, run_playbook
from fleetsim.testing import FleetSim, Supervisor
from helpers import wait_for
from test_answers_durable import asks, start_marked
from test_canary import SHUTDOWN, fleet, rollout_vars
from test_kill import HEALTH, run_pids

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds a run's processes in /proc")

SEED = 12
KILLS = 20
AGENTS = 100
TABLE = REPO / "tests" / "output" / "reliability" / "kills.json"


def crash_vars(tmp_path):
    # the none driver (a Supervisor thread starts each agent that exited, on 2.0.0): the kill points are the
    # engine's own. With the tasks driver, update tasks in flight in Ansible's workers (which Ansible puts in
    # sessions of their own) may finish after a SIGKILL of ansible-playbook, whatever the collection does; its
    # kill -> rerun is proven by tests/integration/test_user_path.py (4) and the matrix's kill_rerun cases
    return rollout_vars(tmp_path, rollout_driver="none", rollout_min_healthy_time=0.3, rollout_poll_interval=0.1,
                        rollout_healthy_deadline=30, rollout_stop_timeout=30, rollout_max_workers=32)


def state(tmp_path):
    path = tmp_path / "state.db"
    if not path.exists():
        return {"status": None, "decided": 0, "results": {}}
    db = sqlite3.connect(str(path), timeout=30)
    try:
        dep = db.execute("SELECT status FROM deployments").fetchone()
        decided = db.execute("SELECT COUNT(*) FROM agents WHERE decision IS NOT NULL").fetchone()[0]
        results = dict(db.execute("SELECT COALESCE(result, '-'), COUNT(*) FROM agents GROUP BY 1").fetchall())
        return {"status": dep[0] if dep else None, "decided": decided, "results": results}
    except sqlite3.OperationalError:
        return {"status": None, "decided": 0, "results": {}}
    finally:
        db.close()


def phase_of(entry):
    path = entry.get("path")
    if path == SHUTDOWN:
        return "asking"
    if path == "/_sim/start":
        return "starting agents"
    if path == HEALTH:
        return "probing (stop watch or gate)"
    return path or "?"


def progress(entries):
    """The rollout's progress in fleetsim's log: shutdown requests plus agents started (200 for 100 agents)."""
    done = 0
    for e in entries:
        if e.get("path") == SHUTDOWN and e.get("method") == "POST":
            done += 1
        elif e.get("event") == "sim_start":
            done += len((e.get("body") or {}).get("occurrences") or [])
    return done


def test_sigkill_at_20_random_points_of_a_100_agent_canary(tmp_path):
    rng = random.Random(SEED)
    # a kill point: once the rollout's progress reaches a threshold (20 distinct ones over the 400 steps of
    # the rollout, so every kill lands inside it), then after a few more requests of the run (0-20: into
    # the stop watch or the gate)
    points = [(t, rng.randint(0, 20)) for t in sorted(rng.sample(range(1, 2 * AGENTS), KILLS))]
    rows = []
    with FleetSim(config=fleet(AGENTS, shutdown_exit_seconds=0.05), workdir=tmp_path / "sim") as sim, \
            Supervisor(sim, "2.0.0", interval=0.05):
        extra = crash_vars(tmp_path)
        done = [0]
        cursor = [0]
        for i, (threshold, more) in enumerate(points, start=1):
            mark = uuid.uuid4().hex
            # the log since the last read (the progress so far is kept, not counted again from the start)
            log = sim.log(since=cursor[0])
            seq0 = cursor[0] = (log[-1:] or [{"seq": cursor[0]}])[0]["seq"]
            done[0] += progress(log)
            before = state(tmp_path)
            proc = start_marked("agentfleet.rollout.canary", sim.inventory_path, tmp_path, mark, extra)
            reached = []
            seen = {"seq": seq0, "mine": 0, "last": None}

            def at_point():
                # read the log incrementally: the rollout's progress so far, and this run's requests
                new = sim.log(since=seen["seq"])
                if new:
                    seen["seq"] = new[-1]["seq"]
                    done[0] += progress(new)
                    # this run's requests: the engine's (with its run id) and its update tasks' starts
                    mine = [e for e in new if e.get("run") or e.get("event") == "sim_start"]
                    seen["mine"] += len(mine)
                    seen["last"] = mine[-1] if mine else seen["last"]
                if done[0] >= threshold:
                    if not reached:
                        reached.append(seen["mine"])
                    if seen["mine"] >= reached[0] + more:
                        reached.append(seen["last"])
                        return True
                return proc.poll() is not None

            try:
                wait_for(at_point, 240, "kill point %d (progress %d, then %d requests)" % (i, threshold, more))
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            killed = len(reached) == 2
            # what at_point counted already: the next kill reads on from there
            cursor[0] = seen["seq"]
            wait_for(lambda: not run_pids(mark), 20, "every process of killed run %d gone" % i)
            gone = (sim.log()[-1:] or [{"seq": 0}])[0]["seq"]
            run_ids = {e.get("run") for e in sim.log(since=seq0) if e.get("run")}
            # nothing more from the killed run once its processes are gone
            late = [e for e in sim.log(since=gone) if e.get("run") in run_ids]
            assert not late, late[:3]
            counts = asks(sim)
            assert all(n == 1 for n in counts.values()), "asked twice: %s" % {k: v for k, v in counts.items() if v > 1}
            after = state(tmp_path)
            # no answer lost: every agent asked has its answer in the state
            assert after["decided"] == len(counts), (after, len(counts))
            assert after["decided"] >= before["decided"]
            where = "step %d of %d, then %d more requests" % (threshold, 2 * AGENTS, more)
            if killed:
                outcome = "killed while %s; %d of %d agents asked, %d updated; rerun resumes" % (
                    phase_of(reached[1]), len(counts), AGENTS, after["results"].get("updated", 0))
            else:
                outcome = "the run ended first (rc %s): deployment %s" % (proc.returncode, after["status"])
            rows.append([str(i), where, outcome])
        # the last rerun finishes it
        res = run_playbook("agentfleet.rollout.canary", tmp_path, inventory=sim.inventory_path, extra_vars=extra,
                           report_path=tmp_path / "report.json", timeout=600)
        assert res.rc == 0, res.output[-3000:]
        report = res.report()
        assert report["status"] == "completed", report["status"]
        results = {}
        for a in report["agents"]:
            results[a["result"]] = results.get(a["result"], 0) + 1
        assert set(results) <= {"updated", "reverted"}, results
        versions = {n: o["version"] for n, o in sim.occurrences().items()}
        assert all(o["up"] for o in sim.occurrences().values())
        for a in report["agents"]:
            want = "2.0.0" if a["result"] == "updated" else "1.0.0"
            assert versions[a["host"]] == want, (a, versions[a["host"]])
        counts = asks(sim)
        assert len(counts) == AGENTS and set(counts.values()) == {1}, counts
        assert sim.violations()["count"] == 0, sim.violations()
        rows.append(["final", "rerun to the end", "completed: %s; every agent asked once (%d asks), none started "
                     "before it stopped" % (", ".join("%d %s" % (n, r) for r, n in sorted(results.items())), AGENTS)])
    assert sum(1 for r in rows if r[2].startswith("killed")) == KILLS, rows
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    TABLE.write_text(json.dumps({"title": "SIGKILL of ansible-playbook at %d seeded-random points of a %d-agent canary "
                                          "(seed %d) -> outcome" % (KILLS, AGENTS, SEED),
                                 "columns": ["kill", "point", "outcome"], "rows": rows}, indent=1))
