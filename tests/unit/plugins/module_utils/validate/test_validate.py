# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit: _validate, the one place every input is checked before anyone is asked."""

from __future__ import annotations

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._validate import InputError
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate import check_agents
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate import validate_inputs

SPEC = {"rollout_healthy_deadline": {"type": "float"}, "rollout_min_healthy_time": {"type": "float"},
        "rollout_max_workers": {"type": "int"}, "rollout_driver": {"type": "str", "choices": ["none", "tasks", "docker"]},
        "rollout_expected_states": {"type": "list", "elements": "str"}, "rollout_state_path": {"type": "str"},
        "rollout_update_tasks": {"type": "str"}, "rollout_token": {"type": "str", "no_log": True}}


def ok(tmp_path, **values):
    base = {"rollout_target_version": "2.0.0", "rollout_state_path": str(tmp_path / "state.db")}
    base.update(values)
    return base


@pytest.mark.parametrize("values, field", [
    ({"rollout_healthy_deadline": "nan"}, "rollout_healthy_deadline"),
    ({"rollout_healthy_deadline": float("inf")}, "rollout_healthy_deadline"),
    ({"rollout_healthy_deadline": 1e12}, "rollout_healthy_deadline"),
    ({"rollout_healthy_deadline": True}, "rollout_healthy_deadline"),
    ({"rollout_max_workers": 0}, "rollout_max_workers"),
    ({"rollout_expected_states": []}, "rollout_expected_states"),
    ({"rollout_min_healthy_time": 30, "rollout_healthy_deadline": 10}, "rollout_min_healthy_time"),
    ({"rollout_progress_deadline": 5, "rollout_healthy_deadline": 10}, "rollout_progress_deadline"),
    ({"rollout_canary": 0}, "rollout_canary"),
    ({"rollout_health_check": "ping"}, "rollout_health_check"),
    ({"rollout_driver": "tasks", "rollout_update_tasks": "nope.yml"}, "rollout_update_tasks"),
    ({"rollout_target_version": ""}, "rollout_target_version"),
    ({"rollout_notify_url": "hooks.example.org/secret"}, "rollout_notify_url"),
    ({"rollout_hooks": {"before_wave": "no-such-hook.yml"}}, "rollout_hooks.before_wave"),
    ({"rollout_hooks": {"before_waves": "hook.yml"}}, "rollout_hooks"),
    ({"rollout_notify_headers": {"Authorization": "Bearer a\nb"}}, "rollout_notify_headers"),
])
def test_bad_values_name_the_variable(tmp_path, values, field):
    with pytest.raises(InputError) as err:
        validate_inputs("rollout", ok(tmp_path, **values), spec=SPEC, base_dir=str(tmp_path))
    assert str(err.value).startswith(field + ":"), str(err.value)
    assert "\n" not in str(err.value)


def test_good_values_are_typed(tmp_path):
    out = validate_inputs("rollout", ok(tmp_path, rollout_healthy_deadline="30", rollout_max_workers="4",
                                        rollout_progress_deadline=0, rollout_canary="2"),
                          spec=SPEC, base_dir=str(tmp_path))
    assert out["rollout_healthy_deadline"] == 30.0 and out["rollout_max_workers"] == 4


def test_the_token_is_never_shown(tmp_path):
    with pytest.raises(InputError) as err:
        validate_inputs("rollout", ok(tmp_path, rollout_token="se\ncret"), spec=SPEC)
    assert "cret" not in str(err.value)


def test_the_notification_url_and_headers_are_never_shown(tmp_path):
    with pytest.raises(InputError) as err:
        validate_inputs("rollout", ok(tmp_path, rollout_notify_url="hooks.example.org/s3cret",
                                      rollout_notify_headers={"X-Key": "k3y\n"}), spec=SPEC)
    assert "s3cret" not in str(err.value) and "k3y" not in str(err.value)
    assert "rollout_notify_url" in str(err.value) and "rollout_notify_headers" in str(err.value)


def test_a_state_file_that_is_not_a_database(tmp_path):
    (tmp_path / "state.db").write_text("hello")
    with pytest.raises(InputError, match=r"rollout_state_path: .* \(not an SQLite database\)"):
        validate_inputs("rollout", ok(tmp_path), spec=SPEC)


@pytest.mark.parametrize("agents, words", [
    ([], "rollout_hosts: the group has no agents"),
    ([{"name": "a", "agent_url": "http://h:1"}, {"name": "b", "agent_url": "HTTP://h:1/"}], "agent_url: hosts share"),
    ([{"name": "a", "agent_url": "ftp://h"}], "agent_url of host a: must start with http"),
    ([{"name": "a", "agent_url": "http://h:70000"}], "agent_url of host a: is not a valid URL"),
    ([{"name": "a"}], "agent_url of host a: is missing"),
])
def test_agents(agents, words):
    assert any(e.startswith(words) for e in check_agents(agents)), check_agents(agents)


def test_distinct_agents_behind_one_proxy_are_fine():
    assert check_agents([{"name": "a", "agent_url": "https://p/api/a"}, {"name": "b", "agent_url": "https://p/api/b"}]) == []


@pytest.mark.parametrize("params, option", [
    ({"healthy_deadline": float("nan")}, "healthy_deadline"),
    ({"read_timeout": 1e9}, "read_timeout"),
    ({"max_workers": 0}, "max_workers"),
    ({"poll_interval": -1.0}, "poll_interval"),
    ({"expected_states": []}, "expected_states"),
])
def test_module_options_name_the_option(params, option):
    from ansible_collections.agentfleet.rollout.plugins.module_utils._validate import check_options

    with pytest.raises(InputError) as err:
        check_options(params)
    assert str(err.value).startswith(option + ":")
