"""cProfile one canary run of the ansible-playbook *controller* process.

    .venv/bin/python bench/profile_run.py --size 1000 [--top 30]

Runs agentfleet.rollout.canary (none driver, bench/instant_agents.py agents) under cProfile and
prints the functions with the most cumulative and own time. Only the main
ansible-playbook process is profiled: task workers are forked and leave with
os._exit, so what runs inside a worker (action plugins, modules) shows up in
the per-task timing of bench/run.py, not here. The .prof file is kept in
bench/results/.
"""
from __future__ import annotations

import argparse
import io
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/run.py)
import wave_call  # noqa: E402  (bench/wave_call.py)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--layout", default="auto", choices=["auto", "ports", "paths"])
    ap.add_argument("--collections-path", default="auto")
    ap.add_argument("--top", type=int, default=30)
    opts = ap.parse_args()
    layout = opts.layout if opts.layout != "auto" else ("ports" if opts.size <= 1000 else "paths")
    os.makedirs(os.path.join(run.BENCH, "results"), exist_ok=True)
    prof = os.path.join(run.BENCH, "results", "canary-%d-%s.prof" % (opts.size, time.strftime("%Y%m%d-%H%M%S")))
    tmp = tempfile.mkdtemp(prefix="agentfleet-prof-")
    coll, src = run.collections_path(opts.collections_path, tmp)
    # the none driver against agents that restart themselves at once (the fleetsim driver is gone)
    sim = wave_call.Instant(opts.size, tmp)
    layout = "paths"
    try:
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=coll, ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOCAL_TEMP=os.path.join(tmp, "ansible-local"))
        playbook_bin = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
        cmd = [sys.executable, "-m", "cProfile", "-o", prof, playbook_bin, "agentfleet.rollout.canary",
               "-i", sim.inventory, "-e", "rollout_target_version=2.0.0", "-e", "rollout_driver=none",
               "-e", "rollout_min_healthy_time=0", "-e", "rollout_poll_interval=0.2",
               "-e", "rollout_wait_between_waves=0", "-e", "rollout_state_path=%s/state.db" % tmp,
               "-e", "rollout_report_path=%s/report.json" % tmp, "-e", "rollout_audit_path=%s/audit.jsonl" % tmp]
        t0 = time.monotonic()
        with open(os.path.join(tmp, "out.txt"), "wb") as out:
            rc = subprocess.call(cmd, env=env, cwd=run.ROOT, stdout=out, stderr=subprocess.STDOUT)
        wall = time.monotonic() - t0
        print("canary %d agents (%s layout, %s) under cProfile: rc %d, wall %.1f s, versions %s"
              % (opts.size, layout, src, rc, wall, sim.versions()))
    finally:
        sim.close()
        shutil.rmtree(tmp, ignore_errors=True)
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        st = pstats.Stats(prof, stream=buf)
        st.sort_stats(key).print_stats(opts.top)
        print("\n".join(line for line in buf.getvalue().splitlines() if line.strip())[:20000])
    print("profile: %s" % prof)


if __name__ == "__main__":
    main()
