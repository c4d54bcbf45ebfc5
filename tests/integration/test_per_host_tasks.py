"""Issue 20 item 2, guarded without a clock: what a rollout costs per agent in forked workers.

A per-host task costs a forked worker per agent (~9 ms a host here, the floor of bench/floor.yml), a run_once
task one per batch, a `meta` task none. So the `none` driver's waves play has exactly one per-host task per
agent (its PLAY RECAP row, agentfleet.rollout.agent_result) and everything else once per batch; the plan play
runs once. A per-host `include_tasks` whose `when` is false still forks a worker per agent: a before_wave hook
include without run_once cost 9.7 s at 1,000 agents (make bench-check) before this test existed. The count
comes from tests/integration/files/callback_plugins/worker_count.py (v2_runner_on_start per task and host)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from conftest import REPO
from fleetsim.testing import FleetSim
from userpath import FILES, TOKEN, fleet, records, run

AGENTS = 12
FOUR_WAVES = [{"name": "canary", "count": 2}, {"name": "w2", "count": 3}, {"name": "w3", "count": 4},
              {"name": "rest", "rest": True}]
RESULT_TASK = "Each agent's result"
FIRST_ROUND = "Wave: update each agent as it stops, in rounds"
NEXT_ROUND = "Wave: the next round"
ROUND_CALL = "Wave: record the round, then the next agents that stopped (or the gate and the verdict)"
USER_FILE = "Wave: the update tasks (rollout_update_tasks, or the docker driver's own)"


def counted_env(tmp_path):
    return {"ANSIBLE_CALLBACK_PLUGINS": str(FILES / "callback_plugins"), "ANSIBLE_CALLBACKS_ENABLED": "worker_count",
            "WORKER_COUNT_OUT": str(tmp_path / "workers.json")}


def workers(tmp_path):
    """The callback's counts: ({task: {"name", "batches"}}, {play start #: {"name", "implicit"}})."""
    counts = json.loads((tmp_path / "workers.json").read_text())
    plays = counts.pop("_plays")
    return counts, plays


def per_host_tasks(counts):
    """({task name: {agent: workers}} of the tasks that got a worker for more than one host of a batch,
    {task name: the most workers it got in one batch} of the others)."""
    per_host, once = {}, {}
    for entry in counts.values():
        name = entry["name"].split(" : ", 1)[-1]
        if any(len(hosts) > 1 for hosts in entry["batches"].values()):
            merged = per_host.setdefault(name, {})
            for hosts in entry["batches"].values():
                for host, n in hosts.items():
                    merged[host] = merged.get(host, 0) + n
        else:
            once[name] = max(once.get(name, 0), max(sum(h.values()) for h in entry["batches"].values()))
    return per_host, once


class InstantAgents:
    """bench/instant_agents.py: agents behind one port that answer the ask 200 "initiated" and restart at once."""

    def __init__(self, count, wd):
        ready = wd / "instant.json"
        self.inventory = str(wd / "instant-inv.yml")
        self.proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "instant_agents.py"), "--count", str(count),
                                      "--ready-file", str(ready), "--inventory", self.inventory])
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert self.proc.poll() is None and time.monotonic() < deadline, "instant_agents did not start"
            time.sleep(0.02)
        self.members = [m["name"] for m in json.loads(ready.read_text())["members"]]

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)


def test_none_driver_one_worker_per_agent_for_its_recap_row_and_one_per_batch_for_the_rest(tmp_path):
    # and the plan play ends its role once, not once per agent: an imported role ends with an implicit
    # role_complete (no worker, but a callback round and a realpath) for every host of its play, and the plan
    # play's hosts are every agent: 0.3 s at 1,000 agents and 11 s at 10,000 (make bench-check BENCH_SCALE=1).
    # The plan play includes the role (apply: run_once): one role_complete, for the host that ran it.
    agents = InstantAgents(AGENTS, tmp_path)
    try:
        res = run(None, tmp_path, inventory=agents.inventory, driver="none", rollout_cohorts=FOUR_WAVES,
                  env=counted_env(tmp_path))
    finally:
        agents.close()
    assert res.rc == 0, res.output[-4000:]
    assert records(tmp_path) == {1: "completed"}
    counts, plays = workers(tmp_path)
    per_host, once = per_host_tasks(counts)
    assert per_host == {RESULT_TASK: {name: 1 for name in agents.members}}, per_host
    # everything else: one worker in a batch (run_once) or none (meta)
    assert once and set(once.values()) == {1}, once
    assert implicit_metas(plays, "Plan the rollout").get("role_complete") == 1
    # the waves play imports the role (an include would cost a worker per agent): one role_complete per agent
    assert implicit_metas(plays, "Roll out in waves").get("role_complete") == AGENTS


def test_tasks_driver_the_users_tasks_plus_the_pipelines_includes_and_the_recap_row(tmp_path):
    with FleetSim(config=fleet(AGENTS), workdir=tmp_path / "sim") as sim:
        members = sorted(sim.occurrences())
        res = run(sim, tmp_path, rollout_cohorts=FOUR_WAVES, token=TOKEN,
                  rollout_update_tasks=str(REPO / "fleetsim" / "ansible" / "update.yml"), env=counted_env(tmp_path))
        assert res.rc == 0, res.output[-4000:]
    assert records(tmp_path) == {1: "completed"}
    counts, plays = workers(tmp_path)
    per_host, once = per_host_tasks(counts)
    users = [t for t in per_host if t.startswith("Start ")]
    assert len(users) == 1 and per_host[users[0]] == {name: 1 for name in members}, per_host
    # per agent: the first round's include and the recap row; per agent and round of its wave: the include of the
    # user's task file and the next round's include (skipped once the wave is done: ansible-core still forks a
    # worker to evaluate the `when` of a task that is not `meta`). The first round cannot be imported instead: a
    # wave done at its ask (check mode, nobody to update) would have the skipped round call's result registered
    # over the ask's.
    ours = {t: hosts for t, hosts in per_host.items() if t not in users}
    assert set(ours) == {RESULT_TASK, FIRST_ROUND, NEXT_ROUND, USER_FILE}, ours
    assert ours[RESULT_TASK] == ours[FIRST_ROUND] == {name: 1 for name in members}
    rounds = rounds_per_agent(counts)
    assert ours[USER_FILE] == ours[NEXT_ROUND] == rounds, (ours, rounds)
    # everything else: one worker in a batch (the round call: one a round)
    assert once and set(n for t, n in once.items() if t != ROUND_CALL) == {1}, once


def implicit_metas(plays, play_prefix):
    """{meta: how many} of the implicit meta tasks (no worker, but one per host each) in the plays so named."""
    total = {}
    for play in plays.values():
        if play["name"].startswith(play_prefix):
            for meta, n in play["implicit"].items():
                total[meta] = total.get(meta, 0) + n
    return total


def rounds_per_agent(counts):
    """{agent: the rounds of its wave}: the run_once round call ran once per round of each batch."""
    batches = {}
    for entry in counts.values():
        for batch, hosts in entry["batches"].items():
            batches.setdefault(batch, {"agents": set(), "rounds": 0})["agents"].update(hosts)
            if entry["name"].endswith(ROUND_CALL):
                batches[batch]["rounds"] += sum(hosts.values())
    return {a: b["rounds"] for b in batches.values() if b["rounds"] for a in b["agents"]}
