"""Integration: agentfleet.rollout.wakeup against fleetsim (real playbook runs)."""

from __future__ import annotations

import json
import threading
import time

from conftest import parse_recap, run_playbook, task_results
from fleetsim.testing import FleetSim, tasks_driver_vars

NAMES = ["datum-default"] + ["datum-occ-%d" % i for i in range(1, 9)]
# Occurrences behind one proxy port (a down one answers 502, which counts as stopped): in the ports layout a
# stopped occurrence frees its port, and another process on the machine (a parallel test's simulator) may bind it
# before the wakeup probes that URL, which then answers "work" for an occurrence that is down.
LAYOUT = "paths"


def fleet(**settings):
    agent = {"agent_id": "datum", "occurrences": 9, "deliberation": "accept", "boot_seconds": 0.3}
    agent.update(settings)
    return {"agents": [agent]}


def common(tmp_path, report):
    return {
        "wakeup_wave_delays": [0, 0],
        "wakeup_wave_timeout": 5,
        "wakeup_poll_interval": 0.1,
        **tasks_driver_vars(),
        "rollout_state_path": str(tmp_path / "state.db"),
        "rollout_report_path": str(tmp_path / report),
    }


def wakeup(sim, tmp_path, report="wakeup.json", check=False, args=None, **extra):
    extra_vars = common(tmp_path, report)
    extra_vars.update(extra)
    return run_playbook("agentfleet.rollout.wakeup", tmp_path, inventory=sim.inventory_path, extra_vars=extra_vars,
                        check=check, report_path=tmp_path / report, timeout=120, args=args)


def results_of(output, task="Each occurrence's result"):
    """{host: [ok|changed|failed, ...]} as the per-occurrence result task printed it."""
    return task_results(output, "agentfleet.rollout.wakeup : %s" % task)


def shutdown(sim, tmp_path):
    extra_vars = {"shutdown_reason": "nightly stop", "shutdown_wave_delays": [0, 0], "shutdown_wave_timeout": 5,
                  "shutdown_stop_timeout": 5, "shutdown_poll_interval": 0.1,
                  "rollout_state_path": str(tmp_path / "state.db"), "rollout_report_path": str(tmp_path / "shutdown.json")}
    res = run_playbook("agentfleet.rollout.shutdown", tmp_path, inventory=sim.inventory_path, extra_vars=extra_vars,
                       report_path=tmp_path / "shutdown.json", timeout=120)
    assert res.rc == 0, res.output
    # the shutdown ends only once every occurrence has exited (draining is not exited): no wait needed here
    assert all(o["result"] == "stopped" and o["exited_at"] for o in res.report()["agents"])
    assert not any(o["up"] for o in sim.occurrences().values())


WAVES = (NAMES[:1], NAMES[1:3], NAMES[3:])  # explorer, early adopters, general


def starts(sim):
    """The simulator's starts grouped by wakeup wave, in order: list of (ts of the wave's first start, [names]).

    The tasks driver starts each occurrence from its own host (one /_sim/start each); the starts of one wave
    must all come before those of the next."""
    groups = []
    for e in sim.log(event="sim_start"):
        for name in e.get("occurrences") or []:
            wave = next(i for i, members in enumerate(WAVES) if name in members)
            if groups and groups[-1][0] == wave:
                groups[-1][2].append(name)
            else:
                groups.append((wave, e["ts"], [name]))
    order = [g[0] for g in groups]
    assert order == sorted(set(order)), "the starts of two waves interleaved: %s" % groups
    return [(ts, sorted(names)) for dummy, ts, names in groups]


def test_wakeup_happy_path_explorer_first(tmp_path):
    with FleetSim(config=fleet(), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        shutdown(sim, tmp_path)
        res = wakeup(sim, tmp_path)
        assert res.rc == 0, res.output
        calls = starts(sim)
        assert [names for dummy, names in calls] == [["datum-default"], ["datum-occ-1", "datum-occ-2"],
                                                     ["datum-occ-3", "datum-occ-4", "datum-occ-5", "datum-occ-6", "datum-occ-7", "datum-occ-8"]]
        # the explorer was seen in work before the early adopters were started, and they before general
        work = {}
        for e in sim.log(event="health"):
            if e.get("cognitive_state") == "work":
                work.setdefault(e["occurrence"], e["ts"])
        assert work["datum-default"] < calls[1][0]
        assert max(work[n] for n in calls[1][1]) < calls[2][0]
        occs = sim.occurrences()
        assert all(o["up"] and o["health"]["cognitive_state"] == "work" and o["version"] == "1.0.0" for o in occs.values())
        report = res.report()
        assert report["status"] == "completed"
        assert {o["result"] for o in report["agents"]} == {"awake"}
        assert "wave 1 explorer: 1 awake, 0 unhealthy" in res.stdout
        # a second run starts nobody
        again = wakeup(sim, tmp_path, report="again.json", rollout_deployment_id="wakeup-again")
        assert again.rc == 0, again.output
        assert len(starts(sim)) == 3
        assert {o["result"] for o in again.report()["agents"]} == {"already_awake"}


def test_wakeup_unhealthy_explorer_aborts_others_left_down(tmp_path):
    with FleetSim(config=fleet(overrides={"datum-default": {"status": "degraded"}}), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        sim.stop(NAMES)
        res = wakeup(sim, tmp_path, wakeup_version="1.0.0", wakeup_wave_timeout=1)
        assert res.rc != 0
        assert [names for dummy, names in starts(sim)] == [["datum-default"]]
        occs = sim.occurrences()
        assert not any(occs[n]["up"] for n in NAMES[1:])
        report = res.report()
        assert report["status"] == "failed"
        by_name = {o["host"]: o for o in report["agents"]}
        assert by_name["datum-default"]["result"] == "unhealthy"
        assert "degraded" in by_name["datum-default"]["detail"]
        assert all(by_name[n]["result"] == "left_down" for n in NAMES[1:])


def test_wakeup_check_mode_starts_nothing(tmp_path):
    with FleetSim(config=fleet(), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        sim.stop(NAMES)
        res = wakeup(sim, tmp_path, check=True, wakeup_version="1.0.0")
        assert res.rc == 0, res.output
        assert starts(sim) == []
        assert "wave 1 explorer: 1 occurrence (default)" in res.stdout
        assert not (tmp_path / "state.db").exists()


def test_wakeup_driver_failure_recorded_and_reported(tmp_path):
    tasks = tmp_path / "start.yml"
    tasks.write_text("- name: The runtime cannot start the occurrence\n"
                     "  ansible.builtin.fail:\n"
                     "    msg: \"no capacity to start {{ rollout_agent_host }}\"\n")
    with FleetSim(config=fleet(), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        sim.stop(NAMES)
        res = wakeup(sim, tmp_path, wakeup_version="1.0.0", rollout_driver="tasks", rollout_update_tasks=str(tasks))
        assert res.rc != 0
        assert "could not be started" in res.output and "no capacity to start datum-default" in res.output
        # the explorer's row fails; a batch whose every host failed ends the play (Ansible): no later wave runs
        assert results_of(res.output) == {"datum-default": ["failed"]}
        assert starts(sim) == []
        report = res.report()
        assert report["status"] == "failed"
        by_name = {o["host"]: o for o in report["agents"]}
        assert by_name["datum-default"]["result"] == "failed"
        assert "no capacity to start datum-default" in by_name["datum-default"]["detail"]
        assert all(by_name[n]["result"] == "left_down" for n in NAMES[1:])
        # the deployment is closed: the next run is not blocked by it
        again = wakeup(sim, tmp_path, report="again.json", wakeup_version="1.0.0", rollout_deployment_id="wakeup-again")
        assert again.rc == 0, again.output
        assert again.report()["status"] == "completed"


def test_wakeup_failed_early_adopter_wave_stops_before_general(tmp_path):
    with FleetSim(config=fleet(overrides={"datum-occ-1": {"status": "degraded"}}), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        sim.stop(NAMES)
        res = wakeup(sim, tmp_path, wakeup_version="1.0.0", wakeup_wave_timeout=1)
        assert res.rc != 0
        assert [names for dummy, names in starts(sim)] == [["datum-default"], ["datum-occ-1", "datum-occ-2"]]
        occs = sim.occurrences()
        assert not any(occs[n]["up"] for n in NAMES[3:])
        report = res.report()
        assert report["status"] == "failed" and "early_adopter wave unhealthy" in report["outcome"]
        by_name = {o["host"]: o for o in report["agents"]}
        assert by_name["datum-default"]["result"] == "awake"
        assert by_name["datum-occ-1"]["result"] == "unhealthy"
        assert all(by_name[n]["result"] == "left_down" for n in NAMES[3:])
        assert [w["status"] for w in report["waves"]] == ["passed", "failed", "skipped"]


def test_wakeup_waits_for_a_draining_occurrence_to_exit(tmp_path):
    # datum-default was asked to shut down and would drain for 10 minutes; the others are down already. It
    # exits only once the wakeup is waiting for it to (no race between a fixed drain and a loaded machine):
    # its plan and prepare steps probe it once each, the wait for its exit polls it every second.
    with FleetSim(config=fleet(overrides={"datum-default": {"shutdown_exit_seconds": 600}}), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        sim.stop(NAMES[1:])
        status, dummy = sim.shutdown("datum-default", {"reason": "by hand", "confirm": True, "deployment_id": "manual"})
        assert status == 200
        asked = [e for e in sim.log(method="POST") if (e.get("path") or "").endswith("/v1/system/shutdown")][0]["ts"]
        outcome = {}
        runner = threading.Thread(target=lambda: outcome.update(res=wakeup(sim, tmp_path, wakeup_version="1.0.0",
                                                                           wakeup_wave_timeout=120)))
        runner.start()
        deadline = time.monotonic() + 90
        seen_draining = []
        while len(seen_draining) < 3 and runner.is_alive() and time.monotonic() < deadline:
            seen_draining = [e for e in sim.log(event="health", occurrence="datum-default")
                             if e["ts"] > asked and e.get("cognitive_state") == "shutdown"]
            time.sleep(0.1)
        assert len(seen_draining) >= 3, "the wakeup should have found it draining and waited"
        released = time.time()
        sim.stop(["datum-default"])  # it exits now
        runner.join(150)
        res = outcome["res"]
        assert res.rc == 0, res.output
        first = starts(sim)[0]
        assert first[1] == ["datum-default"]
        # it was started only after it had exited, never while it was still draining
        assert first[0] >= released
        explorer = {o["host"]: o for o in res.report()["agents"]}["datum-default"]
        assert explorer["result"] == "awake"
        assert explorer["asked"]["waited_for_stop_seconds"] > 0
        assert explorer["drained_at"] < explorer["exited_at"]


def test_wakeup_after_a_ciris_shutdown_waits_for_exits_then_wakes_all(tmp_path):
    cfg = fleet(consent="ciris", decide_seconds=0.3, drain_seconds=0.8)
    with FleetSim(config=cfg, workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        shutdown(sim, tmp_path)
        assert sim.deliberations("datum") == 1
        res = wakeup(sim, tmp_path)
        assert res.rc == 0, res.output
        assert {o["result"] for o in res.report()["agents"]} == {"awake"}
        # nothing was started while it was still working or draining
        assert sim.violations()["count"] == 0


# ---------------------------------------------------------------- the occurrences as the play's hosts

def test_wakeup_recap_row_per_occurrence(tmp_path):
    with FleetSim(config=fleet(), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        sim.stop(NAMES)
        res = wakeup(sim, tmp_path, wakeup_version="1.0.0")
        assert res.rc == 0, res.output
        assert set(parse_recap(res.output)) == set(NAMES)
        assert results_of(res.output) == {n: ["changed"] for n in NAMES}  # started and awake
        # each wave started once, in order
        assert len(starts(sim)) == 3
        again = wakeup(sim, tmp_path, report="again.json", wakeup_version="1.0.0", rollout_deployment_id="wakeup-again")
        assert again.rc == 0, again.output
        assert results_of(again.output) == {n: ["ok"] for n in NAMES}  # already awake
        assert all(r["changed"] == 0 and r["failed"] == 0 for r in parse_recap(again.output).values())


def test_wakeup_recap_failed_early_adopter_and_left_down(tmp_path):
    with FleetSim(config=fleet(overrides={"datum-occ-1": {"status": "degraded"}}), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        sim.stop(NAMES)
        res = wakeup(sim, tmp_path, wakeup_version="1.0.0", wakeup_wave_timeout=1)
        assert res.rc == 2, res.output
        results = results_of(res.output)
        assert results["datum-occ-1"] == ["failed"]
        assert results["datum-default"] == ["changed"] and results["datum-occ-2"] == ["changed"]
        assert all(results[n] == ["ok"] for n in NAMES[3:]), results  # left down, not started
        rows = parse_recap(res.output)
        assert rows["datum-occ-1"]["failed"] == 1 and sum(r["failed"] for r in rows.values()) == 1
        assert [names for dummy, names in starts(sim)] == [["datum-default"], ["datum-occ-1", "datum-occ-2"]]


def test_wakeup_tasks_driver_runs_on_each_occurrences_host(tmp_path):
    tasks = tmp_path / "start.yml"
    tasks.write_text(
        "- name: Time the start (it takes a second)\n"
        "  ansible.builtin.shell: |\n"
        "    start=$(date +%s.%N); sleep 1; end=$(date +%s.%N)\n"
        "    printf '{\"host\": \"%s\", \"start\": %s, \"end\": %s, \"purpose\": \"%s\", \"version\": \"%s\", "
        "\"deployment\": \"%s\"}' '{{ inventory_hostname }}' \"$start\" \"$end\" '{{ rollout_update_purpose }}' "
        "'{{ rollout_update_version }}' '{{ rollout_deployment_id }}' > '" + str(tmp_path) + "/trace-{{ inventory_hostname }}.json'\n"
        "  changed_when: true\n"
        "- name: Start the occurrence (here through the simulator)\n"
        "  ansible.builtin.uri:\n"
        "    url: \"{{ fleetsim_control_url }}/_sim/start\"\n"
        "    method: POST\n"
        "    body_format: json\n"
        "    body: {occurrences: [\"{{ inventory_hostname }}\"], version: \"{{ rollout_update_version }}\"}\n")
    with FleetSim(config=fleet(), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        sim.stop(NAMES)
        res = wakeup(sim, tmp_path, wakeup_version="1.0.0", rollout_driver="tasks", rollout_update_tasks=str(tasks),
                     rollout_deployment_id="wakeup-tasks", args=["--forks", "10"])
        assert res.rc == 0, res.output
        traces = {p.name: json.loads(p.read_text()) for p in tmp_path.glob("trace-*.json")}
        assert sorted(traces) == sorted("trace-%s.json" % n for n in NAMES)
        for name, t in traces.items():
            assert name == "trace-%s.json" % t["host"]  # inventory_hostname is the occurrence
            assert (t["purpose"], t["version"], t["deployment"]) == ("wakeup", "1.0.0", "wakeup-tasks")
        # explorer first, then early adopters, then general; within a wave the starts overlapped in time
        t = {n: traces["trace-%s.json" % n] for n in NAMES}
        assert t["datum-default"]["end"] < min(t[n]["start"] for n in NAMES[1:3])
        assert max(t[n]["end"] for n in NAMES[1:3]) < min(t[n]["start"] for n in NAMES[3:])
        # (the tasks of one wave run side by side, up to forks: some general starts overlapped)
        general = sorted((t[n]["start"], t[n]["end"]) for n in NAMES[3:])
        assert any(nxt[0] < prev[1] for prev, nxt in zip(general, general[1:])), general
        assert {o["result"] for o in res.report()["agents"]} == {"awake"}
        assert results_of(res.output) == {n: ["changed"] for n in NAMES}


def test_wakeup_limit_starts_only_those_occurrences(tmp_path):
    chosen = ["datum-default", "datum-occ-1", "datum-occ-5"]
    with FleetSim(config=fleet(), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        sim.stop(NAMES)
        res = wakeup(sim, tmp_path, wakeup_version="1.0.0", args=["--limit", ",".join(chosen)])
        assert res.rc == 0, res.output
        assert sorted(n for dummy, names in starts(sim) for n in names) == chosen
        occs = sim.occurrences()
        assert all(occs[n]["up"] == (n in chosen) for n in NAMES)
        assert sorted(o["host"] for o in res.report()["agents"]) == chosen
        assert res.report()["limit"] == ",".join(chosen)
        assert set(parse_recap(res.output)) == set(chosen)
        before = len(starts(sim))
        nothing = wakeup(sim, tmp_path, report="none.json", wakeup_version="1.0.0", args=["--limit", "no-such-occurrence"])
        assert nothing.rc != 0 and len(starts(sim)) == before
        assert not (tmp_path / "none.json").exists()
