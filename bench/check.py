"""The speed guard (issue 20): ``make bench-check``.

    .venv/bin/python bench/check.py [--collections-path build] [--size 1000] [--cp-size 200] [--write-doc]

In one go, on the same machine and in the same minutes:

1. **1,000-agent canary, ``none`` driver**: ``agentfleet.rollout.canary`` (four waves) against agents
   that restart themselves at once (bench/instant_agents.py, one port), with the empty play
   (bench/empty.yml) and the **floor** play (bench/floor.yml: one trivial per-host task) on the same
   inventory. Overhead per agent = (canary - empty) / agents; floor per agent = (floor - empty) / agents.
   Bar: overhead <= floor + 2 ms per agent.
2. **Critical path, 200 agents** (``none`` driver; bench/instant_agents.py agents whose own supervisor
   restarts them): each agent answers the ask 200 "initiated", drains 1 s (``cognitive_state: shutdown``),
   exits, is started again by its supervisor at once and boots 2 s (``wakeup``, ``initialization_complete:
   false``) on the target version, and must stay stable 1 s (``rollout_min_healthy_time=1``); four waves:
   the ideal is 4 x (1 + 2 + 1) = 16 s. Efficiency = 16 s / (wall - empty play on that inventory).
   Bar: >= 0.9.
3. The wave calls' own time (the ``rollout_wave`` tasks, from bench/callback_plugins/bench_timer.py)
   per agent of the canary, with the bar of issue 20 (<= 1 ms per agent).

Prints the table (MET / MISSED per bar), writes bench/results/check-*.json and, with ``--write-doc``,
the section of docs/performance.md between ``<!-- bench-check:begin -->`` and ``<!-- bench-check:end -->``.
Exits 1 when a bar is MISSED. A bar is never lowered here: a miss is printed as such.

``--guard`` (``make bench-guard``, a step of ``make test``): the same runs and the same table of issue 20's
bars, and a second table of **regression limits** (``GUARD_*``: where the numbers stood when the guard was
added, with room for a noisy machine). It exits 1 when a run fails or a limit is exceeded, not for a bar
still missed: so a change that makes the rollout slower again (as 4.8 -> 31.5 ms per agent once did, with no
test noticing) fails ``make test``, while the bars that are not met yet stay printed as MISSED.
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
import run  # noqa: E402  (bench/run.py)
import wave_call  # noqa: E402  (bench/wave_call.py)

ROOT, BENCH, DOC = run.ROOT, run.BENCH, run.DOC
BEGIN, END = "<!-- bench-check:begin -->", "<!-- bench-check:end -->"
VERSION = "2.0.0"
# issue 20's bars
OVER_FLOOR_MS = 2.0
CP_EFFICIENCY = 0.9
WAVE_CALL_MS = 1.0
# make test's regression limits (--guard): measured 2026-12-05 overhead floor + 6-7.5 ms, wave calls 2.6-3.4 ms
# per agent, critical path 0.91; a regression like issue 20's (floor + 22 ms, 17 ms, 0.60) exceeds each
GUARD_OVER_FLOOR_MS = 12.0
GUARD_WAVE_CALL_MS = 6.0
GUARD_CP_EFFICIENCY = 0.8
# critical path: drain, boot, stable (s) per wave, four waves
CP_DRAIN, CP_BOOT, CP_STABLE, CP_WAVES = 1.0, 2.0, 1.0, 4


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def rollout_cmd(opts, inventory, wd, driver, *extra):
    cmd = [opts.playbook_bin, "agentfleet.rollout.canary", "-i", inventory,
           "-e", "rollout_target_version=" + VERSION, "-e", "rollout_driver=" + driver,
           "-e", "rollout_poll_interval=%g" % opts.poll_interval, "-e", "rollout_wait_between_waves=0",
           "-e", "rollout_state_path=" + os.path.join(wd, "state.db"),
           "-e", "rollout_report_path=" + os.path.join(wd, "report.json"),
           "-e", "rollout_audit_path=" + os.path.join(wd, "audit.jsonl")]
    for e in extra:
        cmd += ["-e", e]
    return cmd


def timed(cmd, env, wd, name):
    env = dict(env, BENCH_TIMER_OUT=os.path.join(wd, name + ".timer.json"))
    m = run.measure(cmd, env, os.path.join(wd, name + ".out"), ROOT)
    try:
        with open(env["BENCH_TIMER_OUT"]) as f:
            m["timer"] = json.load(f)
    except (OSError, ValueError):
        m["timer"] = None
    log("  %-10s %.2f s (rc %s, load %.1f)" % (name, m["wall_s"], m["rc"], run.loadavg()))
    return m


def report_ok(wd, size):
    try:
        with open(os.path.join(wd, "report.json")) as f:
            rep = json.load(f)
    except (OSError, ValueError):
        return False, "no report"
    results = [a.get("result") for a in rep.get("agents", [])]
    ok = rep.get("status") == "completed" and results.count("updated") == size
    return ok, "%s, %d of %d updated" % (rep.get("status"), results.count("updated"), size)


def wave_task_s(timer):
    if not timer:
        return None
    return sum(t["end"] - t["start"] for t in timer["tasks"] if t["action"].endswith("rollout_wave"))


def canary_none(opts, env, tmp):
    wd = os.path.join(tmp, "canary")
    os.makedirs(wd)
    sim = wave_call.Instant(opts.size, wd)
    try:
        inv = sim.inventory
        out = {"empty": timed([opts.playbook_bin, os.path.join(BENCH, "empty.yml"), "-i", inv], env, wd, "empty"),
               "floor": timed([opts.playbook_bin, os.path.join(BENCH, "floor.yml"), "-i", inv], env, wd, "floor"),
               "canary": timed(rollout_cmd(opts, inv, wd, "none", "rollout_min_healthy_time=0"), env, wd, "canary")}
        versions = sim.get("/_versions")
    finally:
        sim.close()
    ok, detail = report_ok(wd, opts.size)
    out["ok"] = ok and out["canary"]["rc"] == 0 and out["floor"]["rc"] == 0 and versions.get(VERSION) == opts.size
    out["detail"] = "%s; agents on %s: %s" % (detail, VERSION, versions.get(VERSION, 0))
    if out["ok"]:
        shutil.rmtree(wd, ignore_errors=True)
    return out


def critical_path(opts, env, tmp):
    """200 agents whose own supervisor restarts them (none driver): drain, boot, stable, four waves."""
    wd = os.path.join(tmp, "critical")
    os.makedirs(wd)
    sim = wave_call.Instant(opts.cp_size, wd, drain_ms=1000 * CP_DRAIN, boot_ms=1000 * CP_BOOT)
    try:
        inv = sim.inventory
        out = {"empty": timed([opts.playbook_bin, os.path.join(BENCH, "empty.yml"), "-i", inv], env, wd, "cp-empty"),
               "canary": timed(rollout_cmd(opts, inv, wd, "none", "rollout_min_healthy_time=%g" % CP_STABLE,
                                           "rollout_stop_timeout=60", "rollout_healthy_deadline=60"),
                               env, wd, "cp-canary")}
        versions = sim.get("/_versions")
        # the agents' clock is time.monotonic; the run's (spawn, timer callback) is the epoch
        out["breakdown"] = cp_breakdown(sim.get("/_timeline"), time.time() - time.monotonic(), out["canary"])
    finally:
        sim.close()
    ok, detail = report_ok(wd, opts.cp_size)
    out["ok"] = ok and out["canary"]["rc"] == 0 and versions.get(VERSION) == opts.cp_size
    out["detail"] = "%s; agents on %s: %s" % (detail, VERSION, versions.get(VERSION, 0))
    return out


def cp_breakdown(timeline, offset, canary):
    """Where the critical path's time goes, per wave, from the agents' own timeline (epoch seconds).

    Waves are the agents asked together (a gap of more than 1 s between two asks starts a new wave).
    Per wave: the asks' spread, first ask -> last agent up (drain + boot: ideal 3 s), last agent up -> the
    gate's last probe of the wave (the stable window: ideal 1 s), and that last probe -> the next wave's
    first ask (the cost between waves; for the last wave, -> ansible-playbook's exit).
    """
    asked = sorted((t["asked"] + offset, n) for n, t in timeline.items() if "asked" in t)
    waves, cur, last = [], [], None
    for at, n in asked:
        if last is not None and at - last > 1.0:
            waves.append(cur)
            cur = []
        cur.append(n)
        last = at
    if cur:
        waves.append(cur)
    rows = []
    start = canary["spawn_epoch"]
    end = start + canary["wall_s"]
    for i, names in enumerate(waves):
        t = [timeline[n] for n in names]
        first_ask = min(x["asked"] for x in t) + offset
        row = {"agents": len(names), "ask_spread_s": max(x["asked"] for x in t) + offset - first_ask,
               "ask_to_last_up_s": max(x.get("up", 0) for x in t) + offset - first_ask,
               "last_up_to_last_probe_s": max(x.get("last_probe", 0) for x in t) - max(x.get("up", 0) for x in t),
               "before_first_ask_s": first_ask - (start if i == 0 else rows[-1]["_last_probe"])}
        row["_last_probe"] = max(x.get("last_probe", 0) for x in t) + offset
        rows.append(row)
    if rows:
        rows.append({"after_last_probe_s": end - rows[-1]["_last_probe"]})
    return rows


def breakdown_lines(rows):
    lines = ["| wave | agents | before its first ask | asks' spread | first ask → last agent up (ideal 3 s) "
             "| last agent up → last gate probe (ideal 1 s) |", "|---|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(rows):
        if "agents" in r:
            lines.append("| %d | %d | %.2f s | %.2f s | %.2f s | %.2f s |" % (
                i + 1, r["agents"], r["before_first_ask_s"], r["ask_spread_s"], r["ask_to_last_up_s"],
                r["last_up_to_last_probe_s"]))
        else:
            lines.append("| end | | last gate probe → exit %.2f s | | | |" % r["after_last_probe_s"])
    return lines


def bars(c, cp, opts):
    n = float(opts.size)
    empty, floor, canary = c["empty"]["wall_s"], c["floor"]["wall_s"], c["canary"]["wall_s"]
    over = 1000.0 * (canary - empty) / n
    floor_ms = 1000.0 * (floor - empty) / n
    wave_s = wave_task_s(c["canary"]["timer"])
    ideal = CP_WAVES * (CP_DRAIN + CP_BOOT + CP_STABLE)
    cp_run = cp["canary"]["wall_s"] - cp["empty"]["wall_s"]
    eff = ideal / cp_run if cp_run > 0 else 0.0
    rows = [
        {"what": "canary, %d agents, none driver: overhead over the empty play per agent" % opts.size,
         "measured": "%.2f ms" % over, "bar": "<= floor + %g ms = %.2f ms" % (OVER_FLOOR_MS, floor_ms + OVER_FLOOR_MS),
         "met": c["ok"] and over <= floor_ms + OVER_FLOOR_MS},
        {"what": "floor: one trivial per-host task, same inventory, per agent", "measured": "%.2f ms" % floor_ms,
         "bar": "(reference)", "met": None},
        {"what": "the four wave calls (rollout_wave tasks) per agent",
         "measured": "%.2f ms (%.2f s)" % (1000.0 * wave_s / n, wave_s) if wave_s is not None else "n/a",
         "bar": "<= %g ms" % WAVE_CALL_MS, "met": wave_s is not None and 1000.0 * wave_s / n <= WAVE_CALL_MS},
        {"what": "critical path, %d agents (drain %gs, boot %gs, stable %gs, 4 waves; ideal %gs): efficiency"
                 % (opts.cp_size, CP_DRAIN, CP_BOOT, CP_STABLE, ideal),
         "measured": "%.2f (%.1f s above the empty play)" % (eff, cp_run), "bar": ">= %g" % CP_EFFICIENCY,
         "met": cp["ok"] and eff >= CP_EFFICIENCY},
    ]
    return rows, {"overhead_ms": over, "floor_ms": floor_ms, "wave_calls_s": wave_s, "cp_efficiency": eff,
                  "cp_wall_above_empty_s": cp_run}


def guard_rows(c, cp, numbers):
    """The regression limits of ``--guard``: each row ``met`` when within its limit."""
    over, floor_ms, wave_s = numbers["overhead_ms"], numbers["floor_ms"], numbers["wave_calls_s"]
    wave_ms = None if wave_s is None else 1000.0 * wave_s / float(c["size"])
    return [
        {"what": "canary overhead per agent", "measured": "%.2f ms" % over,
         "bar": "<= floor + %g ms = %.2f ms" % (GUARD_OVER_FLOOR_MS, floor_ms + GUARD_OVER_FLOOR_MS),
         "met": c["ok"] and over <= floor_ms + GUARD_OVER_FLOOR_MS},
        {"what": "wave calls per agent", "measured": "n/a" if wave_ms is None else "%.2f ms" % wave_ms,
         "bar": "<= %g ms" % GUARD_WAVE_CALL_MS, "met": wave_ms is not None and wave_ms <= GUARD_WAVE_CALL_MS},
        {"what": "critical-path efficiency", "measured": "%.2f" % numbers["cp_efficiency"],
         "bar": ">= %g" % GUARD_CP_EFFICIENCY, "met": cp["ok"] and numbers["cp_efficiency"] >= GUARD_CP_EFFICIENCY},
    ]


def table(rows, met="MET", missed="**MISSED**"):
    lines = ["| what | measured | bar | verdict |", "|---|---:|---|---|"]
    for r in rows:
        verdict = "-" if r["met"] is None else (met if r["met"] else missed)
        lines.append("| %s | %s | %s | %s |" % (r["what"], r["measured"], r["bar"], verdict))
    return lines


def bench_env(coll, tmp):
    """The environment of every ansible-playbook of the benchmarks (timer callback on, no user config)."""
    env = dict(os.environ)
    env.update({"ANSIBLE_COLLECTIONS_PATH": coll,
                "ANSIBLE_CALLBACK_PLUGINS": os.path.join(BENCH, "callback_plugins"),
                "ANSIBLE_CALLBACKS_ENABLED": "bench_timer", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
                "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_HOST_KEY_CHECKING": "0",
                "ANSIBLE_LOCAL_TEMP": os.path.join(tmp, "ansible-local"),
                "ANSIBLE_HOME": os.path.join(tmp, "ansible-home")})
    env.pop("ANSIBLE_CONFIG", None)
    return env


def write_doc(text, begin=BEGIN, end=END, heading="## Guarded numbers (`make bench-check`)"):
    """Rewrite the section of docs/performance.md between begin and end (appended under heading if none)."""
    with open(DOC) as f:
        doc = f.read()
    if begin in doc and end in doc:
        head, rest = doc.split(begin, 1)
        doc = head + begin + "\n" + text + "\n" + end + rest.split(end, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n" + heading + "\n\n" + begin + "\n" + text + "\n" + end + "\n"
    with open(DOC, "w") as f:
        f.write(doc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--cp-size", type=int, default=200)
    ap.add_argument("--poll-interval", type=float, default=0.2)
    ap.add_argument("--collections-path", default="build")
    ap.add_argument("--playbook-bin", default=os.path.join(os.path.dirname(sys.executable), "ansible-playbook"))
    ap.add_argument("--results", default=os.path.join(BENCH, "results"))
    ap.add_argument("--write-doc", action="store_true")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--guard", action="store_true",
                      help="fail on the regression limits (GUARD_*), print issue 20's bars without failing on them")
    mode.add_argument("--only", choices=["canary", "critical-path"], help="one part only (a look, not the guard)")
    opts = ap.parse_args()
    t_start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="agentfleet-check-")
    try:
        coll, src = run.collections_path(opts.collections_path, tmp)
        env = bench_env(coll, tmp)
        core = subprocess.run([opts.playbook_bin, "--version"], capture_output=True, text=True, env=env,
                              check=False).stdout.splitlines()[0]
        load0 = run.loadavg()
        log("bench-check: canary of %d agents (none driver), floor and empty plays" % opts.size)
        if opts.only:
            out = canary_none(opts, env, tmp) if opts.only == "canary" else critical_path(opts, env, tmp)
            prof = run.task_profile(out["canary"].get("timer"), out["canary"]["spawn_epoch"])
            print("%s: %s; wall %.2f s, empty %.2f s" % (opts.only, out["detail"], out["canary"]["wall_s"],
                                                         out["empty"]["wall_s"]))
            for label, sec, cnt in (prof or {}).get("tasks", [])[:12]:
                print("%8.2f s  x%-3d %s" % (sec, cnt, label))
            if out.get("breakdown"):
                print("\n".join(breakdown_lines(out["breakdown"])))
            return
        c = canary_none(opts, env, tmp)
        c["size"] = opts.size
        log("bench-check: critical path, %d agents" % opts.cp_size)
        cp = critical_path(opts, env, tmp)
        rows, numbers = bars(c, cp, opts)
        took = time.monotonic() - t_start
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        head = ("Measured %s on %d CPUs (load average %.1f before, %.1f after), Python %s, %s; collection: %s; "
                "`make bench-check` took %.0f s. Runs: canary %s; critical path %s."
                % (when, os.cpu_count(), load0, run.loadavg(), platform.python_version(), core, src, took,
                   c["detail"], cp["detail"]))
        walls = ("Wall times (s): empty %.2f, floor %.2f, canary %.2f (%d agents); critical path: empty %.2f, "
                 "canary %.2f." % (c["empty"]["wall_s"], c["floor"]["wall_s"], c["canary"]["wall_s"], opts.size,
                                   cp["empty"]["wall_s"], cp["canary"]["wall_s"]))
        lines = [head, ""] + table(rows) + ["", walls]
        if cp.get("breakdown"):
            lines += ["", "Critical path, wave by wave (the agents' own timeline; \"before its first ask\" is from "
                      "ansible-playbook's start for wave 1, else from the previous wave's last gate probe):", ""]
            lines += breakdown_lines(cp["breakdown"])
        for name, m in (("canary, %d agents" % opts.size, c["canary"]), ("critical path", cp["canary"])):
            prof = run.task_profile(m.get("timer"), m["spawn_epoch"])
            if prof:
                lines += ["", "Per-task time, %s (start-up to the first task %.2f s):" % (
                    name, prof["startup_to_first_task_s"]), "", "```"]
                lines += ["%8.2f s  x%-3d %s" % (sec, cnt, label) for label, sec, cnt in prof["tasks"][:8]]
                lines += ["```"]
        text = "\n".join(lines)
        print(text)
        os.makedirs(opts.results, exist_ok=True)
        with open(os.path.join(opts.results, "check-%s.json" % time.strftime("%Y%m%d-%H%M%S")), "w") as f:
            json.dump({"numbers": numbers, "rows": rows, "canary": c, "critical_path": cp, "head": head}, f,
                      default=str)
        if opts.write_doc:
            write_doc(text)
        if opts.guard:
            limits = guard_rows(c, cp, numbers)
            print("\nRegression limits (make test):\n")
            print("\n".join(table(limits, met="within", missed="**EXCEEDED**")))
            exceeded = [r["what"] for r in limits if not r["met"]]
            if exceeded:
                print("bench-guard: EXCEEDED: %s (a run that failed counts as exceeded: %s; %s)" % (
                    "; ".join(exceeded), c["detail"], cp["detail"]))
                sys.exit(1)
            print("bench-guard: within every regression limit; issue 20's bars: %s" % ", ".join(
                "%s %s" % (short, "met" if r["met"] else "MISSED")
                for short, r in zip(("overhead", "floor", "wave calls", "critical path"), rows) if r["met"] is not None))
            return
        missed = [r["what"] for r in rows if r["met"] is False]
        if missed:
            print("bench-check: MISSED: %s" % "; ".join(missed))
            sys.exit(1)
        print("bench-check: every bar met")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
