"""Time one rollout wave call (``run_wave``, the engine of ``rollout_wave``) outside Ansible.

    .venv/bin/python bench/wave_call.py --size 1000 [--repeat 3] [--collections-path git:HEAD] [--layout ports]

Per run: a fresh fleetsim with ``--size`` agents on 1.0.0, a deployment with one
wave holding every agent, then one ``run_wave`` (phase all, driver none,
min_healthy_time 0, poll_interval 0.2): per agent a probe, a shutdown request
and the gate probes. The agents' supervisor of the ``none`` driver is a thread
here that starts the agents that exited on 2.0.0 (one batched call per 0.5 s). Prints wall and CPU
(this process: the client's threads) of the call; the median over the runs.
Compare two commits by running it twice with ``--collections-path git:<ref>``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/run.py)
sys.path.insert(0, run.ROOT)
from fleetsim.testing import http  # noqa: E402  (the repository's simulator)


def supervise(control_url, version, done):
    """The agents' own supervisor (the ``none`` driver): start every agent that exited, on ``version``."""
    while not done.wait(0.5):
        status, occs = http("GET", control_url + "/_sim/occurrences")
        down = [o["name"] for o in occs if not o["up"]] if status == 200 else []
        if down:
            http("POST", control_url + "/_sim/start", {"occurrences": down, "version": version})


def defaults(spec):
    return dict((k, v.get("default")) for k, v in spec.items())


def one(size, layout, tmp, rep):
    from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners, _wave

    wd = os.path.join(tmp, "run-%d" % rep)
    os.makedirs(wd)
    sim = run.Sim(size, layout, wd)
    try:
        with open(sim.inventory) as f:
            hosts = yaml.safe_load(f)["all"]["children"]["agents"]["hosts"]
        members = [dict(name=name, agent_url=h["agent_url"], agent_id=h["agent_id"], occurrence_id=h["occurrence_id"])
                   for name, h in hosts.items()]
        wave = {"index": 0, "name": "all", "members": members, "size": len(members)}
        state = os.path.join(wd, "state.db")
        params = defaults(_runners.DEPLOYMENT_SPEC)
        params.update(state="running", state_path=state, deployment_id="d-bench", fleet_key="bench", target_version="2.0.0",
                      waves=[wave])
        _runners.run_deployment(params)
        params = defaults(_runners.WAVE_SPEC)
        params.update(state_path=state, deployment_id="d-bench", wave=wave, wave_count=1, driver="none",
                      min_healthy_time=0.0, poll_interval=0.2, healthy_deadline=120.0)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        done = threading.Event()
        supervisor = threading.Thread(target=supervise, args=(sim.control_url, "2.0.0", done), daemon=True)
        supervisor.start()
        try:
            out = _wave.run_wave(params)
        finally:
            done.set()
            supervisor.join(10)
        wall = time.monotonic() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        versions = sim.versions()
        ok = out.get("passed") and versions.get("2.0.0") == size
        return {"wall": wall, "cpu": cpu, "ok": bool(ok), "versions": versions, "loadavg": os.getloadavg()[0]}
    finally:
        sim.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--layout", default="ports", choices=["ports", "paths"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--collections-path", default="git:HEAD")
    ap.add_argument("--json", help="append the result as one JSON line to this file")
    opts = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="agentfleet-wave-")
    try:
        coll, src = run.collections_path(opts.collections_path, tmp)
        sys.path.insert(0, coll)
        runs = [one(opts.size, opts.layout, tmp, rep) for rep in range(opts.repeat)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for r in runs:
        print("  wall %.2f s  cpu %.2f s  ok %s  load %.1f" % (r["wall"], r["cpu"], r["ok"], r["loadavg"]))
    result = {"collection": src, "size": opts.size, "layout": opts.layout, "runs": runs,
              "wall_median": statistics.median(r["wall"] for r in runs),
              "cpu_median": statistics.median(r["cpu"] for r in runs),
              "ok": all(r["ok"] for r in runs)}
    print("%s, %d agents (%s): run_wave wall %.2f s, CPU %.2f s (median of %d), all ok: %s"
          % (src, opts.size, opts.layout, result["wall_median"], result["cpu_median"], len(runs), result["ok"]))
    if opts.json:
        with open(opts.json, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
