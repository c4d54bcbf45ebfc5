"""Integration: rollouts as real Ansible plays over the agents (PLAY RECAP, --limit, relaunch on
failed hosts, the tasks driver on each agent's host, progress and set_stats) and observed consent
(silent agents decide by acting), against fleetsim over real HTTP.
"""

from __future__ import annotations

import json
import re

from conftest import ansible_env, parse_recap, run_playbook, task_results
from fleetsim.testing import FleetSim, Supervisor
from test_canary import asked_hosts, by_host, fleet, posts, rollout_vars, run, versions


def result_of(output, host, task="Each agent's result"):
    """The statuses (ok / changed / failed) the per-agent result task printed for ``host``."""
    return task_results(output, "agentfleet.rollout.rollout : %s" % task).get(host, [])


def starts(sim, name=None):
    return [n for e in sim.log(event="sim_start") for n in (e["body"] or {}).get("occurrences", [])
            if name is None or n == name]


def test_every_agent_has_its_recap_row_and_the_exit_code_follows_them(tmp_path):
    cfg = fleet(6, overrides={"agent-002": {"decision": "reject"}, "agent-003": {"decision": "defer"},
                              "agent-005": {"unhealthy_after_update": True}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_cohorts="all", rollout_success_threshold=0.5, rollout_healthy_deadline=2)
        assert res.rc == 2, res.output  # a failed host, as Ansible exits for one
        rows = parse_recap(res.output)
        assert set(rows) >= {"agent-%03d" % i for i in range(6)}
        assert result_of(res.output, "agent-000") == ["changed"]
        assert result_of(res.output, "agent-002") == ["ok"]  # rejected
        assert result_of(res.output, "agent-003") == ["ok"]  # deferred
        assert result_of(res.output, "agent-005") == ["failed"]
        assert rows["agent-005"]["failed"] == 1 and rows["agent-002"]["failed"] == 0
        report = res.report()
        # the wave passed (4 of 4... 3 of 4 healthy >= 0.5), so the deployment completed, with failures
        assert report["status"] == "completed_with_failures"
        assert by_host(report)["agent-005"]["result"] == "failed"


def test_limit_narrows_the_rollout_and_is_recorded(tmp_path):
    with FleetSim(config=fleet(10), workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, args=["--limit", "agent-003,agent-007"])
        assert res.rc == 0, res.output
        assert sorted(asked_hosts(sim)) == ["agent-003", "agent-007"]
        report = res.report()
        assert report["limit"] == "agent-003,agent-007"
        assert sorted(by_host(report)) == ["agent-003", "agent-007"]
        # cohorts over the limited agents: 2 agents -> explorers 1, early adopters 1
        assert [w["summary"]["size"] for w in report["waves"] if w["summary"]] == [1, 1]
        assert set(parse_recap(res.output)) == {"agent-003", "agent-007"}


def test_a_limit_that_matches_no_agent_fails(tmp_path):
    with FleetSim(config=fleet(3), workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, args=["--limit", "no-such-agent"])
        assert res.rc != 0
        assert "no hosts" in res.output.lower()
        assert posts(sim) == []


def test_relaunch_on_the_failed_agent_retries_it_without_asking_again(tmp_path):
    cfg = fleet(4, overrides={"agent-001": {"unhealthy_after_update": True}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_cohorts="all", rollout_success_threshold=0.5, rollout_healthy_deadline=2)
        assert res.rc == 2, res.output
        assert res.report()["status"] == "completed_with_failures"
        assert len(posts(sim, "agent-001")) == 1 and len(starts(sim, "agent-001")) == 1
        # the operator fixes the agent's image, then relaunches on the failed host (AWX / @retry does this)
        sim.configure("agent-001", unhealthy_after_update=False)
        again = run(sim, tmp_path, rollout_cohorts="all", args=["--limit", "agent-001"])
        assert again.rc == 0, again.output
        assert len(posts(sim, "agent-001")) == 1, "a recorded accept was asked again"
        assert len(starts(sim, "agent-001")) == 2  # its update ran again
        assert result_of(again.output, "agent-001") == ["changed"]
        report = again.report()
        assert report["status"] == "completed"
        assert by_host(report)["agent-001"]["result"] == "updated"
        assert len(posts(sim)) == 4
        # and a rerun of a completed deployment is a no-op
        third = run(sim, tmp_path)
        assert third.rc == 0 and "already completed" in third.output


def test_rerun_of_completed_with_failures_retries_only_the_failed_agents(tmp_path):
    cfg = fleet(5, overrides={"agent-004": {"down": True}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_cohorts="all", rollout_success_threshold=0.5)
        assert res.rc == 2, res.output
        report = res.report()
        assert report["status"] == "completed_with_failures"
        assert by_host(report)["agent-004"]["result"] == "failed"
        assert result_of(res.output, "agent-004") == ["failed"]
        sim.configure("agent-004", down=False)
        again = run(sim, tmp_path, rollout_cohorts="all")
        assert again.rc == 0, again.output
        assert asked_hosts(sim).count("agent-004") == 1  # unreachable is not an answer: asked now
        assert sorted(asked_hosts(sim)) == ["agent-000", "agent-001", "agent-002", "agent-003", "agent-004"]
        assert result_of(again.output, "agent-004") == ["changed"]
        assert result_of(again.output, "agent-000") == ["ok"]  # updated by the first run
        assert again.report()["status"] == "completed"


def _trace_tasks(tmp_path, fail_host=None):
    tasks = tmp_path / "update.yml"
    # the broken update fails its update only: putting the agent back on its previous version works
    fail = ("- name: A broken update on one agent\n  ansible.builtin.fail:\n    msg: image pull failed\n"
            "  when: inventory_hostname == '%s' and rollout_update_purpose == 'update'\n" % fail_host) if fail_host else ""
    tasks.write_text(
        fail
        + "- name: Time the update (it takes a second)\n"
        "  ansible.builtin.shell: |\n"
        "    start=$(date +%s.%N); sleep 1; end=$(date +%s.%N)\n"
        "    printf '{\"host\": \"%s\", \"start\": %s, \"end\": %s, \"purpose\": \"%s\", \"version\": \"%s\", "
        "\"previous\": \"%s\", \"deployment\": \"%s\"}' '{{ inventory_hostname }}' \"$start\" \"$end\" "
        "'{{ rollout_update_purpose }}' '{{ rollout_update_version }}' '{{ rollout_previous_version }}' "
        "'{{ rollout_deployment_id }}' > '" + str(tmp_path) + "/trace-{{ inventory_hostname }}.json'\n"
        "  changed_when: true\n"
        "- name: Start the agent on the version asked for (here through the simulator)\n"
        "  ansible.builtin.uri:\n"
        "    url: \"{{ fleetsim_control_url }}/_sim/start\"\n"
        "    method: POST\n"
        "    body_format: json\n"
        "    body: {occurrences: [\"{{ inventory_hostname }}\"], version: \"{{ rollout_update_version }}\"}\n"
    )
    return tasks


def test_update_tasks_run_on_each_agents_host_in_parallel(tmp_path):
    tasks = _trace_tasks(tmp_path)
    cfg = fleet(4, overrides={"agent-003": {"decision": "reject"}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_driver="tasks", rollout_update_tasks=str(tasks), rollout_cohorts="all",
                  args=["--forks", "5"])
        assert res.rc == 0, res.output
        traces = {p.name: json.loads(p.read_text()) for p in tmp_path.glob("trace-*.json")}
        assert sorted(traces) == ["trace-agent-000.json", "trace-agent-001.json", "trace-agent-002.json"]
        for name, t in traces.items():
            assert name == "trace-%s.json" % t["host"]  # inventory_hostname is the agent
            assert (t["purpose"], t["version"], t["previous"], t["deployment"]) == (
                "update", "2.0.0", "1.0.0", "deploy-agents-2.0.0")
        # the three updates overlapped in time (each took a second)
        assert max(t["start"] for t in traces.values()) < min(t["end"] for t in traces.values())
        assert versions(sim) == {"agent-000": "2.0.0", "agent-001": "2.0.0", "agent-002": "2.0.0", "agent-003": "1.0.0"}
        assert result_of(res.output, "agent-003") == ["ok"]
        for h in ("agent-000", "agent-001", "agent-002"):
            assert result_of(res.output, h) == ["changed"]


def test_a_failing_update_task_fails_only_its_agent_and_never_leaves_it_down(tmp_path):
    # without rollout_auto_revert, and though the wave passes: agent-001 stopped because it was asked and its
    # update failed, so the tasks start it again on 1.0.0 (purpose revert); its PLAY RECAP row still fails
    tasks = _trace_tasks(tmp_path, fail_host="agent-001")
    # agents that answer like ciris-agent: 200 "initiated", the decision shown by stopping
    with FleetSim(config=ciris_fleet(4, drain_seconds=0.5), workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_driver="tasks", rollout_update_tasks=str(tasks), rollout_cohorts="all",
                  rollout_success_threshold=0.5)
        assert res.rc == 2, res.output
        assert result_of(res.output, "agent-001") == ["failed"]
        for h in ("agent-000", "agent-002", "agent-003"):
            assert result_of(res.output, h) == ["changed"]
        agents = by_host(res.report())
        assert agents["agent-001"]["result"] == "reverted", agents["agent-001"]
        assert "image pull failed" in agents["agent-001"]["detail"]
        assert "started again on its previous version 1.0.0" in agents["agent-001"]["detail"]
        assert res.report()["status"] == "completed_with_failures"
        trace = json.loads((tmp_path / "trace-agent-001.json").read_text())
        assert (trace["purpose"], trace["version"]) == ("revert", "1.0.0")
        assert sim.phase("agent-001") == "working" and versions(sim)["agent-001"] == "1.0.0"
        assert [h for h in ("agent-000", "agent-002", "agent-003") if versions(sim)[h] != "2.0.0"] == []
        assert len(posts(sim, "agent-001")) == 1


def test_progress_lines_and_set_stats_reach_the_json_output(tmp_path):
    # one slow agent keeps the gate busy long enough for a progress line (every 5 s)
    cfg = fleet(3, overrides={"agent-001": {"boot_seconds": 6}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        env = ansible_env(tmp_path, ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_SHOW_CUSTOM_STATS="true",
                          ANSIBLE_CALLBACKS_ENABLED="agentfleet.rollout.rollout_progress")
        res = run(sim, tmp_path, env=env, rollout_cohorts="all", rollout_healthy_deadline=20)
        assert res.rc == 0, res.output
        # while the gate waits: a progress line every few seconds (from the controller-side wave call)
        assert re.search(r"\[agentfleet\] wave 1 all: health gate: \d+/3 healthy, \d+ starting", res.stdout), res.stdout[:3000]
        # the callback: one line per finished wave, the summary table at the end
        assert "[agentfleet] wave 1/1 all: 3 agents | accepted 3, declined 0, deferred 0, rejected 0, unreachable 0" \
            in res.stdout
        assert "[agentfleet] report: %s" % (tmp_path / "report.json") in res.stdout
        # set_stats: the deployment's summary for AWX artifacts (CUSTOM STATS of the default callback)
        custom = res.stdout.split("CUSTOM STATS:")[1]
        stats = json.loads(custom[custom.index("{"):custom.rindex("}") + 1])["agentfleet_rollout"]
        assert stats["deployment_id"] == "deploy-agents-2.0.0" and stats["status"] == "completed"
        assert stats["totals"]["updated"] == 3 and stats["report_path"] == str(tmp_path / "report.json")
        assert all(parse_recap(res.output)["agent-%03d" % i]["changed"] >= 1 for i in range(3))


def test_check_mode_prints_the_plan_per_agent(tmp_path):
    with FleetSim(config=fleet(5), workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, check=True)
        assert res.rc == 0, res.output
        assert posts(sim) == []
        assert "would be asked in wave 1 of 4 (explorers)" in res.output
        assert "would be asked in wave 4 of 4 (conservatives)" in res.output
        assert set(parse_recap(res.output)) >= {"agent-%03d" % i for i in range(5)}


# -- observed consent ------------------------------------------------------------------------------

def test_silent_decliners_are_never_updated_and_reported_declined(tmp_path):
    # 200 without a decision, then: agent-001 and agent-002 keep working (a silent decline)
    cfg = fleet(4, overrides={"agent-001": {"decision": "noanswer", "stuck_on_shutdown": True},
                              "agent-002": {"decision": "noanswer", "stuck_on_shutdown": True},
                              "agent-003": {"decision": "noanswer", "shutdown_exit_seconds": 1.0}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_cohorts="all", rollout_stop_timeout=3)
        assert res.rc == 0, res.output
        agents = by_host(res.report())
        for h in ("agent-001", "agent-002"):
            assert agents[h]["result"] == "declined" and agents[h]["decision"] == "declined"
            assert "did not stop within 3s: declined or still busy" in agents[h]["detail"]
            assert starts(sim, h) == []  # never recreated
            assert result_of(res.output, h) == ["ok"]
        assert agents["agent-003"]["decision"] == "accept" and agents["agent-003"]["result"] == "updated"
        assert versions(sim)["agent-001"] == "1.0.0" and versions(sim)["agent-003"] == "2.0.0"
        assert res.report()["status"] == "completed"
        # a rerun does not ask the decliners again for the same deployment
        assert run(sim, tmp_path).rc == 0
        assert len(posts(sim, "agent-001")) == 1


def test_accepters_are_recreated_only_after_they_exited(tmp_path):
    cfg = fleet(3, overrides={"agent-%03d" % i: {"decision": "noanswer", "shutdown_exit_seconds": 1.5}
                              for i in range(3)})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_cohorts="all")
        assert res.rc == 0, res.output
        for i in range(3):
            name = "agent-%03d" % i
            asked = posts(sim, name)[0]["ts"]
            started = [e["ts"] for e in sim.log(event="sim_start") if name in e["body"]["occurrences"]]
            assert len(started) == 1 and started[0] >= asked + 1.5, "recreated while still draining"
        assert set(versions(sim).values()) == {"2.0.0"}
        assert sim.violations()["count"] == 0


def test_a_straggler_that_becomes_stable_after_the_threshold_is_updated(tmp_path):
    cfg = fleet(4, overrides={"agent-002": {"boot_seconds": 2.5}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_cohorts="all", rollout_success_threshold=0.5, rollout_healthy_deadline=15)
        assert res.rc == 0, res.output
        report = res.report()
        assert by_host(report)["agent-002"]["result"] == "updated"
        assert report["status"] == "completed"


# -- real CIRIS behaviour: 200 "initiated" for everyone, the decision shows only in what the agent does ----

def ciris_fleet(count, decliners=(), token=None, **settings):
    overrides = {name: {"decision": "reject"} for name in decliners}
    cfg = {"defaults": dict({"consent": "ciris", "decide_seconds": 0.3, "drain_seconds": 1.0}, **settings),
           "agents": [{"count": count, "name_prefix": "agent-", "overrides": overrides}]}
    return cfg


def test_canary_against_ciris_agents_respects_what_they_do(tmp_path):
    cfg = ciris_fleet(6, decliners=["agent-002", "agent-004"])
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_cohorts=[{"name": "canary", "count": 2}, {"name": "rest", "rest": True}],
                  rollout_stop_timeout=4)
        assert res.rc == 0, res.output
        report = res.report()
        assert report["status"] == "completed"
        agents = by_host(report)
        for h in ("agent-002", "agent-004"):
            assert agents[h]["result"] == "declined", agents[h]
            assert starts(sim, h) == []
        for h in ("agent-000", "agent-001", "agent-003", "agent-005"):
            assert agents[h]["result"] == "updated" and agents[h]["decision"] == "accept", agents[h]
            assert agents[h]["decision_id"] is None  # real agents give none
        # nobody was recreated while it was still working or draining
        assert sim.violations()["count"] == 0
        assert len(posts(sim)) == 6  # each asked once
        assert versions(sim)["agent-002"] == "1.0.0" and versions(sim)["agent-005"] == "2.0.0"


def test_immediate_against_ciris_agents_waits_for_them_to_stop(tmp_path):
    cfg = ciris_fleet(4, decliners=["agent-003"])
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, playbook="agentfleet.rollout.immediate", rollout_stop_timeout=4)
        assert res.rc == 0, res.output
        assert all(e["body"]["force"] is True for e in posts(sim))
        agents = by_host(res.report())
        assert agents["agent-003"]["result"] == "declined" and starts(sim, "agent-003") == []
        assert [agents["agent-%03d" % i]["result"] for i in range(3)] == ["updated"] * 3
        assert sim.violations()["count"] == 0


def test_none_driver_asks_each_next_wave_as_the_last_one_passes_and_nobody_twice(tmp_path):
    # issue 20's critical path: with the none driver a wave that passed asks the next one before its call returns,
    # so that those agents drain and restart while Ansible writes the PLAY RECAP rows of the wave just done
    cfg = ciris_fleet(7, decliners=["agent-002"])
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim, Supervisor(sim, "2.0.0"):
        res = run(sim, tmp_path, rollout_driver="none", rollout_stop_timeout=3, rollout_success_threshold=0.6,
                  rollout_cohorts=[{"name": "first", "count": 1}, {"name": "second", "count": 3},
                                   {"name": "rest", "rest": True}])
        assert res.rc == 0, res.output
        report = res.report()
        assert report["status"] == "completed", report
        assert "wave 2 (second) asked ahead as wave 1 passed: 3 of 3 agents asked" in res.output, res.output
        assert "wave 3 (rest) asked ahead as wave 2 passed: 3 of 3 agents asked" in res.output, res.output
        agents = by_host(report)
        assert sorted(asked_hosts(sim)) == sorted(agents)  # each asked once
        assert all(a["asked_count"] == 1 for a in agents.values()), agents
        # a wave is asked only once the one before it passed
        finished = {w["wave"]: w["finished_at"] for w in report["waves"]}
        for a in agents.values():
            if a["wave"] > 1:
                assert a["asked_at"] >= finished[a["wave"] - 1], (a, finished)
        assert agents["agent-002"]["result"] == "declined" and starts(sim, "agent-002") == []
        assert [a["result"] for h, a in sorted(agents.items()) if h != "agent-002"] == ["updated"] * 6
        assert sim.violations()["count"] == 0


def test_tasks_driver_against_ciris_agents_updates_only_those_that_stopped(tmp_path):
    tasks = _trace_tasks(tmp_path)
    cfg = ciris_fleet(3, decliners=["agent-001"])
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_driver="tasks", rollout_update_tasks=str(tasks), rollout_cohorts="all",
                  rollout_stop_timeout=4)
        assert res.rc == 0, res.output
        assert sorted(p.name for p in tmp_path.glob("trace-*.json")) == ["trace-agent-000.json", "trace-agent-002.json"]
        assert sim.violations()["count"] == 0
        assert result_of(res.output, "agent-001") == ["ok"]
        assert by_host(res.report())["agent-001"]["result"] == "declined"


def test_a_burst_against_a_small_listen_backlog_loses_no_agent(tmp_path):
    # 1,000 agents behind one port (a reverse proxy's layout) whose listener has a backlog of 8: during the
    # burst many connections are refused or reset before the request is sent; they are retried with backoff.
    # The none driver (the agents' supervisor starts them): this is about the agent client, not the update step
    with FleetSim(config=fleet(1000), workdir=tmp_path / "sim", layout="paths", backlog=8) as sim, \
            Supervisor(sim, "2.0.0", interval=0.5):
        res = run(sim, tmp_path, playbook="agentfleet.rollout.immediate", rollout_max_workers=64,
                  rollout_healthy_deadline=60, rollout_driver="none")
        report = res.report()
        lost = [(a["host"], a["decision"], a["result"], a["detail"]) for a in report["agents"] if a["result"] != "updated"]
        assert not lost, lost[:10]
        assert res.rc == 0 and report["status"] == "completed", res.output[-2000:]
        assert report["totals"]["updated"] == 1000, report["totals"]
        # every agent asked; one asked twice only where its answer was lost after sending and a probe showed
        # it still working as before (the audit log says so)
        # behind the one port fleetsim logs the whole path (/api/<name>/v1/system/shutdown)
        hosts = [e["occurrence"] for e in sim.log(method="POST") if (e.get("path") or "").endswith("/v1/system/shutdown")]
        assert len(set(hosts)) == 1000
        audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
        resent = sum(1 for e in audit if e["event"] == "decision" and e.get("resent"))
        assert len(hosts) <= 1000 + resent


def test_a_halted_wave_with_healthy_agents_too_exits_non_zero_and_asks_no_later_wave(tmp_path):
    cfg = fleet(6, overrides={"agent-001": {"unhealthy_after_update": True}})
    with FleetSim(config=cfg, workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_cohorts=[{"name": "canary", "count": 2}, {"name": "rest", "rest": True}],
                  rollout_success_threshold=1.0, rollout_healthy_deadline=2)
        assert res.rc == 2, res.output
        assert sorted(asked_hosts(sim)) == ["agent-000", "agent-001"]
        assert result_of(res.output, "agent-000") == ["changed"] and result_of(res.output, "agent-001") == ["failed"]
        assert res.report()["status"] == "failed"


HISTORY_PLAY = """
- name: Read the rollout state
  hosts: localhost
  gather_facts: false
  tasks:
    - name: The fleet's deployments, newest first
      agentfleet.rollout.deployment_info:
        state_path: "{{ state }}"
        fleet_key: agents
      register: history
    - name: One deployment's report
      agentfleet.rollout.deployment_info:
        state_path: "{{ state }}"
        deployment_id: "{{ history.deployments[0].deployment_id }}"
      register: one
    - name: Keep them for the test
      ansible.builtin.copy:
        content: "{{ {'history': history.deployments, 'report': one.report, 'table': one.summary_table} | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
      check_mode: false
"""


def test_deployment_info_reads_the_history_and_a_report_without_changing_anything(tmp_path):
    with FleetSim(config=fleet(3), workdir=tmp_path / "sim") as sim:
        assert run(sim, tmp_path, rollout_cohorts="all").rc == 0
        second = run(sim, tmp_path, rollout_cohorts="all", rollout_target_version="3.0.0",
                     rollout_deployment_id="deploy-agents-3.0.0")
        assert second.rc == 0, second.output
        state = rollout_vars(tmp_path)["rollout_state_path"]
        before = open(state, "rb").read()
        play = tmp_path / "history.yml"
        play.write_text(HISTORY_PLAY)
        for check in (False, True):
            out = tmp_path / ("history-%s.json" % check)
            res = run_playbook(str(play), tmp_path, extra_vars={"state": state, "out": str(out)}, check=check)
            assert res.rc == 0, res.output
            data = json.loads(out.read_text())
            assert [(d["deployment_id"], d["status"]) for d in data["history"]] == [
                ("deploy-agents-3.0.0", "completed"), ("deploy-agents-2.0.0", "completed")]
            assert data["history"][0]["totals"]["updated"] == 3 and data["history"][0]["active"] is False
            assert data["report"]["kind"] == "rollout" and data["report"]["target_version"] == "3.0.0"
            assert data["table"][0].startswith("deployment deploy-agents-3.0.0 (canary -> 3.0.0): completed")
            for task in ("The fleet's deployments, newest first", "One deployment's report"):
                assert task_results(res.output, task) == {"localhost": ["ok"]}
        assert open(state, "rb").read() == before
