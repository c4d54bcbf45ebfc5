"""Rollout benchmark: agentfleet.rollout.canary vs the native serial+uri way.

Runs against fleetsim (instant boot, zero waits), one fresh simulator per run so
every agent starts on 1.0.0. See docs/performance.md for what is measured.

    .venv/bin/python bench/run.py [--sizes 100,1000,5000] [--native-sizes 100]
                                  [--repeat 2] [--write-doc]

Per run: wall time (time.monotonic around the ansible-playbook subprocess), its
CPU time and peak RSS from os.wait4 (the rusage of the process and all of its
waited-for descendants: ru_maxrss is the largest single process of the tree),
the peak of the summed RSS of the live process tree (sampled from /proc every
0.2 s: counts copy-on-write pages of forked workers more than once), fleetsim's
own CPU time (/proc/<pid>/stat), and a per-task timing (bench/callback_plugins).
Raw JSON goes to bench/results/.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
DOC = os.path.join(ROOT, "docs", "performance.md")
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
VERSION = "2.0.0"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ helpers
def proc_cpu(pid):
    """utime+stime (s) of a live process, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK
    except (OSError, IndexError, ValueError):
        return None


def tree_rss(pid):
    """Summed RSS (bytes) of pid and its live descendants."""
    total, stack, seen = 0, [pid], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open("/proc/%d/statm" % p) as f:
                total += int(f.read().split()[1]) * PAGE
            for t in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, t)) as f:
                    stack.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            pass
    return total


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def measure(cmd, env, out_path, cwd):
    """Run cmd; return wall, cpu, maxrss, tree peak, rc."""
    with open(out_path, "wb") as out:
        t0 = time.monotonic()
        epoch0 = time.time()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        peak = hwm = 0
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, tree_rss(proc.pid))
            hwm = max(hwm, controller_hwm(proc.pid))
            time.sleep(0.2)
        wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": wall, "spawn_epoch": epoch0, "rc": proc.returncode,
            "cpu_user_s": ru.ru_utime, "cpu_sys_s": ru.ru_stime,
            "maxrss_mb": ru.ru_maxrss / 1024.0, "tree_rss_peak_mb": peak / 1048576.0,
            "controller_rss_peak_mb": hwm / 1024.0}


def controller_hwm(pid):
    """Peak RSS (kB, VmHWM) of the process pid itself: the ansible-playbook controller, not its workers."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class Sim:
    """A fresh fleetsim process (python -m fleetsim serve)."""

    def __init__(self, count, layout, workdir):
        for attempt in range(5):
            try:
                self._start(count, layout, workdir, attempt)
                break
            except RuntimeError:
                if attempt == 4:
                    raise
                self.close()

    def _start(self, count, layout, workdir, attempt):
        # Ports below the ephemeral range (32768+ on Linux): with --base-port 0
        # an agent's port, closed while it restarts, can be taken by any client
        # socket on this busy box and the restart then fails with EADDRINUSE.
        base = random.randrange(10000, 32000 - count - 2)
        self.workdir = workdir
        self.inventory = os.path.join(workdir, "inv.yml")
        ready = os.path.join(workdir, "ready.json")
        self.errf = open(os.path.join(workdir, "fleetsim-%d.err" % attempt), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fleetsim", "serve", "--count", str(count), "--layout", layout,
             "--base-port", str(base), "--control-port", str(base - 1),
             "--inventory", self.inventory, "--ready-file", ready,
             "--state-dir", os.path.join(workdir, "simstate-%d" % attempt)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.errf)
        deadline = time.monotonic() + 120
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("fleetsim did not start: see %s" % self.errf.name)
            time.sleep(0.05)
        with open(ready) as f:
            self.ready = json.load(f)
        self.control_url = self.ready["control_url"]

    def versions(self):
        with urllib.request.urlopen(self.control_url + "/_sim/occurrences", timeout=60) as r:
            occ = json.load(r)
        counts = {}
        for o in occ:
            counts[o["version"]] = counts.get(o["version"], 0) + 1
        return counts

    def cpu(self):
        return proc_cpu(self.proc.pid)

    def close(self):
        if self.proc.poll() is not None:
            self.errf.close()
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.errf.close()


def collections_path(arg, tmp):
    """build/collections when fresh (or asked for), else a symlink tree -> the checkout."""
    built = os.path.join(ROOT, "build", "collections")
    manifest = os.path.join(built, "ansible_collections", "agentfleet", "rollout", "MANIFEST.json")
    if arg.startswith("git:"):
        # A clean snapshot of a commit: other work in the checkout cannot change the code mid-run.
        ref = arg[4:]
        sha = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dest = os.path.join(tmp, "collections", "ansible_collections", "agentfleet", "rollout")
        os.makedirs(dest)
        archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
        return os.path.join(tmp, "collections"), "git archive of %s (%s)" % (ref, sha)
    if arg not in ("auto", "build", "tree"):
        return arg, "given"
    if arg in ("auto", "build") and os.path.exists(manifest):
        newest = 0.0
        for sub in ("plugins", "roles", "playbooks", "meta"):
            for d, _dirs, files in os.walk(os.path.join(ROOT, sub)):
                for fn in files:
                    newest = max(newest, os.path.getmtime(os.path.join(d, fn)))
        if arg == "build" or os.path.getmtime(manifest) >= newest:
            return built, "build/collections (make build)"
    link_root = os.path.join(tmp, "collections")
    os.makedirs(os.path.join(link_root, "ansible_collections", "agentfleet"))
    os.symlink(ROOT, os.path.join(link_root, "ansible_collections", "agentfleet", "rollout"))
    return link_root, "symlink tree -> checkout"


# ------------------------------------------------------------------ one run
def one_run(kind, size, layout, rep, opts, env_base, tmp, suffix=""):
    wd = os.path.join(tmp, "%s-%d-%d%s" % (kind, size, rep, suffix))
    os.makedirs(wd)
    if kind == "canary":
        # the collection has no fleetsim update driver any more: the canary runs with the none driver against
        # agents that restart themselves at once (bench/instant_agents.py, one port: the paths layout)
        import wave_call  # noqa: E402  (bench/wave_call.py imports this module)
        sim, layout = wave_call.Instant(size, wd), "paths"
    else:
        sim = Sim(size, layout, wd)
    try:
        env = dict(env_base)
        res = {"kind": kind, "size": size, "layout": layout, "rep": rep,
               "loadavg_1m_before": loadavg()}
        # 1. fixed-cost baseline on the same inventory (touches no agent)
        res["empty"] = measure([opts.playbook_bin, os.path.join(BENCH, "empty.yml"), "-i", sim.inventory],
                               env, os.path.join(wd, "empty.out"), ROOT)
        # 2. the rollout
        timer = os.path.join(wd, "timer.json")
        env["BENCH_TIMER_OUT"] = timer
        if kind == "canary":
            cmd = [opts.playbook_bin, "agentfleet.rollout.canary", "-i", sim.inventory,
                   "-e", "rollout_target_version=" + VERSION, "-e", "rollout_driver=none",
                   "-e", "rollout_min_healthy_time=0", "-e", "rollout_poll_interval=0.2",
                   "-e", "rollout_wait_between_waves=0",
                   "-e", "rollout_state_path=" + os.path.join(wd, "state.db"),
                   "-e", "rollout_report_path=" + os.path.join(wd, "report.json"),
                   "-e", "rollout_audit_path=" + os.path.join(wd, "audit.jsonl")]
        else:
            cmd = [opts.playbook_bin, os.path.join(BENCH, "native_canary.yml"), "-i", sim.inventory]
        sim_cpu0 = sim.cpu()
        m = measure(cmd, env, os.path.join(wd, "playbook.out"), ROOT)
        sim_cpu1 = sim.cpu()
        res.update(m)
        res["fleetsim_cpu_s"] = (sim_cpu1 - sim_cpu0) if None not in (sim_cpu0, sim_cpu1) else None
        try:
            res["versions_after"] = sim.versions()
        except OSError as exc:
            res["versions_after"] = {}
            res["sim_error"] = "fleetsim control port: %s (fleetsim exit code %s)" % (exc, sim.proc.poll())
            m["rc"] = m["rc"] or -1
        ok = m["rc"] == 0 and res["versions_after"].get(VERSION) == size
        if kind == "canary":
            try:
                with open(os.path.join(wd, "report.json")) as f:
                    rep_ = json.load(f)
                results = [a.get("result") for a in rep_["agents"]]
                res["report_status"] = rep_.get("status")
                res["report_updated"] = results.count("updated")
                ok = ok and rep_.get("status") == "completed" and results.count("updated") == size
            except (OSError, ValueError, KeyError) as exc:
                res["report_error"] = str(exc)
                ok = False
        res["ok"] = ok
        try:
            with open(timer) as f:
                res["timer"] = json.load(f)
        except (OSError, ValueError):
            res["timer"] = None
        if not ok:
            keep = os.path.join(opts.results, "failed-%s-%d-%d" % (kind, size, rep))
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(wd, keep, ignore=shutil.ignore_patterns("simstate"))
            log("!! %s %d rep %d FAILED (rc %s, versions %s, %s): kept %s"
                % (kind, size, rep, m["rc"], res["versions_after"], res.get("sim_error", ""), keep))
        return res
    finally:
        sim.close()
        shutil.rmtree(wd, ignore_errors=True)


# ------------------------------------------------------------------ summaries
WAVE_RE = re.compile(r"Wave \d+ \S+: ")


def task_profile(timer, spawn_epoch):
    """Group a run's tasks (wave prefix dropped) -> [(label, seconds, count)]."""
    if not timer:
        return None
    groups = {}
    for t in timer["tasks"]:
        name = WAVE_RE.sub("Wave N: ", t["name"])
        label = "%s | %s" % (name, t["action"])
        g = groups.setdefault(label, [0.0, 0])
        g[0] += t["end"] - t["start"]
        g[1] += 1
    first = min((t["start"] for t in timer["tasks"]), default=timer["end"])
    rows = sorted(((k, v[0], v[1]) for k, v in groups.items()), key=lambda r: -r[1])
    actions = {}
    for t in timer["tasks"]:
        a = actions.setdefault(t["action"], [0.0, 0])
        a[0] += t["end"] - t["start"]
        a[1] += 1
    return {"actions": sorted(((k, v[0], v[1]) for k, v in actions.items()), key=lambda r: -r[1]),
            "startup_to_first_task_s": first - spawn_epoch,
            "callback_loaded_s": timer["loaded"] - spawn_epoch,
            "tasks_total_s": timer["end"] - first,
            "tasks": rows}


def summarise(runs):
    by = {}
    for r in runs:
        by.setdefault((r["kind"], r["size"]), []).append(r)
    rows = []
    for (kind, size), rs in sorted(by.items(), key=lambda kv: (kv[0][0] != "canary", kv[0][1])):
        def med(key, src=rs):
            return statistics.median(x[key] for x in src)

        wall = med("wall_s")
        empty = statistics.median(x["empty"]["wall_s"] for x in rs)
        cpu = statistics.median(x["cpu_user_s"] + x["cpu_sys_s"] for x in rs)
        sim_cpu = [x["fleetsim_cpu_s"] for x in rs if x["fleetsim_cpu_s"] is not None]
        rows.append({
            "kind": kind, "size": size, "layout": rs[0]["layout"], "runs": len(rs),
            "ok": all(x["ok"] for x in rs),
            "wall_s": wall, "walls": [round(x["wall_s"], 2) for x in rs],
            "empty_s": empty,
            "ms_per_agent": 1000.0 * wall / size,
            "net_ms_per_agent": 1000.0 * (wall - empty) / size,
            "cpu_s": cpu, "fleetsim_cpu_s": statistics.median(sim_cpu) if sim_cpu else None,
            "maxrss_mb": max(x["maxrss_mb"] for x in rs),
            "tree_rss_peak_mb": max(x["tree_rss_peak_mb"] for x in rs),
            "loadavg": [x["loadavg_1m_before"] for x in rs],
        })
    canary = {r["size"]: r for r in rows if r["kind"] == "canary"}
    for r in rows:
        if r["kind"] == "native" and r["size"] in canary:
            c = canary[r["size"]]
            r["speedup_wall"] = r["wall_s"] / c["wall_s"]
            r["speedup_net"] = (r["wall_s"] - r["empty_s"]) / max(c["wall_s"] - c["empty_s"], 1e-9)
    return rows


def table(rows):
    out = ["| way | agents | layout | runs | wall (median) | empty-play baseline | wall / agent "
           "| (wall − baseline) / agent | ansible CPU (user+sys) | fleetsim CPU | peak RSS, largest process "
           "| peak RSS, tree sum | ok |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        way = "canary (agentfleet.rollout)" if r["kind"] == "canary" else "native (serial + uri, forks 5)"
        out.append("| %s | %s | %s | %d | %.2f s | %.2f s | %.2f ms | %.2f ms | %.1f s | %s | %.0f MB | %.0f MB | %s |" % (
            way, format(r["size"], ","), r["layout"], r["runs"], r["wall_s"], r["empty_s"],
            r["ms_per_agent"], r["net_ms_per_agent"], r["cpu_s"],
            "%.1f s" % r["fleetsim_cpu_s"] if r["fleetsim_cpu_s"] is not None else "n/a",
            r["maxrss_mb"], r["tree_rss_peak_mb"], "yes" if r["ok"] else "**NO**"))
    sp = [r for r in rows if "speedup_wall" in r]
    if sp:
        out.append("")
        out.append("| agents | native / canary (wall) | native / canary (wall − baseline) |")
        out.append("|---:|---:|---:|")
        for r in sp:
            out.append("| %s | %.1f× | %.1f× |" % (format(r["size"], ","), r["speedup_wall"], r["speedup_net"]))
    return "\n".join(out)


def profile_text(runs, top):
    out = []
    seen = set()
    for r in runs:
        key = (r["kind"], r["size"])
        if key in seen or not r.get("timer"):
            continue
        seen.add(key)
        p = task_profile(r["timer"], r["spawn_epoch"])
        out.append("%s, %s agents (rep %d, wall %.2f s): spawn -> first task %.2f s, tasks %.2f s"
                   % (r["kind"], format(r["size"], ","), r["rep"], r["wall_s"],
                      p["startup_to_first_task_s"], p["tasks_total_s"]))
        for label, secs, n in p["tasks"][:top]:
            out.append("    %7.2f s  %5.1f %%  x%-3d %s" % (secs, 100.0 * secs / r["wall_s"], n, label))
        out.append("  by action: " + ", ".join("%s %.2f s (x%d)" % a for a in p["actions"][:top]))
    return "\n".join(out)


def write_doc(text):
    with open(DOC) as f:
        doc = f.read()
    if BEGIN not in doc or END not in doc:
        raise SystemExit("%s has no %s ... %s markers" % (DOC, BEGIN, END))
    head, rest = doc.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    with open(DOC, "w") as f:
        f.write(head + BEGIN + "\n" + text + "\n" + END + tail)


# ------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--sizes", default="100,1000,5000", help="canary sizes (comma list, '' for none)")
    ap.add_argument("--native-sizes", default="100", help="native sizes (comma list, '' for none)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per size up to --repeat-max-size (median)")
    ap.add_argument("--repeat-max-size", type=int, default=1000)
    ap.add_argument("--native-repeat", type=int, default=None,
                    help="runs per native size (default: --repeat, 1 above 100 agents)")
    ap.add_argument("--layout", default="auto", choices=["auto", "ports", "paths"],
                    help="auto: ports up to 1,000 agents, paths above")
    ap.add_argument("--collections-path", default="auto",
                    help="auto (build/collections if up to date, else a symlink tree), build, tree, git:REF or a path")
    ap.add_argument("--results", default=os.path.join(BENCH, "results"))
    ap.add_argument("--top", type=int, default=8, help="tasks shown per profile")
    ap.add_argument("--write-doc", action="store_true", help="write the table into docs/performance.md")
    opts = ap.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",") if s.strip()]
    native_sizes = [int(s) for s in opts.native_sizes.split(",") if s.strip()]
    opts.playbook_bin = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    os.makedirs(opts.results, exist_ok=True)

    tmp = tempfile.mkdtemp(prefix="agentfleet-bench-")
    try:
        coll, coll_src = collections_path(opts.collections_path, tmp)
        env = dict(os.environ)
        env.update({
            "ANSIBLE_COLLECTIONS_PATH": coll,
            "ANSIBLE_CALLBACK_PLUGINS": os.path.join(BENCH, "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "bench_timer",
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_HOST_KEY_CHECKING": "0",
            "ANSIBLE_LOCAL_TEMP": os.path.join(tmp, "ansible-local"),
            "ANSIBLE_HOME": os.path.join(tmp, "ansible-home"),
        })
        env.pop("ANSIBLE_CONFIG", None)
        ansible_version = subprocess.run([opts.playbook_bin, "--version"], capture_output=True, text=True,
                                         env=env, check=False).stdout.splitlines()[0]
        plan = []
        for s in sizes:
            plan += [("canary", s)] * (opts.repeat if s <= opts.repeat_max_size else 1)
        for s in native_sizes:
            n = opts.native_repeat if opts.native_repeat is not None else (opts.repeat if s <= 100 else 1)
            plan += [("native", s)] * n
        runs, reps = [], {}
        t_all = time.monotonic()
        for kind, size in plan:
            layout = opts.layout if opts.layout != "auto" else ("ports" if size <= 1000 else "paths")
            rep = reps[(kind, size)] = reps.get((kind, size), 0) + 1
            log("== %s %d agents (%s layout), run %d ..." % (kind, size, layout, rep))
            r = one_run(kind, size, layout, rep, opts, env, tmp)
            if not r["ok"] and r.get("sim_error"):
                log("   fleetsim went away during the run (%s): running it again" % r["sim_error"])
                r = one_run(kind, size, layout, rep, opts, env, tmp, suffix="-retry")
                r["retried_after"] = "fleetsim went away"
            log("   wall %.2f s (empty %.2f s), cpu %.1f s, fleetsim cpu %s s, maxrss %.0f MB, ok %s"
                % (r["wall_s"], r["empty"]["wall_s"], r["cpu_user_s"] + r["cpu_sys_s"],
                   "%.1f" % r["fleetsim_cpu_s"] if r["fleetsim_cpu_s"] is not None else "?",
                   r["maxrss_mb"], r["ok"]))
            runs.append(r)
        total = time.monotonic() - t_all
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = summarise(runs)
    machine = {
        "cpus": os.cpu_count(), "python": platform.python_version(), "ansible": ansible_version,
        "platform": platform.platform(), "collections": coll_src,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "total_s": total,
    }
    text = "\n".join([
        "Measured %s on %d CPUs, Python %s, %s; collection from %s; whole run %.0f s."
        % (machine["date"], machine["cpus"], machine["python"], ansible_version, coll_src, total),
        "Command: `.venv/bin/python bench/run.py %s`" % " ".join(sys.argv[1:]),
        "",
        table(rows),
        "",
        "Per-task time (first run of each size; wave tasks summed over the waves):",
        "",
        "```",
        profile_text(runs, opts.top),
        "```",
    ])
    print(text)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    raw = os.path.join(opts.results, "bench-%s.json" % stamp)
    with open(raw, "w") as f:
        json.dump({"machine": machine, "argv": sys.argv[1:], "summary": rows, "runs": runs}, f, indent=1)
    log("raw results: %s" % raw)
    if opts.write_doc:
        write_doc(text)
        log("wrote %s" % DOC)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
