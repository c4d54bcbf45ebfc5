"""Integration: agentfleet.rollout.shutdown against fleetsim (real playbook runs)."""

from __future__ import annotations

import datetime
import re
import sqlite3

import pytest
from conftest import parse_recap, run_playbook, task_results
from fleetsim.testing import FleetSim

PLAYBOOK = "agentfleet.rollout.shutdown"
# Occurrences behind one proxy port (a stopped one answers 502): in the ports layout a stopped occurrence frees its
# port, which another process on the machine (a parallel test's simulator) may bind before a later probe of that URL.
# test_accept_one_deliberation_waves_in_order keeps the ports layout: "connection refused" = stopped, end to end.
LAYOUT = "paths"
SHUTDOWN_PATH = "/v1/system/shutdown"


def fleet(deliberation="accept", occurrences=9, overrides=None, **settings):
    agent = {"agent_id": "datum", "occurrences": occurrences, "deliberation": deliberation}
    agent.update(settings)
    if overrides:
        agent["overrides"] = overrides
    return {"agents": [agent]}


def run(sim, tmp_path, check=False, report="report.json", args=None, **extra):
    extra_vars = {
        "shutdown_reason": "host maintenance",
        "shutdown_wave_delays": [0, 0],
        "shutdown_wave_timeout": 5,
        "shutdown_stop_timeout": 5,
        "shutdown_poll_interval": 0.1,
        "rollout_state_path": str(tmp_path / "state.db"),
        "rollout_report_path": str(tmp_path / report),
    }
    extra_vars.update(extra)
    return run_playbook(PLAYBOOK, tmp_path, inventory=sim.inventory_path, extra_vars=extra_vars, check=check,
                        report_path=tmp_path / report, timeout=120, args=args)


def shutdown_posts(sim):
    # fleetsim logs the full request path (behind the proxy port: /api/<name>/v1/system/shutdown)
    return [e for e in sim.log(method="POST") if (e.get("path") or "").endswith(SHUTDOWN_PATH)]


def results_of(output, task="Each occurrence's result"):
    """{host: [ok|changed|failed, ...]} as the per-occurrence result task printed it."""
    return task_results(output, "agentfleet.rollout.shutdown : %s" % task)


def states(sim):
    return {name: (o["up"], (o["health"] or {}).get("cognitive_state")) for name, o in sim.occurrences().items()}


def by_name(report):
    return {o["host"]: o for o in report["agents"]}


def ts(iso):
    """A report time (ISO-8601 UTC with Z) as a unix time, to compare with fleetsim's log."""
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def test_accept_one_deliberation_waves_in_order(tmp_path):
    with FleetSim(config=fleet(), workdir=tmp_path / "sim", layout="ports") as sim:
        res = run(sim, tmp_path)
        assert res.rc == 0, res.output
        assert sim.deliberations("datum") == 1
        posts = shutdown_posts(sim)
        assert len(posts) == 9
        first = posts[0]
        assert first["occurrence"] == "datum-default" and first["body"]["scope"] == "all_occurrences"
        assert "your decision applies to all occurrences" in first["body"]["reason"].lower()
        assert "Wave 2 (Early Adopters - 2 occurrences" in first["body"]["reason"]
        ref = first["decision_id"]
        followers = posts[1:]
        assert all(p["body"]["decision_ref"] == ref and p["event"] == "complied" for p in followers)
        report = res.report()
        occ = by_name(report)
        # waves in order: every early adopter is told after the explorer, every general one after all early adopters
        wave_of = {n: o["wave"] for n, o in occ.items()}
        ts = [(wave_of[p["occurrence"]], p["ts"]) for p in posts]
        for (w1, t1), (w2, t2) in zip(ts, ts[1:]):
            assert w1 <= w2 and t1 <= t2
        groups = {}
        for o in report["agents"]:
            groups.setdefault(o["cohort"], []).append(o["occurrence_id"])
        assert groups == {"explorer": ["default"], "early_adopter": ["occ-1", "occ-2"],
                          "general": ["occ-3", "occ-4", "occ-5", "occ-6", "occ-7", "occ-8"]}
        assert all(o["result"] == "stopped" for o in report["agents"]), report["agents"]
        assert report["decision"]["decision"] == "accept" and report["decision"]["decided_by"] == "datum-default"
        assert report["decision"]["decision_id_origin"] == "agent"
        assert report["status"] == "completed"
        assert occ["datum-occ-4"]["asked"]["decision_ref"] == ref
        assert occ["datum-default"]["asked"]["scope"] == "all_occurrences"
        assert not any(up for up, dummy in states(sim).values())  # every one has stopped, none is still draining
        for line in ("wave 1 explorer: 1 terminated", "wave 2 early_adopter: 2 terminated", "wave 3 general: 6 terminated"):
            assert line in res.stdout
        # the shared decision is in the state, with its id, who decided, when and why
        db = sqlite3.connect(str(tmp_path / "state.db"))
        row = db.execute("SELECT decision, decision_id, decided_by, decided_at, reason FROM shared_decisions "
                         "WHERE agent_id='datum' AND kind='shutdown'").fetchone()
        assert row[0] == "accept" and row[1] == ref and row[2] == "datum-default" and row[3] > 0


def test_rerun_within_max_age_asks_nobody(tmp_path):
    with FleetSim(config=fleet(), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        assert run(sim, tmp_path).rc == 0
        seq = sim.log()[-1]["seq"]
        again = run(sim, tmp_path, report="again.json", rollout_deployment_id="shutdown-datum-rerun")
        assert again.rc == 0, again.output
        assert sim.deliberations("datum") == 1
        assert [e for e in sim.log(since=seq) if (e.get("path") or "").endswith(SHUTDOWN_PATH)] == []
        # occurrences brought back within the hour: the recorded decision still stands, they comply
        sim.start_occurrences(None)
        third = run(sim, tmp_path, report="third.json", rollout_deployment_id="shutdown-datum-third")
        assert third.rc == 0, third.output
        assert sim.deliberations("datum") == 1
        posts = [e for e in sim.log(since=seq) if (e.get("path") or "").endswith(SHUTDOWN_PATH)]
        assert len(posts) == 9 and all(p["event"] == "complied" for p in posts)
        rep = third.report()
        assert rep["decision"]["reused"] is True and rep["status"] == "completed"
        assert "reused: nobody asked" in third.stdout


def test_reject_nobody_shuts_down(tmp_path):
    with FleetSim(config=fleet("reject", deliberation_reason="serving a critical conversation"),
                  workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path)
        assert res.rc == 0, res.output
        posts = shutdown_posts(sim)
        assert len(posts) == 1 and posts[0]["decision"] == "reject"
        assert all(up and cog == "work" for up, cog in states(sim).values())
        report = res.report()
        assert report["decision"]["decision"] == "reject"
        assert "serving a critical conversation" in report["decision"]["reason"]
        assert "serving a critical conversation" in res.stdout
        assert all(o["result"] in ("kept_running",) for o in report["agents"] if o["wave"] > 1)


def test_defer_nothing_happens(tmp_path):
    with FleetSim(config=fleet("defer", deliberation_defer_seconds=600), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path)
        assert res.rc == 0, res.output
        assert len(shutdown_posts(sim)) == 1
        assert all(up and cog == "work" for up, cog in states(sim).values())
        report = res.report()
        assert report["decision"]["decision"] == "defer" and report["decision"]["defer_until"]
        assert "ask again after" in res.stdout


def test_explorer_fails_to_terminate_no_follower_touched(tmp_path):
    cfg = fleet(overrides={"datum-default": {"stuck_on_shutdown": True}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path, shutdown_stop_timeout=1)
        assert res.rc != 0
        posts = shutdown_posts(sim)
        assert [p["occurrence"] for p in posts] == ["datum-default"]
        report = res.report()
        occ = by_name(report)
        assert occ["datum-default"]["result"] == "failed"
        assert all(o["result"] == "not_touched" for n, o in occ.items() if n != "datum-default")
        assert report["status"] == "failed" and "explorer wave failed" in report["outcome"]
        assert all(up and cog == "work" for n, (up, cog) in states(sim).items() if n != "datum-default")


def test_general_partial_failure_others_shut_down(tmp_path):
    cfg = fleet(overrides={"datum-occ-6": {"stuck_on_shutdown": True}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path, shutdown_wave_timeout=1)
        assert res.rc != 0  # shutdown_fail_on_partial: the play ends failed, after the others shut down
        report = res.report()
        occ = by_name(report)
        assert occ["datum-occ-6"]["result"] == "failed"
        assert "did not terminate" in occ["datum-occ-6"]["detail"]
        assert all(o["result"] == "stopped" for n, o in occ.items() if n != "datum-occ-6")
        assert report["waves"][2]["status"] == "partial"
        assert "datum-occ-6" in res.stdout
        assert "completed with failures" in report["outcome"]


def test_capacity_floor(tmp_path):
    # occurrences drain (cognitive_state shutdown, answering) for a while before they exit
    with FleetSim(config=fleet(shutdown_exit_seconds=0.5), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path, shutdown_min_serving_fraction=0.8)
        assert res.rc == 0, res.output
        report = res.report()
        plan = {w["name"]: w["batches"] for w in report["plan"]}
        assert all(len(b) == 1 for b in plan["early_adopter"])
        assert len(plan["general"]) == 1  # the floor holds until the final wave, which is not split
        assert report["capacity"]["lowest_batch_serving_fraction"] >= 0.8
        assert report["capacity"]["lowest_serving_fraction"] == pytest.approx(6 / 9, abs=1e-3)  # of the 9 serving at the start
        assert report["capacity"]["serving_at_start"] == 9
        assert report["capacity"]["floor_kept_before_final_wave"] is True
        # at every moment before the final wave, at most one occurrence was out of service at a time:
        # the next one is told only after the previous one has exited (not merely started draining)
        posts = shutdown_posts(sim)
        occ = by_name(report)
        early = [p for p in posts if occ[p["occurrence"]]["cohort"] in ("explorer", "early_adopter")]
        for prev, nxt in zip(early, early[1:]):
            assert ts(occ[prev["occurrence"]]["exited_at"]) <= nxt["ts"]
        assert all(o["result"] == "stopped" for o in report["agents"])


def test_mixed_fleet_follower_reject_stops(tmp_path):
    cfg = fleet(overrides={"datum-occ-2": {"old_version_agent": True, "decision": "reject",
                                           "decision_reason": "I decide for myself"}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path)
        assert res.rc != 0
        report = res.report()
        occ = by_name(report)
        assert occ["datum-occ-2"]["decision"] == "reject"
        assert occ["datum-occ-2"]["own_decision"] is True
        assert occ["datum-occ-2"]["result"] == "rejected"
        assert "I decide for myself" in report["outcome"]
        assert all(o["result"] == "not_touched" for o in report["agents"] if o["cohort"] == "general")
        general = [n for n, o in occ.items() if o["cohort"] == "general"]
        assert not [p for p in shutdown_posts(sim) if p["occurrence"] in general]


def test_check_mode_prints_plan_touches_nothing(tmp_path):
    with FleetSim(config=fleet(), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path, check=True)
        assert res.rc == 0, res.output
        assert shutdown_posts(sim) == []
        assert all(up and cog == "work" for up, cog in states(sim).values())
        assert "wave 2 early_adopter: 2 occurrences (occ-1, occ-2)" in res.stdout
        assert "SYSTEM SHUTDOWN REQUEST" in res.stdout
        assert "would ask the explorer datum-default" in res.stdout
        assert not (tmp_path / "state.db").exists()
        assert not (tmp_path / "report.json").exists()


def test_unreachable_occurrence_reported_not_dropped(tmp_path):
    cfg = fleet(overrides={"datum-occ-8": {"down": True}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path, shutdown_discovery="health")
        assert res.rc == 0, res.output
        report = res.report()
        assert [o["name"] for o in report["not_in_plan"]] == ["datum-occ-8"]
        assert report["not_in_plan"][0]["state"] == "stopped"
        assert "datum-occ-8 is stopped" in res.stdout
        assert len(report["agents"]) == 8


def test_fresh_decision_asks_the_explorer_again(tmp_path):
    with FleetSim(config=fleet("reject"), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        assert run(sim, tmp_path).rc == 0
        again = run(sim, tmp_path, report="again.json", rollout_deployment_id="shutdown-datum-again",
                    shutdown_reason="another reason")
        assert again.rc == 0, again.output
        assert sim.deliberations("datum") == 1  # younger than max_age: reused although the reason changed
        fresh = run(sim, tmp_path, report="fresh.json", rollout_deployment_id="shutdown-datum-fresh",
                    shutdown_fresh_decision=True)
        assert fresh.rc == 0, fresh.output
        assert sim.deliberations("datum") == 2
        assert fresh.report()["decision"]["reused"] is False


def test_capacity_floor_that_cannot_be_kept(tmp_path):
    with FleetSim(config=fleet(), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path, check=True, shutdown_min_serving_fraction=0.9)
        assert res.rc != 0
        assert "cannot keep 90% serving: taking out even one of 9 leaves 88.9%" in res.output
        allowed = run(sim, tmp_path, check=True, shutdown_min_serving_fraction=0.9, shutdown_allow_below_floor=True)
        assert allowed.rc == 0, allowed.output
        assert "CAPACITY FLOOR NOT KEPT" in allowed.stdout
        res = run(sim, tmp_path, shutdown_min_serving_fraction=0.9)
        assert res.rc != 0 and shutdown_posts(sim) == []


# ---------------------------------------------------------------- silent agents (PROTOCOL.md "Observed consent")
# fleetsim's `noanswer` answers 200 without a decision and without a decision id, like a real CIRIS agent.
# These cases should also run against fleetsim's `consent: ciris` mode once it is merged.

def silent(**settings):
    return fleet("noanswer", decision="noanswer", **settings)


def test_silent_agent_one_deliberation_and_a_decision_ref_for_everyone(tmp_path):
    with FleetSim(config=silent(shutdown_exit_seconds=1.0), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path)
        assert res.rc == 0, res.output
        report = res.report()
        decision = report["decision"]
        assert decision["decision"] == "accept" and decision["decision_id_origin"] == "collection"
        ref = decision["decision_id"]
        assert ref and "observed" in decision["reason"]
        posts = shutdown_posts(sim)
        assert len(posts) == 9
        asked_for_all = [p for p in posts if p["body"]["scope"] == "all_occurrences"]
        assert [p["occurrence"] for p in asked_for_all] == ["datum-default"] and posts[0] is asked_for_all[0]
        assert all(p["body"]["decision_ref"] == ref and p["body"]["scope"] == "occurrence" for p in posts[1:])
        # the agent deliberated once for all its occurrences (fleetsim's shared deliberation); the followers were
        # told with the decision id the collection made
        agent_level = [e for e in sim.log(event="deliberation") if e.get("deliberated_by") == "agent"]
        assert len(agent_level) == 1 and agent_level[0]["occurrence"] == "datum-default"
        # the followers were told only after the explorer had stopped
        explorer = by_name(report)["datum-default"]
        assert ts(explorer["exited_at"]) <= posts[1]["ts"]
        assert all(o["result"] == "stopped" for o in report["agents"])
        assert not any(up for up, dummy in states(sim).values())
        db = sqlite3.connect(str(tmp_path / "state.db"))
        assert db.execute("SELECT decision, decision_id FROM shared_decisions WHERE agent_id='datum'").fetchall() == [("accept", ref)]


def test_silent_explorer_that_never_stops_has_declined(tmp_path):
    cfg = silent(overrides={"datum-default": {"stuck_on_shutdown": True}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path, shutdown_stop_timeout=2)
        assert res.rc == 0, res.output  # a decline is an answer, not a failure
        assert [p["occurrence"] for p in shutdown_posts(sim)] == ["datum-default"]
        assert all(up and cog == "work" for up, cog in states(sim).values())
        report = res.report()
        assert report["status"] == "completed"
        assert report["decision"]["decision"] == "declined"
        assert "did not stop within 2 s: declined or still busy" in report["decision"]["reason"]
        assert "still working (cognitive_state work)" in report["decision"]["reason"]
        assert {o["result"] for o in report["agents"]} == {"kept_running"}
        assert [w["status"] for w in report["waves"]] == ["declined", "skipped", "skipped"]
        assert "did not stop within 2 s: declined or still busy" in res.stdout


def test_draining_is_not_exited(tmp_path):
    # the followers are watched from the moment they are told; the explorer from its own wave (the first batch of the
    # next play), so it drains longer here to be seen draining however slowly that play starts on a loaded machine
    drain = {"datum-default": 10.0}
    cfg = silent(shutdown_exit_seconds=1.5, overrides={"datum-default": {"shutdown_exit_seconds": drain["datum-default"]}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path, shutdown_stop_timeout=20)
        assert res.rc == 0, res.output
        report = res.report()
        for o in report["agents"]:
            assert o["asked_at"] <= o["drained_at"] < o["exited_at"], o
            # it exited no sooner than its simulated draining time after it was asked
            assert ts(o["exited_at"]) - ts(o["asked_at"]) >= drain.get(o["host"], 1.5) - 0.1, o
        # when the play ends every occurrence has exited: none is still draining
        assert not any(o["up"] for o in sim.occurrences().values())
        # and no wave was told before the previous one had exited
        occ = by_name(report)
        posts = shutdown_posts(sim)
        for p in posts:
            earlier = [o for o in occ.values() if o["wave"] < occ[p["occurrence"]]["wave"]]
            assert all(ts(o["exited_at"]) <= p["ts"] for o in earlier)


# ---------------------------------------------------------------- real CIRIS behaviour (fleetsim consent: ciris)
# Every occurrence answers 200 "initiated" without a decision or a decision id; it decides by acting.

def ciris(deliberation="accept", **settings):
    cfg = fleet(deliberation, consent="ciris", decide_seconds=0.3, drain_seconds=0.8, **settings)
    cfg["agents"][0]["decision"] = deliberation
    return cfg


def test_ciris_agent_nine_silent_occurrences_one_deliberation(tmp_path):
    with FleetSim(config=ciris(), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path)
        assert res.rc == 0, res.output
        # exactly one occurrence deliberated; the eight others complied with the collection's decision id
        assert sim.deliberations("datum") == 1
        posts = shutdown_posts(sim)
        assert len(posts) == 9
        ref = res.report()["decision"]["decision_id"]
        assert ref and all(p["body"]["decision_ref"] == ref for p in posts[1:])
        assert all(o["result"] == "stopped" for o in res.report()["agents"])
        assert sim.violations()["count"] == 0


def test_ciris_agent_that_declines_silently_keeps_every_occurrence(tmp_path):
    with FleetSim(config=ciris("reject"), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path, shutdown_stop_timeout=2)
        assert res.rc == 0, res.output
        assert [p["occurrence"] for p in shutdown_posts(sim)] == ["datum-default"]
        assert res.report()["decision"]["decision"] == "declined"
        assert all(up and cog == "work" for up, cog in states(sim).values())


# ---------------------------------------------------------------- the occurrences as the play's hosts

def test_recap_has_a_row_per_occurrence_with_its_outcome(tmp_path):
    cfg = fleet(overrides={"datum-occ-6": {"stuck_on_shutdown": True}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path, shutdown_wave_timeout=1)
        assert res.rc == 2, res.output  # a failed host, as Ansible exits for one
        rows = parse_recap(res.output)
        names = ["datum-default"] + ["datum-occ-%d" % i for i in range(1, 9)]
        assert set(rows) == set(names)
        results = results_of(res.output)
        assert results["datum-occ-6"] == ["failed"] and rows["datum-occ-6"]["failed"] == 1
        for name in names:
            if name != "datum-occ-6":
                assert results[name] == ["changed"], (name, results)
                assert rows[name]["failed"] == 0 and rows[name]["changed"] >= 1, (name, rows[name])
        assert "did not terminate within 1 s" in res.output  # the failed row says why
        # one engine call per wave, not per occurrence
        assert res.output.count("TASK [agentfleet.rollout.shutdown : Shut down and verify the wave]") == 3


def test_recap_after_a_decline_fails_no_row(tmp_path):
    # a silent explorer that goes on working has declined: every occurrence keeps running, each row is ok
    cfg = silent(overrides={"datum-default": {"stuck_on_shutdown": True}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path, shutdown_stop_timeout=1)
        assert res.rc == 0, res.output
        rows = parse_recap(res.output)
        assert len(rows) == 9 and all(r["failed"] == 0 for r in rows.values()), rows
        results = results_of(res.output)
        assert len(results) == 9 and all(v == ["ok"] for v in results.values()), results
        assert {o["result"] for o in res.report()["agents"]} == {"kept_running"}
        assert all(up and cog == "work" for up, cog in states(sim).values())


def test_limit_shuts_down_only_those_occurrences(tmp_path):
    chosen = ["datum-default", "datum-occ-1", "datum-occ-2", "datum-occ-3"]
    with FleetSim(config=fleet(), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path, args=["--limit", ",".join(chosen)])
        assert res.rc == 0, res.output
        assert sorted(p["occurrence"] for p in shutdown_posts(sim)) == chosen
        st = states(sim)
        assert all(not st[n][0] for n in chosen)
        assert all(up and cog == "work" for n, (up, cog) in st.items() if n not in chosen)
        report = res.report()
        assert sorted(by_name(report)) == chosen and report["status"] == "completed"
        assert report["limit"] == ",".join(chosen)
        db = sqlite3.connect(str(tmp_path / "state.db"))
        assert sorted(r[0] for r in db.execute("SELECT host FROM agents")) == chosen
        assert set(parse_recap(res.output)) == set(chosen)
        assert "(4 of 4 occurrences serving)" in res.output


def test_limit_matching_nothing_fails_with_nobody_asked(tmp_path):
    with FleetSim(config=fleet(), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path, args=["--limit", "no-such-occurrence"])
        assert res.rc != 0
        assert "--limit" in res.output or "no hosts" in res.output.lower(), res.output
        assert shutdown_posts(sim) == [] and sim.deliberations("datum") == 0
        assert all(up and cog == "work" for up, cog in states(sim).values())
        assert not (tmp_path / "report.json").exists()


def test_each_batch_is_one_wave_in_plan_order(tmp_path):
    # stable groups put an occurrence out of inventory order into the early adopters: the waves play's batches follow
    # the plan, not the inventory
    with FleetSim(config=fleet(), workdir=tmp_path / "sim", layout=LAYOUT) as sim:
        res = run(sim, tmp_path, shutdown_group_method="stable", shutdown_group_salt="x1")
        assert res.rc == 0, res.output
        groups = {}
        for o in res.report()["agents"]:
            groups.setdefault(o["cohort"], []).append(o["host"])
        batches = []
        for part in res.output.split("PLAY [Shut down in verified waves]")[1:]:
            rows = part.split("TASK [agentfleet.rollout.shutdown : Each occurrence's result]")[1].split("TASK [")[0]
            batches.append(sorted(re.findall(r"^changed: \[(\S+?)\]", rows, re.M)))
        assert batches == [sorted(groups["explorer"]), sorted(groups["early_adopter"]), sorted(groups["general"])]
        assert groups["early_adopter"] != ["datum-occ-1"]  # out of inventory order (else the test proves nothing)
        wave_of = {o["host"]: o["wave"] for o in res.report()["agents"]}
        posted = [wave_of[p["occurrence"]] for p in shutdown_posts(sim)]
        assert posted == sorted(posted)
