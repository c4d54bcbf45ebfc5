"""Benchmark: the ``tasks`` driver runs the user's update tasks on each agent's host, in parallel.

    .venv/bin/python bench/tasks_driver.py [--agents 20] [--forks 10] [--update-seconds 1] [--repeat 2]
                                           [--cohorts ciris]

Against a fresh fleetsim each run: the canary playbook with ``rollout_driver=tasks`` and a task file
whose update takes ``--update-seconds`` (``sleep``) and then starts the agent on 2.0.0 through the
simulator; and the empty play on the same inventory (start-up baseline). Prints wall, baseline and
wall - baseline (the target of the issue: 20 agents, 1 s updates, --forks 10, <= 10 s above start-up).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from fleetsim.testing import FleetSim  # noqa: E402  (the repository's simulator)

# The update: one module task that takes the update's time, then the simulator's start through its control
# port (ansible.builtin.uri). On this 2-core box each module process costs ~0.3-0.45 s of CPU (interpreter
# start-up and ansible's module_utils imports): the user's cost, not the collection's. (The collection's
# fleetsim_start action, the lighter start this benchmark used before, went with the fleetsim driver.)
UPDATES = {
    "uri": """- name: The update itself (it takes {seconds} s)
  ansible.builtin.command: sleep {seconds}
  changed_when: true
- name: Start the agent on the new version (through the simulator)
  ansible.builtin.uri:
    url: "{{{{ fleetsim_control_url }}}}/_sim/start"
    method: POST
    body_format: json
    body: {{occurrences: ["{{{{ inventory_hostname }}}}"], version: "{{{{ rollout_update_version }}}}"}}
""",
}


def timed(cmd, env, cwd):
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    return time.monotonic() - start, proc


def one_run(args, bindir, collections, tmp):
    work = tempfile.mkdtemp(dir=tmp)
    tasks = os.path.join(work, "update.yml")
    with open(tasks, "w") as f:
        f.write(UPDATES[args.update_style].format(seconds=args.update_seconds))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="false",
               ANSIBLE_HOME=os.path.join(work, "ansible-home"), ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    timer = os.path.join(work, "timer.json")
    if args.profile:
        env.update(ANSIBLE_CALLBACK_PLUGINS=os.path.join(ROOT, "bench", "callback_plugins"),
                   ANSIBLE_CALLBACKS_ENABLED="bench_timer", BENCH_TIMER_OUT=timer)
    with FleetSim(count=args.agents, workdir=os.path.join(work, "sim")) as sim:
        empty, proc = timed([os.path.join(bindir, "ansible-playbook"), os.path.join(ROOT, "bench", "empty.yml"),
                             "-i", str(sim.inventory_path)], env, work)
        extra = {"rollout_target_version": "2.0.0", "rollout_driver": "tasks", "rollout_update_tasks": tasks,
                 "rollout_min_healthy_time": 0, "rollout_poll_interval": 0.2, "rollout_cohorts": args.cohorts,
                 "rollout_state_path": os.path.join(work, "state.db"),
                 "rollout_report_path": os.path.join(work, "report.json"),
                 "rollout_audit_path": os.path.join(work, "audit.jsonl")}
        with open(os.path.join(work, "vars.json"), "w") as f:
            json.dump(extra, f)
        wall, proc = timed([os.path.join(bindir, "ansible-playbook"), "agentfleet.rollout.canary", "-i",
                            str(sim.inventory_path), "-e", "@" + os.path.join(work, "vars.json"),
                            "--forks", str(args.forks)], env, work)
        report_path = os.path.join(work, "report.json")
        report = {"totals": {}}
        if os.path.exists(report_path):
            with open(report_path) as f:
                report = json.load(f)
        ok = proc.returncode == 0 and report["totals"].get("updated") == args.agents
        if args.profile:
            print_profile(timer)
        if not ok:
            print(proc.stdout[-3000:] + proc.stderr[-3000:], file=sys.stderr)
        # the user's update tasks alone: one plain play over the same agents at the same forks, no rollout
        # (what the tasks cost by themselves here; the rollout's own overhead is the difference)
        alone_play = os.path.join(work, "alone.yml")
        with open(alone_play, "w") as f:
            f.write("- hosts: agents\n  gather_facts: false\n  tasks:\n"
                    "    - ansible.builtin.include_tasks: %s\n      vars: {rollout_update_version: 3.0.0}\n" % tasks)
        alone, proc = timed([os.path.join(bindir, "ansible-playbook"), alone_play, "-i", str(sim.inventory_path),
                             "--forks", str(args.forks)], env, work)
        if proc.returncode != 0:
            print(proc.stdout[-3000:] + proc.stderr[-3000:], file=sys.stderr)
            ok = False
    return {"wall": wall, "empty": empty, "above": wall - empty, "tasks_alone": alone - empty,
            "overhead": wall - alone, "ok": ok}


def print_profile(path):
    """The slowest tasks of the run (bench_timer's output), summed by task name."""
    with open(path) as f:
        data = json.load(f)
    by_name = {}
    for t in data["tasks"]:
        key = "%s | %s" % (t["name"], t["action"])
        by_name[key] = by_name.get(key, 0.0) + t["end"] - t["start"]
    for key, secs in sorted(by_name.items(), key=lambda kv: -kv[1])[:15]:
        print("  %7.2f s  %s" % (secs, key))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--forks", type=int, default=10)
    ap.add_argument("--update-seconds", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--cohorts", default="ciris")
    ap.add_argument("--update-style", choices=sorted(UPDATES), default="uri",
                    help="uri: command + ansible.builtin.uri to the simulator's start")
    ap.add_argument("--profile", action="store_true", help="print the slowest tasks of each run (bench_timer)")
    ap.add_argument("--collections-path", default=os.path.join(ROOT, "build", "collections"))
    args = ap.parse_args()
    args.collections_path = os.path.abspath(args.collections_path)
    bindir = os.path.dirname(sys.executable)
    with tempfile.TemporaryDirectory(prefix="bench-tasks-") as tmp:
        runs = [one_run(args, bindir, args.collections_path, tmp) for dummy in range(args.repeat)]
    med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "empty", "above", "tasks_alone", "overhead")}
    print("tasks driver: %d agents, cohorts %s, update %.1f s (%s), --forks %d, %d runs: wall %.1f s, start-up %.1f s, "
          "above start-up %.1f s; the update tasks alone (plain play, same forks) %.1f s above start-up, so the rollout "
          "adds %.1f s (medians), all ok: %s" % (
              args.agents, args.cohorts, args.update_seconds, args.update_style, args.forks, len(runs), med["wall"], med["empty"],
              med["above"], med["tasks_alone"], med["overhead"], all(r["ok"] for r in runs)))
    print(json.dumps(runs))


if __name__ == "__main__":
    main()
