# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection against real CIRIS agents (ciris-agent from PyPI, its mock LLM, loopback only).

Where the agent cannot run (another platform) the suite is skipped with the reason (``make ciris`` runs
pytest with ``-rs``, so the reason is printed). With ``CI=true`` nothing but the platform may skip it: a
missing privilege or a failed install fails the suite instead.

Each agent has its own service token (``rollout_token`` per host, from an environment lookup as it
would come from Vault); the update tasks restart the agent's process the way a host's service manager
does. What must hold: every agent ends in ``work``, none was restarted while its API still answered
(its graceful shutdown cut short), the report says what happened, and no token shows anywhere.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ciris_harness as harness  # noqa: E402
from conftest import ansible_env, run_playbook  # noqa: E402  (tests/conftest.py)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
AGENTS = max(2, int(os.environ.get("CIRIS_AGENTS", "2")))


def not_here(reason: str):
    """Skip with the reason, or in CI fail: the suite must run there."""
    if IN_CI:
        pytest.fail("the real-agent suite must run in CI, but: %s" % reason, pytrace=False)
    pytest.skip("real CIRIS agents unavailable: %s" % reason)


@pytest.fixture(scope="session")
def ciris_paths(tmp_path_factory):
    reason = harness.platform_problem()
    if reason:
        pytest.skip("real CIRIS agents unavailable: %s" % reason)
    reason = harness.environment_problem()
    if reason:
        not_here(reason)
    cache = Path(os.environ.get("CIRIS_AGENT_CACHE") or harness.REPO / "build" / "ciris-agent")
    log = tmp_path_factory.mktemp("ciris-install") / "install.log"
    started = time.monotonic()
    try:
        paths = harness.install(cache, log)
    except harness.Unavailable as exc:
        not_here(str(exc))
    sys.stderr.write("\n[ciris] ciris-agent %s ready in %.0fs (%s)\n"
                     % (paths.get("CIRIS_VERSION"), time.monotonic() - started, cache))
    return paths


class Member:
    """One agent of the fleet: the harness agent, its forwarder, its URL on the host, its service token."""

    def __init__(self, agent, forwarder, token):
        self.agent = agent
        self.forwarder = forwarder
        self.token = token
        self.url = forwarder.url
        self.name = agent.name
        self.dir = agent.dir


@pytest.fixture(scope="module")
def ciris_fleet(ciris_paths, tmp_path_factory):
    """``AGENTS`` real agents, each with its own service token, claimed and in ``work``."""
    harness.delete_stale_namespaces()
    base = tmp_path_factory.mktemp("ciris-agents")
    members = []
    namespaces = []
    try:
        for i in range(1, AGENTS + 1):
            name = "ciris-%d" % i
            netns = "%s-%d-%d" % (harness.NS_PREFIX, os.getpid(), i)
            harness.netns_add(netns)
            namespaces.append(netns)
            token = "afc-test-" + secrets.token_hex(12)
            agent = harness.Agent.create(base / name, name, netns, token, ciris_paths)
            members.append(Member(agent, harness.Forwarder(netns), token))
        for m in members:
            m.agent.start()
        for m in members:
            harness.claim(m.agent, m.url, m.token, timeout=240)
        for m in members:
            harness.wait_for(lambda m=m: harness.in_work(m.url), 240, "%s in work after its claim" % m.name)
        yield members
    except BaseException:
        for m in members:
            log = m.dir / "agent.log"
            if log.exists():
                tail = log.read_text(errors="replace")[-3000:].replace(m.token, "***")
                sys.stderr.write("\n[ciris] %s log tail:\n%s\n" % (m.name, tail))
        raise
    finally:
        for m in members:
            m.forwarder.close()
        for netns in namespaces:
            harness.netns_delete(netns)


HARNESS = Path(harness.__file__).resolve()

# What a host's service manager does to a real agent: end the process (it may not exit by itself after
# its graceful shutdown) and start it again. The harness notes whether its API was still open.
RESTART = """\
- name: Restart the agent's process
  ansible.builtin.command:
    argv: ["{{ ansible_playbook_python }}", "%s", "restart", "{{ ciris_agent_dir }}"]
  changed_when: true
""" % HARNESS


def write_inventory(path: Path, fleet, **host_extra) -> Path:
    hosts = {}
    for m in fleet:
        hosts[m.name] = dict({"agent_url": m.url, "ansible_connection": "local", "ciris_agent_dir": str(m.dir),
                              "rollout_token": "{{ lookup('ansible.builtin.env', 'CIRIS_TOKEN_%s') }}"
                              % m.name.replace("-", "_").upper()}, **host_extra)
    inv = {"all": {"vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
                   "children": {"agents": {"hosts": hosts}}}}
    path.write_text(json.dumps(inv, indent=1))
    return path


def run_env(run_dir: Path, fleet) -> dict:
    # a real agent wants "Bearer service:<its CIRIS_SERVICE_TOKEN>"
    tokens = {"CIRIS_TOKEN_%s" % m.name.replace("-", "_").upper(): "service:" + m.token for m in fleet}
    env = ansible_env(run_dir, **tokens)
    env.pop("AGENTFLEET_TOKEN", None)
    return env


def restarts(member):
    return [e for e in harness.events(member.dir) if e["event"] == "restart"]


def assert_token_nowhere(fleet, res, run_dir: Path):
    """No token in the run's output, nor in any file the run wrote (the agents' own data directories hold
    their tokens: those are the agents' files, not the run's)."""
    homes = [m.dir / "home" for m in fleet]
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    files += [p for m in fleet for p in m.dir.rglob("*")
              if p.is_file() and not any(h == p or h in p.parents for h in homes) and p.name != "agent.log"]
    assert files, "the run wrote nothing?"
    for m in fleet:
        assert m.token not in res.output
        for path in files:
            assert m.token.encode() not in path.read_bytes(), path


def assert_all_in_work(fleet):
    for m in fleet:
        data = harness.wait_for(lambda m=m: harness.in_work(m.url), 120, "%s in work at the end" % m.name)
        assert data["version"].startswith("2.16.5"), data


def test_canary_with_the_tasks_driver_restarts_each_agent_only_after_its_api_closed(ciris_fleet, tmp_path):
    run_dir = tmp_path / "canary"
    run_dir.mkdir()
    (run_dir / "update.yml").write_text(RESTART)
    inventory = write_inventory(run_dir / "inventory.yml", ciris_fleet)
    before = {m.name: len(restarts(m)) for m in ciris_fleet}
    extra_vars = {
        # no newer release to install: the same one starts again (a target the agents do not
        # report, so none is skipped as "already on the target"); what is checked is the stop
        # and the restart
        "rollout_target_version": "2.16.6-stable",
        "rollout_require_target_version": False,
        "rollout_driver": "tasks",
        "rollout_update_tasks": "update.yml",
        "rollout_cohorts": [{"name": "canary", "count": 1}, {"name": "rest", "rest": True}],
        "rollout_stop_timeout": 180,
        "rollout_healthy_deadline": 300,
        "rollout_min_healthy_time": 3,
        "rollout_poll_interval": 1,
        "rollout_state_path": str(run_dir / "state.db"),
        "rollout_report_path": str(run_dir / "report.json"),
        "rollout_audit_path": str(run_dir / "audit.jsonl"),
    }
    res = run_playbook("agentfleet.rollout.canary", run_dir, inventory=inventory, env=run_env(run_dir, ciris_fleet),
                       timeout=900, report_path=run_dir / "report.json", extra_vars=extra_vars)
    assert res.rc == 0, res.output[-8000:]
    report = res.report()
    assert report["status"] == "completed", report
    agents = {a["host"]: a for a in report["agents"]}
    assert sorted(agents) == sorted(m.name for m in ciris_fleet)
    for m in ciris_fleet:
        a = agents[m.name]
        # asked with its own token (a wrong one is a 401: authentication failed), accepted by stopping
        assert a["result"] == "updated", a
        assert a["decision"] == "accept", a
        assert "stopped" in (a["decision_reason"] or ""), a
        assert a["version_after"].startswith("2.16.5"), a
        done = restarts(m)[before[m.name]:]
        assert len(done) == 1, done
        assert done[0]["api_open"] is False, "%s was restarted while its API still answered" % m.name
    assert [w["summary"]["size"] for w in report["waves"]] == [1, len(ciris_fleet) - 1]
    assert_all_in_work(ciris_fleet)
    assert_token_nowhere(ciris_fleet, res, run_dir)


def test_multi_occurrence_shutdown_then_wakeup(ciris_fleet, tmp_path):
    """The agents as occurrences of one agent: the explorer decides for all (it accepts by stopping), the
    others follow its decision; then the wakeup play starts them again with the same tasks, explorer first."""
    run_dir = tmp_path / "occurrences"
    run_dir.mkdir()
    (run_dir / "start.yml").write_text(RESTART)
    inventory = write_inventory(run_dir / "inventory.yml", ciris_fleet, agent_id="ciris-fleet")
    env = run_env(run_dir, ciris_fleet)
    before = {m.name: len(restarts(m)) for m in ciris_fleet}
    common = {"rollout_state_path": str(run_dir / "state.db"), "rollout_audit_path": str(run_dir / "audit.jsonl")}
    down = run_playbook("agentfleet.rollout.shutdown", run_dir, inventory=inventory, env=env, timeout=900,
                        report_path=run_dir / "shutdown.json", extra_vars=dict(
                            common, shutdown_reason="host maintenance (test)", shutdown_wave_delays=[0, 0],
                            shutdown_stop_timeout=180, shutdown_poll_interval=1,
                            rollout_report_path=str(run_dir / "shutdown.json")))
    assert down.rc == 0, down.output[-8000:]
    for m in ciris_fleet:
        assert not harness.api_open(m.agent.netns), "%s: its API still answers after the shutdown" % m.name
    shutdown = down.report()
    assert shutdown["status"] == "completed", shutdown
    up = run_playbook("agentfleet.rollout.wakeup", run_dir, inventory=inventory, env=env, timeout=900,
                      report_path=run_dir / "wakeup.json", extra_vars=dict(
                          common, rollout_driver="tasks", rollout_update_tasks="start.yml",
                          wakeup_wave_delays=[0, 0], wakeup_wave_timeout=300, wakeup_poll_interval=1,
                          rollout_report_path=str(run_dir / "wakeup.json")))
    assert up.rc == 0, up.output[-8000:]
    assert up.report()["status"] == "completed", up.report()
    for m in ciris_fleet:
        done = restarts(m)[before[m.name]:]
        assert len(done) == 1, done
        assert done[0]["api_open"] is False
    assert_all_in_work(ciris_fleet)

    class Both:
        output = down.output + up.output

    assert_token_nowhere(ciris_fleet, Both, run_dir)


def test_a_wrong_token_is_refused_and_never_shown(ciris_fleet, tmp_path):
    """One agent's token sent to another: the real agent answers 401, the rollout stops saying so, nobody is
    restarted and neither token is printed."""
    run_dir = tmp_path / "wrong"
    run_dir.mkdir()
    (run_dir / "update.yml").write_text(RESTART)
    first, second = ciris_fleet[0], ciris_fleet[1]
    inventory = write_inventory(run_dir / "inventory.yml", [first])
    env = run_env(run_dir, ciris_fleet)
    env["CIRIS_TOKEN_%s" % first.name.replace("-", "_").upper()] = "service:" + second.token
    before = len(restarts(first))
    res = run_playbook("agentfleet.rollout.canary", run_dir, inventory=inventory, env=env, timeout=300,
                       report_path=run_dir / "report.json", extra_vars={
                           "rollout_target_version": "2.16.6-stable", "rollout_require_target_version": False,
                           "rollout_driver": "tasks", "rollout_update_tasks": "update.yml",
                           "rollout_state_path": str(run_dir / "state.db"),
                           "rollout_report_path": str(run_dir / "report.json")})
    assert res.rc != 0
    assert "authentication failed" in res.output
    assert len(restarts(first)) == before
    assert harness.in_work(first.url)
    assert os.path.exists(run_dir / "report.json")
    assert_token_nowhere(ciris_fleet, res, run_dir)


def test_agents_already_on_the_target_release_are_not_asked(ciris_fleet, tmp_path):
    """A real agent reports its release with its channel (2.16.5-stable): a rollout to 2.16.5 finds every
    agent already there and asks nobody."""
    run_dir = tmp_path / "on-target"
    run_dir.mkdir()
    (run_dir / "update.yml").write_text(RESTART)
    inventory = write_inventory(run_dir / "inventory.yml", ciris_fleet)
    before = {m.name: len(restarts(m)) for m in ciris_fleet}
    res = run_playbook("agentfleet.rollout.canary", run_dir, inventory=inventory, env=run_env(run_dir, ciris_fleet),
                       timeout=300, report_path=run_dir / "report.json", extra_vars={
                           "rollout_target_version": "2.16.5", "rollout_driver": "tasks",
                           "rollout_update_tasks": "update.yml", "rollout_min_healthy_time": 0,
                           "rollout_state_path": str(run_dir / "state.db"),
                           "rollout_report_path": str(run_dir / "report.json")})
    assert res.rc == 0, res.output[-6000:]
    report = res.report()
    assert report["status"] == "completed", report
    assert {a["result"] for a in report["agents"]} == {"skipped"}, report["agents"]
    assert {m.name: len(restarts(m)) for m in ciris_fleet} == before
    assert_all_in_work(ciris_fleet)
    assert_token_nowhere(ciris_fleet, res, run_dir)
