"""Issue 19 item 7: the scenario matrix, pairwise (tests/pairwise.py), on the user's path.

strategy (canary, immediate, rolling, blue_green, manual -> promote, rollback to version N) x driver (tasks with a
fleetsim task file, docker against podman's Docker API, none with the agents' own supervisor) x consent (ciris:
200 "initiated" and the decision shown by stopping; explicit) x operator action or fault (check mode, pause ->
resume, kill -9 at a seeded random point -> rerun, 401 in mid wave, one agent draining 25 s, one agent that
accepts and never exits). Every pair of values is in at least one case; excluded pairs: blue_green needs a driver
that starts a candidate beside the agent (tasks); the docker test agent (tests/docker-agent) answers only like
CIRIS (no explicit consent) and has no per-agent token, drain time or stuck shutdown.

Each case: 4 agents; every agent up at the end (none left down) on its expected version; each agent deliberated
at most once in the case's deployment (fleetsim log); each agent's result in the report, consistent with its
version; fleetsim's violations (starts that cut an agent's work) at 0. The docker cases read the containers'
health instead of fleetsim (the test agent keeps no log: deliberations and violations are not observable there).

Rollback cases first deploy 2.0.0 (version 1) and 1.0.0 (version 2), then roll back to version 1 (2.0.0).
The case table (checked against the generator by test_the_case_table_is_the_generated_one):

CASES
m01-canary-tasks-ciris-check                         canary          tasks   ciris     check
m02-canary-docker-ciris-pause_resume                 canary          docker  ciris     pause_resume
m03-canary-none-explicit-kill_rerun                  canary          none    explicit  kill_rerun
m04-canary-tasks-explicit-auth401                    canary          tasks   explicit  auth401
m05-canary-tasks-ciris-drain25                       canary          tasks   ciris     drain25
m06-canary-tasks-ciris-stuck                         canary          tasks   ciris     stuck
m07-immediate-tasks-ciris-kill_rerun                 immediate       tasks   ciris     kill_rerun
m08-immediate-docker-ciris-check                     immediate       docker  ciris     check
m09-immediate-none-ciris-auth401                     immediate       none    ciris     auth401
m10-immediate-tasks-explicit-pause_resume            immediate       tasks   explicit  pause_resume
m11-immediate-none-explicit-drain25                  immediate       none    explicit  drain25
m12-immediate-none-explicit-stuck                    immediate       none    explicit  stuck
m13-rolling-tasks-ciris-check                        rolling         tasks   ciris     check
m14-rolling-docker-ciris-kill_rerun                  rolling         docker  ciris     kill_rerun
m15-rolling-none-explicit-check                      rolling         none    explicit  check
m16-rolling-none-ciris-pause_resume                  rolling         none    ciris     pause_resume
m17-rolling-tasks-ciris-auth401                      rolling         tasks   ciris     auth401
m18-rolling-tasks-ciris-drain25                      rolling         tasks   ciris     drain25
m19-rolling-tasks-ciris-stuck                        rolling         tasks   ciris     stuck
m20-blue_green-tasks-ciris-check                     blue_green      tasks   ciris     check
m21-blue_green-tasks-explicit-pause_resume           blue_green      tasks   explicit  pause_resume
m22-blue_green-tasks-ciris-kill_rerun                blue_green      tasks   ciris     kill_rerun
m23-blue_green-tasks-ciris-auth401                   blue_green      tasks   ciris     auth401
m24-blue_green-tasks-ciris-drain25                   blue_green      tasks   ciris     drain25
m25-blue_green-tasks-ciris-stuck                     blue_green      tasks   ciris     stuck
m26-manual_promote-tasks-ciris-check                 manual_promote  tasks   ciris     check
m27-manual_promote-docker-ciris-pause_resume         manual_promote  docker  ciris     pause_resume
m28-manual_promote-none-explicit-kill_rerun          manual_promote  none    explicit  kill_rerun
m29-manual_promote-tasks-ciris-auth401               manual_promote  tasks   ciris     auth401
m30-manual_promote-tasks-ciris-drain25               manual_promote  tasks   ciris     drain25
m31-manual_promote-tasks-ciris-stuck                 manual_promote  tasks   ciris     stuck
m32-rollback-tasks-ciris-check                       rollback        tasks   ciris     check
m33-rollback-docker-ciris-pause_resume               rollback        docker  ciris     pause_resume
m34-rollback-none-explicit-kill_rerun                rollback        none    explicit  kill_rerun
m35-rollback-tasks-ciris-auth401                     rollback        tasks   ciris     auth401
m36-rollback-tasks-ciris-drain25                     rollback        tasks   ciris     drain25
m37-rollback-tasks-ciris-stuck                       rollback        tasks   ciris     stuck
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from fleetsim.testing import FleetSim, Supervisor
from test_docker_driver import IMAGE, client, engine, health, start_agents  # noqa: F401 pylint: disable=unused-import
from pairwise import all_pairs, covered, pairwise
from helpers import wait_for
from userpath import (CANDIDATE_TASKS, RETIRE_TASKS, TOKEN, by_host, kill9, lifecycle_op, records, run,
                      start_background)

PARAMS = {
    "strategy": ["canary", "immediate", "rolling", "blue_green", "manual_promote", "rollback"],
    "driver": ["tasks", "docker", "none"],
    "consent": ["ciris", "explicit"],
    "action": ["check", "pause_resume", "kill_rerun", "auth401", "drain25", "stuck"],
}
TARGET = "2.0.0"
INITIAL = "1.0.0"
AGENTS = ["agent-000", "agent-001", "agent-002", "agent-003"]
SLOW = "agent-001"          # drain25 / stuck
UNAUTHORIZED = "agent-002"  # auth401: in the second wave (canary, rolling, blue_green) or mid wave (immediate)


def valid(case):
    if case.get("strategy") == "blue_green" and case.get("driver") not in (None, "tasks"):
        return False
    if case.get("driver") == "docker" and (case.get("consent") == "explicit"
                                           or case.get("action") in ("auth401", "drain25", "stuck")):
        return False
    return True


CASES = pairwise(PARAMS, valid)


def case_id(n, c):
    return "m%02d-%s-%s-%s-%s" % (n, c["strategy"], c["driver"], c["consent"], c["action"])


IDS = [case_id(n, c) for n, c in enumerate(CASES, start=1)]


def table():
    return "\n".join("%-52s %-15s %-7s %-9s %s" % (i, c["strategy"], c["driver"], c["consent"], c["action"])
                     for i, c in zip(IDS, CASES))


OUT = Path(__file__).resolve().parents[1] / "output"
OUT.mkdir(parents=True, exist_ok=True)
(OUT / "matrix-cases.txt").write_text(table() + "\n")


def test_the_case_table_is_the_generated_one():
    assert __doc__.split("CASES\n", 1)[1].strip() == table()
    got = set().union(*(covered(c, list(PARAMS)) for c in CASES))
    assert all_pairs(PARAMS, valid) <= got and all(valid(c) for c in CASES)


# ---------------------------------------------------------------------------------------------------- a case


def strategy_vars(strategy):
    """(playbook of the main run, its variables)."""
    if strategy == "canary":
        return "canary", {"rollout_cohorts": [{"name": "canary", "count": 1}, {"name": "rest", "rest": True}]}
    if strategy == "immediate":
        return "immediate", {}
    if strategy == "rolling":
        return "rolling", {"rollout_max_parallel": 2}
    if strategy == "blue_green":
        return "blue_green", {"rollout_max_parallel": 2, "rollout_candidate_tasks": str(CANDIDATE_TASKS),
                              "rollout_retire_tasks": str(RETIRE_TASKS), "rollout_driver": "tasks"}
    if strategy == "manual_promote":
        return "promote", {"rollout_cohorts": [{"name": "canary", "count": 1}, {"name": "rest", "rest": True}]}
    return "rollback", {"rollout_rollback_to": 1,
                        "rollout_cohorts": [{"name": "canary", "count": 1}, {"name": "rest", "rest": True}]}


class Fleet:
    """The case's agents: fleetsim occurrences (tasks, none) or containers (docker)."""

    def __init__(self, case, tmp_path, request):
        self.case, self.tmp_path, self.request = case, tmp_path, request
        self.docker = case["driver"] == "docker"
        self.sim = self.supervisor = None

    def __enter__(self):
        if self.docker:
            self.engine = self.request.getfixturevalue("engine")
            docker_client = self.request.getfixturevalue("client")
            prefix = "mx%d" % (IDS.index(self.request.node.callspec.id) + 1)
            self.hosts, self.inventory = start_agents(docker_client, self.tmp_path, prefix, 4)
            self.names = sorted(self.hosts)
            self.client, self._health, self.image = docker_client, health, IMAGE
            return self
        d = {"consent": self.case["consent"], "decide_seconds": 0.3, "drain_seconds": 0.5,
             "shutdown_exit_seconds": 0.3}
        self.sim = FleetSim(config={"defaults": d, "agents": [{"count": 4, "name_prefix": "agent-"}]},
                            workdir=self.tmp_path / "sim", token=TOKEN).start()
        self.inventory, self.names = self.sim.inventory_path, list(AGENTS)
        if self.case["driver"] == "none":
            self.supervisor = Supervisor(self.sim, TARGET).__enter__()
        return self

    def __exit__(self, *exc):
        if self.supervisor:
            self.supervisor.__exit__()
        if self.sim:
            self.sim.close()
        if self.docker:
            for name in self.hosts:
                try:
                    self.client.containers.get(name).remove(force=True)
                except Exception:
                    pass

    def vars(self, **extra):
        v = {"rollout_driver": self.case["driver"], "rollout_poll_interval": 0.1}
        if self.docker:
            v.update({"rollout_docker_image": self.image + ":{version}", "docker_host": self.engine})
        v.update(extra)
        return v

    def run(self, playbook, check=False, timeout=240, **extra):
        if self.supervisor and "rollout_target_version" in extra:
            self.supervisor.version = extra["rollout_target_version"]
        return run(self.sim, self.tmp_path, playbook, check=check, token=TOKEN, timeout=timeout,
                   inventory=self.inventory, args=["--forks", "4"], **self.vars(**extra))

    def background(self, playbook, **extra):
        return start_background(self.sim, self.tmp_path, playbook, token=TOKEN, inventory=self.inventory,
                                **self.vars(**extra))

    def mark(self):
        return self.sim.log()[-1]["seq"] if self.sim and self.sim.log() else 0

    def asked_since(self, mark):
        if self.docker:
            return any((self._health(self.hosts[n]["agent_url"]) or {}).get("cognitive_state") != "work"
                       for n in self.names)
        return self.sim.log(since=mark, event="shutdown_requested")

    def settled(self):
        if self.docker:
            return True
        return all(o["phase"] in ("working", "down") for o in self.sim.occurrences().values())

    def final(self):
        """{name: (up, version)}."""
        if self.docker:
            out = {}
            for n in self.names:
                h = self._health(self.hosts[n]["agent_url"], timeout=3.0)
                out[n] = (h is not None, (h or {}).get("version"))
            return out
        return {n: (o["up"], o["version"]) for n, o in self.sim.occurrences().items()}


def test_matrix(case, tmp_path, request):
    c = case
    playbook, svars = strategy_vars(c["strategy"])
    action = c["action"]
    ended_before = False
    with Fleet(c, tmp_path, request) as f:
        # ---- what comes before the case's run: a rollback needs history; manual stages the deployment
        if c["strategy"] == "rollback":
            for target in ("2.0.0", "1.0.0"):
                setup = f.run("canary", rollout_target_version=target, rollout_cohorts="all")
                assert setup.rc == 0, "setup deploy %s failed:\n%s" % (target, setup.output[-3000:])
        if c["strategy"] == "manual_promote":
            staged = f.run("manual", **svars)
            assert staged.rc == 0, staged.output[-3000:]
        if f.supervisor:
            f.supervisor.version = TARGET
        report_path = tmp_path / "report.json"
        if report_path.exists():
            report_path.unlink()
        # ---- the fault
        extra = dict(svars)
        if not f.docker:
            if action == "auth401":
                f.sim.configure([UNAUTHORIZED], reject_token=True)
            elif action == "drain25":
                f.sim.configure([SLOW], drain_seconds=25, shutdown_exit_seconds=25)
            elif action == "stuck":
                f.sim.configure([SLOW], stuck_on_shutdown=True)
                extra["rollout_stop_timeout"] = 10
        mark = f.mark()
        # ---- the case's run, with the operator's action
        expect_rc_ok = not (action == "auth401" or (action == "stuck" and c["consent"] == "explicit"))
        if action == "check":
            res = f.run(playbook, check=True, **extra)
            assert res.rc == 0, res.output[-4000:]
        elif action == "pause_resume":
            extra["rollout_min_healthy_time"] = 8 if c["strategy"] == "immediate" else 4
            proc = f.background(playbook, **extra)
            try:
                wait_for(lambda: f.asked_since(mark), 120, "the first agents asked")
                paused = lifecycle_op(tmp_path, "pause")
                assert paused.rc == 0, paused.output[-3000:]
                proc.wait(240)
            finally:
                if proc.poll() is None:
                    kill9(proc)
            out = proc.out_path.read_text()
            assert proc.returncode == 0, out[-5000:]
            status = records(tmp_path)[max(records(tmp_path))]
            assert status in ("paused", "completed"), (status, out[-4000:])
            assert status == "paused" or c["strategy"] == "immediate", "the pause did not stop the rollout"
            wait_for(f.settled, 40, "no agent deciding or draining")
            assert [n for n, (up, v) in f.final().items() if not up] == [], "agents down while paused"
            res = f.run("resume", **extra) if status == "paused" else None
            if res is not None:
                assert res.rc == 0, res.output[-5000:]
        elif action == "kill_rerun":
            rng = random.Random(request.node.callspec.id)
            delay = float(os.environ.get("MATRIX_KILL_DELAY") or rng.uniform(0.0, 4.0))
            proc = f.background(playbook, **extra)
            try:
                wait_for(lambda: f.asked_since(mark), 120, "the first agents asked")
                # the seeded random kill point, counted from the first request
                t0 = time.monotonic()
                wait_for(lambda: proc.poll() is not None or time.monotonic() - t0 >= delay,
                         60, "the kill point (%.2f s after the first request)" % delay)
            finally:
                kill9(proc)
            # a kill point after the run's end: the rerun of a rollback is a new deployment (the fleet's version
            # moved on), in which every agent is already on the target
            ended_before = bool(records(tmp_path)) and records(tmp_path)[max(records(tmp_path))] == "completed"
            try:
                # the user's rerun: the same command (issue 19 item 5: a rerun knows what already happened)
                res = f.run(playbook, timeout=180, **extra)
            except subprocess.TimeoutExpired as e:
                out = e.output.decode(errors="replace") if isinstance(e.output, bytes) else (e.output or "")
                pytest.fail("the rerun after kill -9 at %.2f s did not end within 180 s:\n%s" % (delay, out[-6000:]))
            assert res.rc == 0, res.output[-5000:]
        else:
            res = f.run(playbook, **extra)
            assert (res.rc == 0) == expect_rc_ok, "rc %d:\n%s" % (res.rc, res.output[-5000:])
        # ---- the end state
        wait_for(f.settled, 40, "no agent deciding or draining")
        final = f.final()
        assert [n for n, (up, v) in final.items() if not up] == [], "agents left down: %s" % final
        expected = {n: INITIAL if action == "check" else TARGET for n in f.names}
        if action == "stuck":
            expected[SLOW] = INITIAL
        if action == "auth401":
            expected = {n: (INITIAL, TARGET) for n in f.names}
            expected[UNAUTHORIZED] = INITIAL
        for n, (up, version) in final.items():
            want = expected[n]
            assert version in want if isinstance(want, tuple) else version == want, (n, version, want, final)
        if not f.docker:
            delib = {}
            for e in f.sim.log(since=mark, event="deliberation"):
                delib[e["occurrence"]] = delib.get(e["occurrence"], 0) + 1
            assert all(v <= 1 for v in delib.values()), "deliberated more than once: %s" % delib
            assert f.sim.violations()["count"] == 0, f.sim.violations()["violations"][:3]
        if action == "check":
            assert not report_path.exists()
            if not f.docker:
                assert f.sim.log(since=mark, event="shutdown_requested") == []
            return
        agents = by_host(json.loads(report_path.read_text()))
        assert sorted(agents) == sorted(f.names), agents
        for n, (up, version) in final.items():
            result = agents[n]["result"]
            wanted = ("shutdown_requested", "exited", "started")
            seen = [] if f.docker else [e["event"] for e in f.sim.log(since=mark, occurrence=n) if e["event"] in wanted]
            if action == "kill_rerun" and ended_before and c["strategy"] == "rollback" and version == TARGET:
                assert result in ("updated", "skipped"), (n, result, version, agents[n].get("detail"), seen)
                continue
            assert (result == "updated") == (version == TARGET), (n, result, version, agents[n].get("detail"), seen)
        if action == "stuck":
            assert agents[SLOW]["result"] == ("declined" if c["consent"] == "ciris" else "failed"), agents[SLOW]


@pytest.fixture(params=CASES, ids=IDS)
def case(request):
    return request.param
