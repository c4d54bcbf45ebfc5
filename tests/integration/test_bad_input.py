# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration: the bad-input corpus (issue 12, defect 5).

Every case is a real ``ansible-playbook`` run of a playbook of the collection against a
small fleetsim fleet on loopback, with one bad input (an extra var, a file, an inventory).
Each must: exit non-zero, print one clear error line that names the variable, print no
Python traceback, ask nobody (fleetsim saw no request from the run) and record no
deployment (a corrected rerun is a new deployment, not "already failed"). The cases and
their errors are written to tests/output/reliability/inputs.json (docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import re

import pytest

from conftest import REPO, ansible_env, run_playbook
from fleetsim.testing import FleetSim
from test_canary import SHUTDOWN, fleet, rollout_vars

TABLE_DIR = REPO / "tests" / "output" / "reliability"
ROWS_DIR = TABLE_DIR / "inputs.d"
NOT_A_LIST = "foo: bar\n"
NOT_YAML = "- name: x\n  debug: [\n"
# ports the cases write themselves (the others are fleetsim's, different on every run)
FIXED_PORTS = ("1", "21", "99999")
UPDATE = "- name: nothing\n  ansible.builtin.debug:\n    msg: updating\n"

# (case id, what the input is (shown in the table), playbook, extra vars (None: remove the key), inventory change,
#  the variable the error must name)
CANARY = "agentfleet.rollout.canary"
CASES = [
    ("target-missing", "no rollout_target_version", CANARY, {"rollout_target_version": None}, None, "rollout_target_version"),
    ("target-empty", "rollout_target_version: ''", CANARY, {"rollout_target_version": ""}, None, "rollout_target_version"),
    ("target-space", "rollout_target_version: '2.0 beta'", CANARY, {"rollout_target_version": "2.0 beta"}, None, "rollout_target_version"),
    ("driver-unknown", "rollout_driver: bogus", CANARY, {"rollout_driver": "bogus"}, None, "rollout_driver"),
    ("tasks-no-file", "rollout_driver: tasks without rollout_update_tasks", CANARY,
     {"rollout_driver": "tasks", "rollout_update_tasks": None}, None, "rollout_update_tasks"),
    ("tasks-missing-file", "rollout_update_tasks: missing.yml",
     CANARY, {"rollout_driver": "tasks", "rollout_update_tasks": "missing.yml"}, None, "rollout_update_tasks"),
    ("tasks-not-a-list", "rollout_update_tasks: a YAML mapping",
     CANARY, {"rollout_driver": "tasks", "rollout_update_tasks": "@NOT_A_LIST"}, None, "rollout_update_tasks"),
    ("tasks-bad-yaml", "rollout_update_tasks: broken YAML",
     CANARY, {"rollout_driver": "tasks", "rollout_update_tasks": "@NOT_YAML"}, None, "rollout_update_tasks"),
    ("deadline-nan", "rollout_healthy_deadline: nan", CANARY, {"rollout_healthy_deadline": "nan"}, None, "rollout_healthy_deadline"),
    ("deadline-inf", "rollout_healthy_deadline: inf", CANARY, {"rollout_healthy_deadline": "inf"}, None, "rollout_healthy_deadline"),
    ("deadline-1e12", "rollout_healthy_deadline: 1e12", CANARY, {"rollout_healthy_deadline": 1e12}, None, "rollout_healthy_deadline"),
    ("deadline-zero", "rollout_healthy_deadline: 0", CANARY, {"rollout_healthy_deadline": 0}, None, "rollout_healthy_deadline"),
    ("deadline-negative", "rollout_healthy_deadline: -5", CANARY, {"rollout_healthy_deadline": -5}, None, "rollout_healthy_deadline"),
    ("deadline-word", "rollout_healthy_deadline: abc", CANARY, {"rollout_healthy_deadline": "abc"}, None, "rollout_healthy_deadline"),
    ("min-healthy-negative", "rollout_min_healthy_time: -1", CANARY, {"rollout_min_healthy_time": -1}, None, "rollout_min_healthy_time"),
    ("min-healthy-over-deadline", "rollout_min_healthy_time: 20 > rollout_healthy_deadline: 10", CANARY,
     {"rollout_min_healthy_time": 20, "rollout_healthy_deadline": 10}, None, "rollout_min_healthy_time"),
    ("threshold-over-1", "rollout_success_threshold: 1.5", CANARY, {"rollout_success_threshold": 1.5}, None, "rollout_success_threshold"),
    ("threshold-negative", "rollout_success_threshold: -0.1", CANARY, {"rollout_success_threshold": -0.1}, None, "rollout_success_threshold"),
    ("threshold-nan", "rollout_success_threshold: nan", CANARY, {"rollout_success_threshold": "nan"}, None, "rollout_success_threshold"),
    ("stop-timeout-negative", "rollout_stop_timeout: -1", CANARY, {"rollout_stop_timeout": -1}, None, "rollout_stop_timeout"),
    ("stop-timeout-huge", "rollout_stop_timeout: 1e9", CANARY, {"rollout_stop_timeout": 1e9}, None, "rollout_stop_timeout"),
    ("poll-zero", "rollout_poll_interval: 0", CANARY, {"rollout_poll_interval": 0}, None, "rollout_poll_interval"),
    ("poll-negative", "rollout_poll_interval: -1", CANARY, {"rollout_poll_interval": -1}, None, "rollout_poll_interval"),
    ("wait-negative", "rollout_wait_between_waves: -3", CANARY, {"rollout_wait_between_waves": -3}, None, "rollout_wait_between_waves"),
    ("defer-negative", "rollout_defer_deadline: -1", CANARY, {"rollout_defer_deadline": -1}, None, "rollout_defer_deadline"),
    ("connect-timeout-zero", "rollout_connect_timeout: 0", CANARY, {"rollout_connect_timeout": 0}, None, "rollout_connect_timeout"),
    ("read-timeout-huge", "rollout_read_timeout: 1e9", CANARY, {"rollout_read_timeout": 1e9}, None, "rollout_read_timeout"),
    ("read-timeout-word", "rollout_read_timeout: ten", CANARY, {"rollout_read_timeout": "ten"}, None, "rollout_read_timeout"),
    ("workers-zero", "rollout_max_workers: 0", CANARY, {"rollout_max_workers": 0}, None, "rollout_max_workers"),
    ("workers-huge", "rollout_max_workers: 100000", CANARY, {"rollout_max_workers": 100000}, None, "rollout_max_workers"),
    ("workers-fraction", "rollout_max_workers: 2.5", CANARY, {"rollout_max_workers": 2.5}, None, "rollout_max_workers"),
    ("states-empty", "rollout_expected_states: []", CANARY, {"rollout_expected_states": []}, None, "rollout_expected_states"),
    ("states-unknown", "rollout_expected_states: [working]", CANARY, {"rollout_expected_states": ["working"]}, None, "rollout_expected_states"),
    ("require-version-word", "rollout_require_target_version: maybe",
     CANARY, {"rollout_require_target_version": "maybe"}, None, "rollout_require_target_version"),
    ("auto-revert-word", "rollout_auto_revert: perhaps", CANARY, {"rollout_auto_revert": "perhaps"}, None, "rollout_auto_revert"),
    ("validate-certs-word", "rollout_validate_certs: sometimes", CANARY, {"rollout_validate_certs": "sometimes"}, None, "rollout_validate_certs"),
    ("report-is-dir", "rollout_report_path: a directory", CANARY, {"rollout_report_path": "@DIR"}, None, "rollout_report_path"),
    ("report-under-file", "rollout_report_path: under a regular file", CANARY, {"rollout_report_path": "@FILE/report.json"}, None, "rollout_report_path"),
    ("audit-is-dir", "rollout_audit_path: a directory", CANARY, {"rollout_audit_path": "@DIR"}, None, "rollout_audit_path"),
    ("state-is-dir", "rollout_state_path: a directory", CANARY, {"rollout_state_path": "@DIR"}, None, "rollout_state_path"),
    ("state-not-db", "rollout_state_path: a text file", CANARY, {"rollout_state_path": "@FILE"}, None, "rollout_state_path"),
    ("deployment-id-bad", "rollout_deployment_id: 'bad id/!'", CANARY, {"rollout_deployment_id": "bad id/!"}, None, "rollout_deployment_id"),
    ("token-newline", "rollout_token with a line break", CANARY, {"rollout_token": "abc\ndef"}, None, "rollout_token"),
    ("cohort-method-unknown", "rollout_cohort_method: random", CANARY, {"rollout_cohort_method": "random"}, None, "rollout_cohort_method"),
    ("strategy-unknown", "rollout_strategy: sideways", CANARY, {"rollout_strategy": "sideways"}, None, "rollout_strategy"),
    ("max-parallel-zero", "rollout_max_parallel: 0", CANARY, {"rollout_max_parallel": 0}, None, "rollout_max_parallel"),
    ("max-parallel-word", "rollout_max_parallel: many", CANARY, {"rollout_max_parallel": "many"}, None, "rollout_max_parallel"),
    ("canary-zero", "rollout_canary: 0", CANARY, {"rollout_canary": 0}, None, "rollout_canary"),
    ("canary-empty", "rollout_canary: []", CANARY, {"rollout_canary": []}, None, "rollout_canary"),
    ("auto-promote-word", "rollout_auto_promote: perhaps", CANARY, {"rollout_auto_promote": "perhaps"}, None, "rollout_auto_promote"),
    ("progress-negative", "rollout_progress_deadline: -1", CANARY, {"rollout_progress_deadline": -1}, None, "rollout_progress_deadline"),
    ("progress-nan", "rollout_progress_deadline: nan", CANARY, {"rollout_progress_deadline": "nan"}, None, "rollout_progress_deadline"),
    ("progress-under-deadline", "rollout_progress_deadline: 5 < rollout_healthy_deadline: 8", CANARY,
     {"rollout_progress_deadline": 5}, None, "rollout_progress_deadline"),
    ("health-check-unknown", "rollout_health_check: ping", CANARY, {"rollout_health_check": "ping"}, None, "rollout_health_check"),
    ("url-duplicate", "two hosts with one agent_url", CANARY, {}, "duplicate", "agent_url"),
    ("url-ftp", "agent_url: ftp://...", CANARY, {}, "ftp", "agent_url"),
    ("url-missing", "a host without agent_url", CANARY, {}, "missing", "agent_url"),
    ("url-port", "agent_url with port 99999", CANARY, {}, "port", "agent_url"),
    ("url-words", "agent_url: 'not a url'", CANARY, {}, "words", "agent_url"),
    ("group-empty", "an empty agents group", CANARY, {}, "empty", "rollout_hosts"),
    ("immediate-deadline-nan", "immediate, rollout_healthy_deadline: nan",
     "agentfleet.rollout.immediate", {"rollout_healthy_deadline": "nan"}, None, "rollout_healthy_deadline"),
    ("manual-workers-zero", "manual, rollout_max_workers: 0", "agentfleet.rollout.manual", {"rollout_max_workers": 0}, None, "rollout_max_workers"),
    ("shutdown-no-reason", "shutdown without shutdown_reason", "agentfleet.rollout.shutdown", {"shutdown_reason": None}, None, "shutdown_reason"),
    ("shutdown-delay-negative", "shutdown_wave_delays: [-1, 60]",
     "agentfleet.rollout.shutdown", {"shutdown_wave_delays": [-1, 60]}, None, "shutdown_wave_delays"),
    ("shutdown-fraction", "shutdown_min_serving_fraction: 2",
     "agentfleet.rollout.shutdown", {"shutdown_min_serving_fraction": 2}, None, "shutdown_min_serving_fraction"),
    ("shutdown-timeout-nan", "shutdown_wave_timeout: nan", "agentfleet.rollout.shutdown", {"shutdown_wave_timeout": "nan"}, None, "shutdown_wave_timeout"),
    ("wakeup-states-empty", "wakeup_expected_states: []", "agentfleet.rollout.wakeup", {"wakeup_expected_states": []}, None, "wakeup_expected_states"),
    ("wakeup-min-over-timeout", "wakeup_min_healthy_time: 400 > wakeup_wave_timeout: 300", "agentfleet.rollout.wakeup",
     {"wakeup_min_healthy_time": 400, "wakeup_wave_timeout": 300}, None, "wakeup_min_healthy_time"),
    ("wakeup-poll-zero", "wakeup_poll_interval: 0", "agentfleet.rollout.wakeup", {"wakeup_poll_interval": 0}, None, "wakeup_poll_interval"),
    # a variable the collection does not know (issue 23): a typo is an error, not silently ignored
    ("unknown-typo", "rollout_sucess_threshold: 0.9 (a typo)", CANARY, {"rollout_sucess_threshold": 0.9}, None,
     "rollout_sucess_threshold"),
    ("unknown-name", "rollout_blast_radius: 3 (no such variable)", CANARY, {"rollout_blast_radius": 3}, None,
     "rollout_blast_radius"),
    ("analysis-no-source", "rollout_analysis: a check without a source", CANARY,
     {"rollout_analysis": [{"name": "x", "success_condition": "result < 1"}]}, None, "rollout_analysis[x]"),
    ("notify-url-not-http", "rollout_notify_url: hooks.example.org/... (no scheme)", CANARY,
     {"rollout_notify_url": "hooks.example.org/services/secret"}, None, "rollout_notify_url"),
    ("unknown-typo-required", "rollout_target_verison instead of rollout_target_version", CANARY,
     {"rollout_target_version": None, "rollout_target_verison": "2.0.0"}, None, "rollout_target_verison"),
    ("unknown-host-var", "host variable rollout_tokn of one agent", CANARY, {}, "hostvar", "rollout_tokn"),
    ("shutdown-unknown", "shutdown_wave_timout: 60 (a typo)", "agentfleet.rollout.shutdown", {"shutdown_wave_timout": 60},
     None, "shutdown_wave_timout"),
    ("wakeup-unknown", "wakeup_min_healthy: 5 (a typo)", "agentfleet.rollout.wakeup", {"wakeup_min_healthy": 5}, None,
     "wakeup_min_healthy"),
]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with FleetSim(config=fleet(3), workdir=tmp_path_factory.mktemp("sim")) as s:
        yield s


def inventory(tmp_path, sim, change):
    hosts = dict((n, dict(h, fleetsim_control_url=sim.control_url)) for n, h in sim.hosts().items())
    names = sorted(hosts)
    if change == "duplicate":
        hosts[names[1]]["agent_url"] = hosts[names[0]]["agent_url"] + "/"
    elif change == "ftp":
        hosts[names[1]]["agent_url"] = "ftp://127.0.0.1:21/agent"
    elif change == "missing":
        del hosts[names[2]]["agent_url"]
    elif change == "port":
        hosts[names[0]]["agent_url"] = "http://127.0.0.1:99999"
    elif change == "words":
        hosts[names[0]]["agent_url"] = "not a url"
    elif change == "hostvar":
        hosts[names[1]]["rollout_tokn"] = "a-host-token"
    children = {"agents": {"hosts": {} if change == "empty" else hosts}}
    if change == "empty":
        children["others"] = {"hosts": hosts}
    inv = {"all": {"vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"}, "children": children}}
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(inv))
    return path


def case_vars(tmp_path, playbook, overrides):
    v = rollout_vars(tmp_path)
    if playbook.endswith(".shutdown"):
        v["shutdown_reason"] = "host maintenance"
    for key, value in overrides.items():
        if value is None:
            v.pop(key, None)
            continue
        if isinstance(value, str) and value.startswith("@"):
            if value == "@DIR":
                (tmp_path / "a-dir").mkdir(exist_ok=True)
                value = str(tmp_path / "a-dir")
            elif value.startswith("@FILE"):
                (tmp_path / "a-file").write_text("just text, not a database\n" * 10)
                value = str(tmp_path / "a-file") + value[len("@FILE"):]
            else:
                (tmp_path / "tasks.yml").write_text(globals()[value[1:]])
                value = "tasks.yml"
        v[key] = value
    return v


def error_lines(output):
    """The messages of the failed tasks and of ansible-playbook's own errors."""
    found = []
    for line in output.splitlines():
        m = re.match(r'^fatal: \[[^\]]+\]: FAILED! => (\{.*\})$', line)
        if m:
            found.append(json.loads(m.group(1)).get("msg", ""))
    return found


def deployments(state_path):
    if not state_path.is_file():
        return []
    import sqlite3

    db = sqlite3.connect(str(state_path))
    try:
        return db.execute("SELECT deployment_id, status FROM deployments").fetchall()
    except sqlite3.DatabaseError:
        return []
    finally:
        db.close()


def write_row(case_id, what, field, message):
    """This case's row, then the whole table again from every row (one file per case, the table rebuilt under
    a lock: safe with pytest-xdist)."""
    import fcntl

    ROWS_DIR.mkdir(parents=True, exist_ok=True)
    (ROWS_DIR / (case_id + ".json")).write_text(json.dumps([what, field, message]))
    with open(TABLE_DIR / ".inputs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _write_table()


def _write_table():
    order = dict((c[0], i) for i, c in enumerate(CASES))
    rows = []
    for path in ROWS_DIR.glob("*.json"):
        if path.stem in order:
            rows.append((order[path.stem], json.loads(path.read_text())))
    table = {"title": "Bad input -> error (nothing asked, nothing recorded)",
             "columns": ["input", "variable", "error (one line)"], "rows": [r for dummy, r in sorted(rows)]}
    tmp = TABLE_DIR / (".inputs.json.%d" % os.getpid())
    tmp.write_text(json.dumps(table, indent=1))
    os.replace(tmp, TABLE_DIR / "inputs.json")


def test_the_corpus_has_at_least_50_cases():
    assert len(CASES) >= 50
    assert len(set(c[0] for c in CASES)) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error_and_changes_nothing(case, sim, tmp_path):
    case_id, what, playbook, overrides, change, field = case
    before = sim.log()
    seq = before[-1]["seq"] if before else 0
    extra = case_vars(tmp_path, playbook, overrides)
    env = ansible_env(tmp_path)
    env.pop("AGENTFLEET_TOKEN", None)
    res = run_playbook(playbook, tmp_path, inventory=inventory(tmp_path, sim, change), extra_vars=extra, env=env,
                       timeout=120)
    assert res.rc != 0, res.output[-3000:]
    assert "Traceback" not in res.output, res.output[-3000:]
    errors = error_lines(res.output)
    assert len(errors) == 1, (errors, res.output[-3000:])
    message = errors[0]
    assert "\n" not in message and len(message) < 600, message
    assert message.startswith(field) or (field + ":") in message or (field + " ") in message, message
    assert "argument_spec" not in res.output
    # nobody asked, not even probed; nothing recorded as a deployment
    assert sim.log(since=seq) == [], sim.log(since=seq)[:5]
    assert deployments(tmp_path / "state.db") == []
    if "abc\ndef" in json.dumps(extra):
        assert "def" not in message and "abc" not in message
    # the table stays the same from run to run: no temporary directory, no loopback port
    shown = re.sub(r"127\.0\.0\.1:(\d+)", lambda m: m.group(0) if m.group(1) in FIXED_PORTS else "127.0.0.1:<port>",
                   message.replace(str(tmp_path), "<tmp>"))
    write_row(case_id, what, field, shown)


def test_a_corrected_rerun_after_bad_input_rolls_out(sim, tmp_path):
    """A typo burns nothing: the corrected rerun is a new deployment that completes."""
    inv = inventory(tmp_path, sim, None)
    bad = run_playbook(CANARY, tmp_path, inventory=inv, timeout=120,
                       extra_vars=rollout_vars(tmp_path, rollout_healthy_deadline="nan", rollout_deployment_id="typo-1"))
    assert bad.rc != 0
    good = run_playbook(CANARY, tmp_path, inventory=inv, timeout=240, report_path=tmp_path / "report.json",
                        extra_vars=rollout_vars(tmp_path, rollout_deployment_id="typo-1", rollout_target_version="2.0.1"))
    assert good.rc == 0, good.output[-3000:]
    assert "already" not in good.output
    assert good.report()["status"] == "completed"
    assert {a["result"] for a in good.report()["agents"]} == {"updated"}


UNKNOWN_TYPO = ("rollout_sucess_threshold: unknown variable (did you mean rollout_success_threshold?); "
                "list your own variables with this prefix in rollout_extra_vars")


@pytest.fixture(scope="module")
def ciris_sim(tmp_path_factory):
    """Agents that answer like real CIRIS agents (they act on a shutdown request)."""
    with FleetSim(config=fleet(3, consent="ciris"), workdir=tmp_path_factory.mktemp("ciris-sim")) as s:
        yield s


def test_a_misspelled_variable_is_one_error_and_nobody_is_asked(ciris_sim, tmp_path):
    """Issue 23: a typo in a variable's name used to be ignored (the whole fleet rolled with the default)."""
    before = ciris_sim.log()
    seq = before[-1]["seq"] if before else 0
    res = run_playbook(CANARY, tmp_path, inventory=inventory(tmp_path, ciris_sim, None), timeout=120,
                       extra_vars=rollout_vars(tmp_path, rollout_sucess_threshold=0.9))
    assert res.rc != 0, res.output[-3000:]
    assert "Traceback" not in res.output
    assert error_lines(res.output) == [UNKNOWN_TYPO], res.output[-3000:]
    # the validator is the first task: no shutdown request, not even a health probe; nothing recorded
    assert ciris_sim.log(since=seq, path=SHUTDOWN) == []
    assert ciris_sim.log(since=seq) == []
    assert deployments(tmp_path / "state.db") == []


def test_your_own_variable_listed_in_rollout_extra_vars_rolls_out(ciris_sim, tmp_path):
    """The escape hatch: a variable of the user's own with the collection's prefix, listed, is accepted."""
    extra = rollout_vars(tmp_path, rollout_change_ticket="CHG-42", rollout_extra_vars=["rollout_change_*"],
                         rollout_target_version="2.0.3", rollout_deployment_id="own-var-1")
    res = run_playbook(CANARY, tmp_path, inventory=inventory(tmp_path, ciris_sim, None), timeout=240,
                       extra_vars=extra, report_path=tmp_path / "report.json")
    assert res.rc == 0, res.output[-3000:]
    assert res.report()["status"] == "completed"
    assert {a["result"] for a in res.report()["agents"]} == {"updated"}
