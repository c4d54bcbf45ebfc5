# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 12 #2b and #6 through the real canary playbook: a token that cannot be sent in a header, and a
token bound for plain http:// on another machine, are each one error naming the variable, before anyone
is asked and before a deployment is recorded; the token's value is printed nowhere."""

from __future__ import annotations

import json

import pytest

from conftest import ansible_env, run_playbook
from faultserver import FaultServer
from test_fault_table import rollout_vars

TOKEN = "transport-error-token-41c9"


def inventory(work, hosts):
    inv = {"all": {"vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
                   "children": {"agents": {"hosts": hosts}}}}
    path = work / "inventory.json"
    path.write_text(json.dumps(inv))
    return path


def assert_nothing_recorded(work, res):
    assert res.rc != 0
    assert "Traceback" not in res.output
    assert not (work / "report.json").exists()
    # the plan stopped before the deployment was recorded: no state file, no audit line
    assert not (work / "state.db").exists() and not (work / "audit.jsonl").exists()


@pytest.mark.parametrize("bad", ["\n", "\r\nX-Injected: 1"])
def test_a_token_with_a_line_break_is_one_error_naming_rollout_token(tmp_path, bad):
    with FaultServer({"agent-0": "ok"}, TOKEN) as srv:
        inv = inventory(tmp_path, {"agent-0": {"agent_url": srv.url_of("agent-0")}})
        res = run_playbook("agentfleet.rollout.canary", tmp_path, inventory=inv, timeout=120,
                           env=ansible_env(tmp_path, AGENTFLEET_TOKEN=TOKEN + bad), extra_vars=rollout_vars(tmp_path))
        assert srv.log() == []  # nobody asked, not even probed
    assert_nothing_recorded(tmp_path, res)
    assert "rollout_token: contains a line break" in res.output
    assert TOKEN not in res.output


def test_a_token_over_plain_http_to_another_machine_is_refused_before_anyone_is_asked(tmp_path):
    # 192.0.2.0/24 is TEST-NET-1: never routed, and never contacted here
    with FaultServer({"local": "ok"}, TOKEN) as srv:
        inv = inventory(tmp_path, {"local": {"agent_url": srv.url_of("local")},
                                   "remote": {"agent_url": "http://192.0.2.10:8080/api/remote"}})
        res = run_playbook("agentfleet.rollout.canary", tmp_path, inventory=inv, timeout=120,
                           env=ansible_env(tmp_path, AGENTFLEET_TOKEN=TOKEN), extra_vars=rollout_vars(tmp_path))
        assert srv.log() == []
    assert_nothing_recorded(tmp_path, res)
    assert "rollout_allow_insecure_http: the token would be sent over plain http:// to http://192.0.2.10:8080" \
        in res.output
    assert "/a/local" not in res.output.split("rollout_allow_insecure_http:")[1].split("\n")[0]
    assert TOKEN not in res.output
