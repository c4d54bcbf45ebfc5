"""How far one controller goes (issue 20, measured, not a bar): ``make bench-scale``.

    .venv/bin/python bench/scale.py [--none-size 10000] [--tasks-size 1000] [--forks 10] [--write-doc]

1. **The ``none`` canary at 10,000 agents** (paths layout, bench/instant_agents.py agents that restart
   themselves at once, ``rollout_min_healthy_time=0``): the empty play, the floor play (one trivial
   per-host task) and the canary on the same inventory. Overhead per agent over the floor =
   (canary - floor) / agents.
2. **The ``tasks`` driver at 1,000 agents**: the same agents, but nothing restarts an agent that exited
   (``--no-supervisor``); the update task file is one task, ``ansible.builtin.set_fact`` whose value is a
   ``lookup('ansible.builtin.url')`` of the agents' start endpoint (no module process: what a trivial
   update costs at least), ``--forks`` (10).

For each run: wall, empty, floor, overhead per agent over the floor, the controller's peak RSS (VmHWM of
the ``ansible-playbook`` process itself), the largest process of the tree (``ru_maxrss``) and the peak of
the tree's summed RSS (workers share pages with the controller: an upper bound), CPU of the tree, and the
per-task time. With ``--write-doc`` the section of docs/performance.md between
``<!-- bench-scale:begin -->`` and ``<!-- bench-scale:end -->`` is rewritten.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check  # noqa: E402  (bench/check.py)
import run  # noqa: E402  (bench/run.py)
import wave_call  # noqa: E402  (bench/wave_call.py)

BENCH, DOC, VERSION = run.BENCH, run.DOC, check.VERSION
BEGIN, END = "<!-- bench-scale:begin -->", "<!-- bench-scale:end -->"

# the trivial update of the tasks driver benchmark: start the agent on the version to start through the bench
# agents' start endpoint (a lookup in the worker: no module process)
UPDATE = "---\n" + check.START_TASK


def one(opts, env, tmp, kind, size):
    wd = os.path.join(tmp, "%s-%d" % (kind, size))
    os.makedirs(wd)
    t0 = time.monotonic()
    sim = wave_call.Instant(size, wd, supervisor=(kind == "none"))
    log("%s, %d agents: agents up in %.1f s" % (kind, size, time.monotonic() - t0))
    extra = ["rollout_min_healthy_time=0"]
    if kind == "tasks":
        update = os.path.join(wd, "update.yml")
        with open(update, "w") as f:
            f.write(UPDATE)
        extra += ["rollout_update_tasks=" + update]
    try:
        inv = sim.inventory
        out = {"kind": kind, "size": size,
               "empty": check.timed([opts.playbook_bin, os.path.join(BENCH, "empty.yml"), "-i", inv], env, wd,
                                    "empty"),
               "floor": check.timed([opts.playbook_bin, os.path.join(BENCH, "floor.yml"), "-i", inv,
                                     "--forks", str(opts.forks)], env, wd, "floor")}
        cmd = check.rollout_cmd(opts, inv, wd, kind, *extra) + ["--forks", str(opts.forks)]
        out["canary"] = check.timed(cmd, env, wd, "canary")
        versions = sim.get("/_versions")
        violations = sim.get("/_violations")["violations"]
    finally:
        sim.close()
    return check.judge_run(out, wd, size, versions, violations, "canary")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def row(r):
    c, e, fl = r["canary"], r["empty"]["wall_s"], r["floor"]["wall_s"]
    over, floor_ms = check.per_agent_ms(r)
    name = "canary, `none` driver" if r["kind"] == "none" else "canary, `tasks` driver (set_fact + url lookup)"
    cells = (name, "{:,}".format(r["size"]), c["wall_s"], e, fl, over, floor_ms, over - floor_ms,
             c["cpu_user_s"] + c["cpu_sys_s"], c["controller_rss_peak_mb"], c["maxrss_mb"], c["tree_rss_peak_mb"],
             "yes" if r["ok"] else "**no**: " + r["detail"])
    return ("| %s | %s | %.1f s | %.1f s | %.1f s | %.2f ms | %.2f ms | **%.2f ms** | %.0f s | %.0f MB | %.0f MB "
            "| %.0f MB | %s |" % cells)


def section(runs, head):
    """The "One controller's reach" section of docs/performance.md: the runs' table and per-task times."""
    lines = [head, "",
             "| run | agents | wall | empty play | floor play | (wall − empty) / agent | floor / agent "
             "| over the floor / agent | CPU (tree) | controller peak RSS | largest process | tree RSS sum "
             "| ok |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    lines += [row(r) for r in runs]
    for r in runs:
        lines += check.profile_lines("%s driver, %s agents" % (r["kind"], "{:,}".format(r["size"])), r["canary"])
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--none-size", type=int, default=10000)
    ap.add_argument("--tasks-size", type=int, default=1000)
    ap.add_argument("--forks", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--poll-interval", type=float, default=0.2)
    ap.add_argument("--collections-path", default="build")
    ap.add_argument("--playbook-bin", default=os.path.join(os.path.dirname(sys.executable), "ansible-playbook"))
    ap.add_argument("--results", default=os.path.join(BENCH, "results"))
    ap.add_argument("--write-doc", action="store_true")
    opts = ap.parse_args()
    t_start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="agentfleet-scale-")
    try:
        coll, src = run.collections_path(opts.collections_path, tmp)
        env = check.bench_env(coll, tmp)
        core = subprocess.run([opts.playbook_bin, "--version"], capture_output=True, text=True, env=env,
                              check=False).stdout.splitlines()[0]
        load0 = run.loadavg()
        runs = []
        for dummy in range(opts.repeat):
            if opts.tasks_size:
                runs.append(one(opts, env, tmp, "tasks", opts.tasks_size))
            if opts.none_size:
                runs.append(one(opts, env, tmp, "none", opts.none_size))
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        text = section(runs, "Measured %s on %d CPUs (load average %.1f before, %.1f after), Python %s, %s; "
                       "collection: %s; `--forks %d`; took %.0f s." % (
                           when, os.cpu_count(), load0, run.loadavg(), platform.python_version(), core, src,
                           opts.forks, time.monotonic() - t_start))
        print(text)
        os.makedirs(opts.results, exist_ok=True)
        with open(os.path.join(opts.results, "scale-%s.json" % time.strftime("%Y%m%d-%H%M%S")), "w") as f:
            json.dump(runs, f, default=str)
        if opts.write_doc:
            check.write_doc(text, BEGIN, END, "## One controller's reach (`make bench-scale`)")
        sys.exit(0 if all(r["ok"] for r in runs) else 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
