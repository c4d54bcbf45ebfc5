# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 21 #1: a CIRIS agent's whole health in the gate. status critical held for fail_fast_after and
cognitive_state wakeup_error fail an agent at once (not at healthy_deadline); a blocking warning keeps it
unhealthy. The agents answer real health bodies, judged by _protocol.evaluate_health, on a fake clock."""

from __future__ import annotations

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._health import gate_agents
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import validate_gate_params
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DEFAULT_BLOCKING_WARNINGS
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import evaluate_health
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate import InputError
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate import check_options
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate import validate_inputs
from helpers import Clock

ADAPTERS = {"code": "adapters_failed_to_load", "severity": "error", "action_url": "/settings/adapters",
            "message": "Configured adapter(s) failed to start: discord (ConnectionError)"}
STRANDED = {"code": "shared_task_stranded", "severity": "error", "action_url": "/settings/tasks",
            "message": "1 shared task(s) unsettled for over 24h (oldest 17.0 days): SHUTDOWN_SHARED_20260731."}
OCCURRENCE = {"code": "occurrence_identity", "severity": "info", "action_url": None,
              "message": "occurrence_id=002 multi_occurrence=True"}


def body(status="healthy", state="work", warnings=(), version="2.0.0"):
    return {"data": {"status": status, "cognitive_state": state, "version": version, "warnings": list(warnings),
                     "initialization_complete": True}}


class Client:
    """probe() judges the health body ``script[url](now)`` the way the real client does."""

    def __init__(self, clock, script):
        self.clock, self.script, self.probes = clock, script, []

    def fan_out(self, fn, items):
        return [fn(i) for i in items]

    def probe(self, url, expected_states, target_version):
        self.probes.append((url, self.clock.now))
        healthy, cause, info = evaluate_health(200, self.script[url](self.clock.now), expected_states, target_version)
        return {"healthy": healthy, "cause": cause, "info": info, "reachable": True}


PARAMS = dict(min_healthy_time=2.0, healthy_deadline=300.0, poll_interval=1.0, success_threshold=1.0, grace=None)


def gate(script, **params):
    clock = Clock()
    client = Client(clock, script)
    agents = [{"name": n, "agent_url": n} for n in script]
    result = gate_agents(client, agents, dict(PARAMS, **params), target_version="2.0.0", clock=clock,
                         sleep=clock.sleep)
    return result, clock, client


def test_status_critical_held_for_fail_fast_after_fails_the_agent_long_before_the_deadline():
    result, clock, dummy = gate({"a": lambda now: body("critical", warnings=[ADAPTERS])})
    assert not result["passed"]
    assert result["failed_fast"] == {"a": "status critical for 10 s: adapters failed to load"}
    assert result["unstable"]["a"] == "status critical for 10 s: adapters failed to load"
    assert result["agents"]["a"]["failed_fast"] is True
    assert 10.0 <= clock.now < 13.0
    assert result["reason"].startswith("failed fast: 1 of 1 agents")
    assert any("status critical for 10 s: adapters failed to load" in line for line in result["table"])


def test_a_short_critical_spell_is_not_fatal():
    # critical during its first 5 s (less than fail_fast_after), then healthy: it passes
    result, dummy, dummy2 = gate({"a": lambda now: body("critical" if now < 5 else "healthy")})
    assert result["passed"] and result["failed_fast"] == {}


def test_fail_fast_after_is_the_users():
    result, clock, dummy = gate({"a": lambda now: body("critical")}, fail_fast_after=3.0)
    assert result["failed_fast"] == {"a": "status critical for 3 s: no warning reported"}
    assert 3.0 <= clock.now < 6.0


def test_wakeup_error_fails_on_the_first_probe_that_reports_it_in_either_health_check():
    for health_check in ("checks", "agent_states"):
        # CIRIS reports the state in capitals (WAKEUP_ERROR)
        result, clock, client = gate({"a": lambda now: body("healthy", "WAKEUP_ERROR")}, health_check=health_check)
        assert result["failed_fast"]["a"].startswith("cognitive_state wakeup_error")
        assert not result["passed"] and len(client.probes) == 1 and clock.now < 1.0


def test_critical_is_not_looked_at_with_agent_states():
    result, clock, dummy = gate({"a": lambda now: body("critical")}, health_check="agent_states")
    assert result["passed"] and result["failed_fast"] == {}


def test_the_others_are_still_watched_while_the_threshold_can_be_met():
    script = {"bad": lambda now: body("healthy", "wakeup_error"), "good": lambda now: body(),
              "slow": lambda now: body("initializing", "wakeup") if now < 20 else body()}
    result, clock, dummy = gate(script, success_threshold=0.6)
    assert result["passed"] and sorted(result["stable"]) == ["good", "slow"]
    assert list(result["failed_fast"]) == ["bad"] and clock.now >= 20


def test_the_gate_ends_once_too_many_failed_for_the_threshold():
    script = {"bad": lambda now: body("healthy", "wakeup_error"), "slow": lambda now: body("initializing", "wakeup")}
    result, clock, dummy = gate(script, success_threshold=1.0)
    assert not result["passed"] and clock.now < 1.0
    assert result["unstable"]["slow"].startswith("status initializing")


def test_a_blocking_warning_keeps_an_agent_unhealthy_until_it_clears():
    result, clock, dummy = gate({"a": lambda now: body(warnings=[STRANDED] if now < 30 else [])})
    assert result["passed"] and clock.now >= 30
    result, clock, dummy = gate({"a": lambda now: body(warnings=[STRANDED])}, healthy_deadline=20.0)
    assert not result["passed"] and result["failed_fast"] == {}
    assert result["unstable"]["a"] == "warning shared_task_stranded: " + STRANDED["message"]


def test_warnings_not_listed_do_not_block():
    # occurrence_identity is a state report of every multi-occurrence agent: not blocking by default
    assert "occurrence_identity" not in DEFAULT_BLOCKING_WARNINGS
    result, dummy, dummy2 = gate({"a": lambda now: body(warnings=[OCCURRENCE])})
    assert result["passed"]
    result, dummy, dummy2 = gate({"a": lambda now: body(warnings=[STRANDED])}, blocking_warnings=[])
    assert result["passed"]
    result, dummy, dummy2 = gate({"a": lambda now: body(warnings=[OCCURRENCE])}, blocking_warnings=["occurrence_identity"],
                                 healthy_deadline=10.0)
    assert result["unstable"]["a"] == "warning occurrence_identity: occurrence_id=002 multi_occurrence=True"


def test_a_blocking_warning_blocks_with_agent_states_too():
    result, dummy, dummy2 = gate({"a": lambda now: body("degraded", warnings=["adapters_config_stale"])},
                                 health_check="agent_states", healthy_deadline=10.0)
    assert not result["passed"] and result["unstable"]["a"] == "warning adapters_config_stale"


def test_evaluate_health_keeps_warnings_and_judges_blocking_ones():
    healthy, cause, info = evaluate_health(200, body(warnings=[ADAPTERS, "bare_code", 7]), blocking_warnings=())
    assert healthy and [w["code"] for w in info["warnings"]] == ["adapters_failed_to_load", "bare_code"]
    healthy, cause, info = evaluate_health(200, body(warnings=[ADAPTERS]), blocking_warnings=DEFAULT_BLOCKING_WARNINGS)
    assert not healthy and cause == "warning adapters_failed_to_load: " + ADAPTERS["message"]


def test_bad_values_are_named():
    with pytest.raises(ValueError, match="fail_fast_after"):
        validate_gate_params(dict(PARAMS, fail_fast_after=-1.0))
    with pytest.raises(InputError, match="blocking_warnings: 'no spaces allowed'"):
        check_options({"blocking_warnings": ["no spaces allowed"]})
    with pytest.raises(InputError, match="fail_fast_after"):
        check_options({"fail_fast_after": -2.0})
    with pytest.raises(InputError) as err:
        validate_inputs("rollout", {"rollout_target_version": "2.0.0", "rollout_fail_fast_after": -1,
                                    "rollout_blocking_warnings": ["adapters failed"]})
    assert "rollout_fail_fast_after" in str(err.value) and "rollout_blocking_warnings" in str(err.value)
    validate_inputs("rollout", {"rollout_target_version": "2.0.0", "rollout_fail_fast_after": 0,
                                "rollout_blocking_warnings": []})
