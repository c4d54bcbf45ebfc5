"""Time the rollout's wave calls (``run_wave``, the engine of ``rollout_wave``) outside Ansible.

    .venv/bin/python bench/wave_call.py --size 1000 [--driver none] [--repeat 3]
        [--collections-path git:HEAD] [--poll-interval 0.2] [--min-healthy-time 0] [--profile 25]

``--driver none`` (the default): agents that restart themselves at once
(bench/instant_agents.py, one port, the paths layout), a canary deployment of
four waves (10/30/40/20 %), one ``run_wave`` per wave under a
:class:`._run.Run` as the action plugin runs it (the controller check and the
state's fence before every request). Besides wall and CPU per wave it reads
the agents' timeline: "agent started -> first probe" (the largest over the
wave's agents) and "last agent stable -> return" (the wave's return minus the
last probe any of its agents saw: the gate stops probing an agent once it is
stable).

(``--driver fleetsim``, a fresh fleetsim started through its control port, went
with the collection's fleetsim update driver.)

``--profile N``: run under cProfile and print the top N functions by
cumulative and by own time (the client's threads are not profiled: cProfile
sees the main thread; their cost shows as the main thread waiting).
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/run.py)

HERE = os.path.dirname(os.path.abspath(__file__))
CANARY = (0.1, 0.3, 0.4, 0.2)


def defaults(spec):
    return dict((k, v.get("default")) for k, v in spec.items())


class Instant:
    """bench/instant_agents.py in a process of its own."""

    def __init__(self, size, wd, restart_ms=0.0, drain_ms=0.0, boot_ms=0.0, supervisor=True):
        ready = os.path.join(wd, "instant.json")
        self.inventory = os.path.join(wd, "instant-inv.yml")
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "instant_agents.py"), "--count", str(size),
                                      "--ready-file", ready, "--restart-ms", str(restart_ms),
                                      "--drain-ms", str(drain_ms), "--boot-ms", str(boot_ms),
                                      "--inventory", self.inventory] + ([] if supervisor else ["--no-supervisor"]))
        self.pid = self.proc.pid
        deadline = time.monotonic() + 60
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("instant_agents did not start")
            time.sleep(0.02)
        with open(ready) as f:
            info = json.load(f)
        self.url, self.members = info["url"], info["members"]

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return json.load(r)

    def versions(self):
        return self.get("/_versions")

    def cpu(self):
        return run.proc_cpu(self.proc.pid)

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)


def split(members, fractions):
    waves, at = [], 0
    for i, frac in enumerate(fractions):
        n = len(members) - at if i == len(fractions) - 1 else int(round(frac * len(members)))
        waves.append({"index": i, "name": "wave-%d" % (i + 1), "members": members[at:at + n], "size": n})
        at += n
    return waves


def cpu_now():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def one_none(opts, tmp, rep, prof):
    from ansible_collections.agentfleet.rollout.plugins.module_utils import _argspecs, _runners, _wave
    from ansible_collections.agentfleet.rollout.plugins.module_utils._run import Run

    wd = os.path.join(tmp, "run-%d" % rep)
    os.makedirs(wd)
    sim = Instant(opts.size, wd)
    try:
        waves = split(sim.members, CANARY if opts.waves == 4 else (1.0,))
        state = os.path.join(wd, "state.db")
        params = defaults(_argspecs.DEPLOYMENT_SPEC)
        params.update(state="running", state_path=state, deployment_id="d-bench", fleet_key="bench",
                      target_version="2.0.0", waves=waves)
        _runners.run_deployment(params)
        per_wave = []
        cpu0 = cpu_now()
        t_all = time.monotonic()
        for wave in waves:
            wp = defaults(_argspecs.WAVE_SPEC)
            wp.update(state_path=state, deployment_id="d-bench", wave=wave, wave_count=len(waves), driver="none",
                      min_healthy_time=opts.min_healthy_time, poll_interval=opts.poll_interval,
                      healthy_deadline=120.0, stop_timeout=60.0, last=wave is waves[-1],
                      max_workers=opts.max_workers or wp.get("max_workers"),
                      report_path=os.path.join(wd, "report.json"), audit_path=os.path.join(wd, "audit.jsonl"))
            rc = Run(controller_pid=os.getppid())
            c0, t0 = cpu_now(), time.monotonic()
            if prof is not None:
                prof.enable()
            out = _wave.run_wave(wp, run=rc)
            if prof is not None:
                prof.disable()
            t1 = time.monotonic()
            per_wave.append({"size": wave["size"], "t0": t0, "t1": t1, "wall": t1 - t0, "cpu": cpu_now() - c0,
                             "passed": bool(out.get("passed"))})
        wall = time.monotonic() - t_all
        cpu = cpu_now() - cpu0
        timeline = sim.get("/_timeline")
        for w, wave in zip(per_wave, waves):
            tl = [timeline[m["name"]] for m in wave["members"]]
            w["start_to_probe_max"] = max(t["first_probe_up"] - t["up"] for t in tl)
            w["ask_first_to_last"] = max(t["asked"] for t in tl) - min(t["asked"] for t in tl)
            w["called_to_first_ask"] = min(t["asked"] for t in tl) - w["t0"]
            w["stable_to_return"] = w["t1"] - max(t["last_probe"] for t in tl)
        versions = sim.get("/_versions")
        ok = all(w["passed"] for w in per_wave) and versions.get("2.0.0") == opts.size
        return {"wall": wall, "cpu": cpu, "ok": bool(ok), "versions": versions, "waves": per_wave,
                "loadavg": os.getloadavg()[0]}
    finally:
        sim.close()


def measure(opts, collections):
    """Run the configured measurement ``opts.repeat`` times; returns the result dict (importable by bench_check)."""
    sys.path.insert(0, collections)
    prof = cProfile.Profile() if opts.profile else None
    fn = one_none
    tmp = tempfile.mkdtemp(prefix="agentfleet-wave-")
    try:
        runs = [fn(opts, tmp, rep, prof) for rep in range(opts.repeat)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"size": opts.size, "driver": opts.driver, "poll_interval": opts.poll_interval,
              "min_healthy_time": opts.min_healthy_time, "runs": runs,
              "wall_median": statistics.median(r["wall"] for r in runs),
              "cpu_median": statistics.median(r["cpu"] for r in runs),
              "ok": all(r["ok"] for r in runs)}
    if opts.driver == "none":
        for key in ("start_to_probe_max", "stable_to_return", "called_to_first_ask"):
            result[key] = statistics.median(max(w[key] for w in r["waves"]) for r in runs)
    return result, prof


def options(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--driver", default="none", choices=["none"])
    ap.add_argument("--waves", type=int, default=4, choices=[1, 4], help="none only: canary (4) or one wave")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--poll-interval", type=float, default=1.0)
    ap.add_argument("--min-healthy-time", type=float, default=0.0)
    ap.add_argument("--max-workers", type=int, default=0, help="rollout_max_workers (0: the default)")
    ap.add_argument("--collections-path", default="git:HEAD")
    ap.add_argument("--profile", type=int, default=0, help="print the top N functions of a cProfile")
    ap.add_argument("--json", help="append the result as one JSON line to this file")
    return ap.parse_args(argv)


def main():
    opts = options()
    tmp = tempfile.mkdtemp(prefix="agentfleet-wavecoll-")
    try:
        coll, src = run.collections_path(opts.collections_path, tmp)
        result, prof = measure(opts, coll)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["collection"] = src
    for r in result["runs"]:
        print("  wall %.3f s  cpu %.2f s  ok %s  load %.1f" % (r["wall"], r["cpu"], r["ok"], r["loadavg"]))
        for w in r.get("waves", []):
            print("    wave of %4d: wall %.3f s cpu %.2f s  called->first ask %.3f s  started->first probe %.3f s  "
                  "last stable->return %.3f s  passed %s" % (
                      w["size"], w["wall"], w["cpu"], w["called_to_first_ask"], w["start_to_probe_max"],
                      w["stable_to_return"], w["passed"]))
    print("%s, %d agents, driver %s, poll_interval %g: wave calls wall %.3f s (%.3f ms/agent), CPU %.2f s "
          "(median of %d), all ok: %s" % (src, opts.size, opts.driver, opts.poll_interval, result["wall_median"],
                                          1000.0 * result["wall_median"] / opts.size, result["cpu_median"],
                                          len(result["runs"]), result["ok"]))
    if prof is not None:
        st = pstats.Stats(prof)
        st.sort_stats("cumulative").print_stats(opts.profile)
        st.sort_stats("tottime").print_stats(opts.profile)
    if opts.json:
        with open(opts.json, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
