"""Helpers of the user-path tests (issue 19): the tasks driver with a fleetsim task file, CIRIS-like agents,
a second process for pause / resume / kill, and the checks every case makes on fleetsim's log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ansible_env, run_playbook
from fleetsim.testing import tasks_driver_vars

FILES = Path(__file__).resolve().parent / "files"
UPDATE_TASKS = FILES / "fleetsim-update.yml"
CANDIDATE_TASKS = Path(tasks_driver_vars()["rollout_candidate_tasks"])
RETIRE_TASKS = Path(tasks_driver_vars()["rollout_retire_tasks"])
SHUTDOWN = "/v1/system/shutdown"
TOKEN = "user-path-token-never-printed-5e1"


def fleet(count, overrides=None, **defaults):
    """``count`` agents agent-000.. that answer like ciris-agent 2.16.5 unless ``consent`` says otherwise."""
    d = {"consent": "ciris", "decide_seconds": 0.3, "drain_seconds": 0.5}
    d.update(defaults)
    group = {"count": count, "name_prefix": "agent-"}
    if overrides:
        group["overrides"] = overrides
    return {"defaults": d, "agents": [group]}


def rollout_vars(tmp_path, driver="tasks", **extra):
    v = {
        "rollout_target_version": "2.0.0",
        "rollout_driver": driver,
        "rollout_min_healthy_time": 0,
        "rollout_poll_interval": 0.2,
        "rollout_healthy_deadline": 15,
        "rollout_state_path": str(tmp_path / "state.db"),
        "rollout_report_path": str(tmp_path / "report.json"),
        "rollout_audit_path": str(tmp_path / "audit.jsonl"),
    }
    if driver == "tasks":
        v["rollout_update_tasks"] = str(UPDATE_TASKS)
    v.update(extra)
    return v


def env_for(tmp_path, token=None):
    return ansible_env(tmp_path, AGENTFLEET_TOKEN=token) if token else ansible_env(tmp_path)


def run(sim, tmp_path, playbook="canary", check=False, token=None, timeout=240, args=None, inventory=None, env=None,
        **extra):
    return run_playbook("agentfleet.rollout." + playbook, tmp_path, inventory=inventory or sim.inventory_path,
                        extra_vars=rollout_vars(tmp_path, **extra), check=check,
                        env=dict(env_for(tmp_path, token), **(env or {})),
                        report_path=tmp_path / "report.json", timeout=timeout, args=args)


def start_background(sim, tmp_path, playbook="canary", token=None, inventory=None, **extra):
    """The playbook as a second process (its own process group, so kill -9 takes its forks too)."""
    varfile = tmp_path / ("bg-%s-%d.json" % (playbook, time.monotonic_ns()))
    varfile.write_text(json.dumps(rollout_vars(tmp_path, **extra)))
    out = open(tmp_path / ("bg-%s.out" % playbook), "w")
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "agentfleet.rollout." + playbook,
           "-i", str(inventory or sim.inventory_path), "-e", "@%s" % varfile]
    proc = subprocess.Popen(cmd, cwd=str(tmp_path), env=env_for(tmp_path, token), stdout=out,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    proc.out_path = tmp_path / ("bg-%s.out" % playbook)
    return proc


def kill9(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(30)


def lifecycle_op(tmp_path, op, **extra):
    """agentfleet.rollout.pause / fail on the controller, from another process."""
    v = rollout_vars(tmp_path, rollout_deployment_key="agents", rollout_reason="operator: " + op)
    v.update(extra)
    return run_playbook("agentfleet.rollout." + op, tmp_path, extra_vars=v, timeout=120)


def asked(sim, deployment_id=None):
    """Shutdown POSTs per occurrence (optionally of one deployment)."""
    counts = {}
    for e in sim.log(path=SHUTDOWN, method="POST"):
        if deployment_id is None or (e.get("body") or {}).get("deployment_id") == deployment_id:
            counts[e["occurrence"]] = counts.get(e["occurrence"], 0) + 1
    return counts


def deliberations(sim, deployment_id=None):
    counts = {}
    for e in sim.log(event="deliberation"):
        if deployment_id is None or e.get("deployment_id") == deployment_id:
            counts[e["occurrence"]] = counts.get(e["occurrence"], 0) + 1
    return counts


def states(sim):
    """{name: (up, version)} from fleetsim's view of every occurrence."""
    return {n: (o["up"], o["version"]) for n, o in sim.occurrences().items()}


def down(sim):
    return sorted(n for n, o in sim.occurrences().items() if not o["up"])


def by_host(report):
    return {a["host"]: a for a in report["agents"]}


def records(tmp_path):
    import sqlite3

    path = tmp_path / "state.db"
    if not path.exists():
        return {}
    db = sqlite3.connect(str(path), timeout=10)
    try:
        return dict(db.execute("SELECT version, status FROM deployments"))
    finally:
        db.close()


def downtimes(sim):
    """{name: [seconds down]}: from each lifecycle ``exited`` to the next ``started`` (fleetsim's log)."""
    out, since = {}, {}
    for e in sim.log():
        if e.get("path") is not None:
            continue
        name, ev = e["occurrence"], e.get("event")
        if ev == "exited":
            since[name] = e["ts"]
        elif ev == "started" and name in since:
            out.setdefault(name, []).append(e["ts"] - since.pop(name))
    for name, ts in since.items():
        out.setdefault(name, []).append(float("inf"))  # never started again
    return out
