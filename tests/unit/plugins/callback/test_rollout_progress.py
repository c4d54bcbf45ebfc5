# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the rollout_progress callback: fake task results in, display lines out."""

from __future__ import annotations

import pytest
import yaml

from ansible import constants as C

from ansible_collections.agentfleet.rollout.plugins.callback import rollout_progress
from ansible_collections.agentfleet.rollout.plugins.callback.rollout_progress import (
    CallbackModule, format_deployment_lines, format_wave_line, scrub,
)

LOAD_NAME = "agentfleet.rollout.rollout_progress"
TOKEN = "s3cr3t-token-do-not-print-91f2"


class FakeDisplay:
    verbosity = 0

    def __init__(self):
        self.lines = []

    def display(self, msg, *args, **kwargs):
        self.lines.append(msg)

    def __getattr__(self, name):  # warning, vvv, ...: anything else the base class calls is not output
        return lambda *args, **kwargs: None


class FakeHost:
    def __init__(self, name):
        self.name = name

    def get_name(self):
        return self.name


class FakeTask:
    def __init__(self, name="a task"):
        self.name = name
        self.delegate_to = None

    def get_name(self):
        return self.name


class LegacyResult:
    """A task result as callbacks get it before ansible-core 2.19 (``_result``, ``_host``, ``_task``)."""

    def __init__(self, data, host="localhost"):
        self._result = data
        self._host = FakeHost(host)
        self._task = FakeTask()


class Result(LegacyResult):
    """A task result as callbacks get it from ansible-core 2.19 on (``result``, ``host``, ``task`` too)."""

    @property
    def result(self):
        return self._result

    @property
    def host(self):
        return self._host

    @property
    def task(self):
        return self._task


def make_callback(**options):
    defs = yaml.safe_load(rollout_progress.DOCUMENTATION)["options"]
    C.config.initialize_plugin_configuration_definitions("callback", LOAD_NAME, defs)
    display = FakeDisplay()
    cb = CallbackModule(display=display)
    cb._load_name = LOAD_NAME
    cb.set_options(direct=options or None)
    return cb, display


def wave(**kw):
    s = {"wave": 2, "wave_count": 4, "name": "early_adopters", "size": 20, "accepted": 14, "deferred": 1,
         "declined": 2, "rejected": 1, "unreachable": 0, "skipped": 0, "healthy": 13, "updated": 14,
         "elapsed": 45.23, "passed": True, "halt_reason": None}
    s.update(kw)
    return s


def deployment(dep_id="d-1", **kw):
    s = {"deployment_id": dep_id, "status": "completed", "target_version": "2.0.0",
         "totals": {"updated": 9, "deferred": 1, "rejected": 0},
         "report_path": "/tmp/reports/%s.json" % dep_id,
         "summary_table": ["deployment %s (canary -> 2.0.0): completed" % dep_id,
                           "wave cohort            size  updated",
                           "1    explorers            1        1",
                           "total: 10 agents: 9 updated, 1 deferred"]}
    s.update(kw)
    return s


def test_a_passed_wave_is_one_line():
    assert format_wave_line(wave()) == (
        "[agentfleet] wave 2/4 early_adopters: 20 agents | accepted 14, declined 2, deferred 1, rejected 1, "
        "unreachable 0 | healthy 13/14 | 45.2s | passed")


def test_a_failed_wave_says_why_on_the_same_line():
    line = format_wave_line(wave(passed=False, healthy=3, halt_reason="health gate failed: 3/14 stable\nagent  cause\nx  y"))
    assert line.endswith("| healthy 3/14 | 45.2s | FAILED: health gate failed: 3/14 stable")
    assert "\n" not in line
    assert format_wave_line(wave(passed=False, halt_reason=None)).endswith("| FAILED")


@pytest.mark.parametrize("summary, expected", [
    ({}, "[agentfleet] wave ?/?: 0 agents | accepted 0, declined 0, deferred 0, rejected 0, unreachable 0 "
         "| healthy 0/0 | ?s | result unknown"),
    ({"wave": 1, "name": "explorers", "accepted": "3", "healthy": 2.0, "elapsed": "1.26", "passed": "true"},
     "[agentfleet] wave 1/? explorers: 0 agents | accepted 3, declined 0, deferred 0, rejected 0, unreachable 0 "
     "| healthy 2/3 | 1.3s | passed"),
    ({"wave": "x", "wave_count": None, "size": "many", "elapsed": None, "halt_reason": "deadline reached"},
     "[agentfleet] wave ?/?: 0 agents | accepted 0, declined 0, deferred 0, rejected 0, unreachable 0 "
     "| healthy 0/0 | ?s | FAILED: deadline reached"),
])
def test_missing_or_odd_keys_do_not_crash(summary, expected):
    assert format_wave_line(summary) == expected


def test_skipped_is_shown_when_not_zero_and_healthy_counts_against_accepted_without_updated():
    line = format_wave_line(wave(skipped=3, updated=None, accepted=5, healthy=5))
    assert "unreachable 0, skipped 3 |" in line and "| healthy 5/5 |" in line


def test_a_bearer_token_in_a_text_is_masked():
    line = format_wave_line(wave(passed=False, halt_reason="HTTP 401 for Authorization: Bearer %s" % TOKEN))
    assert TOKEN not in line and "Bearer ********" in line
    assert scrub("bearer\t%s, more" % TOKEN) == "bearer\t********, more"
    lines = format_deployment_lines(deployment(summary_table=["sent Bearer %s" % TOKEN]))
    assert all(TOKEN not in x for x in lines)


def test_waves_print_as_they_come_and_each_only_once():
    cb, display = make_callback()
    first = {"changed": True, "rollout_wave_summary": wave(wave=1, name="explorers", size=1), "deployment_id": "d-1"}
    cb.v2_runner_on_ok(Result(first, host="agent-000"))
    cb.v2_runner_on_ok(Result(first, host="agent-001"))  # the same run_once result again
    cb.v2_runner_on_ok(Result({"changed": False, "msg": "no summary here"}))
    cb.v2_runner_on_failed(LegacyResult({"failed": True, "msg": "boom", "deployment_id": "d-1",
                                         "rollout_wave_summary": wave(passed=False, halt_reason="gate failed")}))
    assert display.lines == [
        "[agentfleet] wave 1/4 explorers: 1 agent | accepted 14, declined 2, deferred 1, rejected 1, unreachable 0 "
        "| healthy 13/14 | 45.2s | passed",
        "[agentfleet] wave 2/4 early_adopters: 20 agents | accepted 14, declined 2, deferred 1, rejected 1, "
        "unreachable 0 | healthy 13/14 | 45.2s | FAILED: gate failed",
    ]


def test_the_same_wave_of_another_deployment_is_printed():
    cb, display = make_callback()
    cb.v2_runner_on_ok(Result({"rollout_wave_summary": wave(wave=1, deployment_id="d-1")}))
    cb.v2_runner_on_ok(Result({"rollout_wave_summary": wave(wave=1, deployment_id="d-2")}))
    cb.v2_runner_on_ok(Result({"rollout_wave_summary": wave(wave=1), "deployment_id": "d-2"}))
    assert len(display.lines) == 2


def test_waves_without_a_deployment_id_start_afresh_after_a_deployment_ended():
    cb, display = make_callback()
    cb.v2_runner_on_ok(Result({"rollout_wave_summary": wave(wave=1)}))
    cb.v2_runner_on_ok(Result({"rollout_wave_summary": wave(wave=1)}))
    cb.v2_runner_on_ok(Result({"rollout_deployment_summary": deployment("d-1")}))
    cb.v2_runner_on_ok(Result({"rollout_wave_summary": wave(wave=1)}))
    assert len(display.lines) == 2


def test_loop_items_and_the_looped_result_print_each_wave_once():
    cb, display = make_callback()
    items = [{"rollout_wave_summary": wave(wave=i, name="w%d" % i), "item": i} for i in (1, 2)]
    for item in items:
        cb.v2_runner_item_on_ok(Result(item))
    cb.v2_runner_on_ok(Result({"results": items + [{"skipped": True}], "changed": True}))
    assert [line.split(":")[0] for line in display.lines] == ["[agentfleet] wave 1/4 w1", "[agentfleet] wave 2/4 w2"]


def test_a_wave_summary_that_is_not_a_dict_is_ignored():
    cb, display = make_callback()
    cb.v2_runner_on_ok(Result({"rollout_wave_summary": "wave 1 passed", "rollout_deployment_summary": ["x"]}))
    cb.v2_runner_on_ok(Result(None))
    cb.v2_playbook_on_stats(None)
    assert display.lines == []


def test_deployments_are_summed_up_at_the_end_once_each_in_order():
    cb, display = make_callback()
    cb.v2_runner_on_ok(Result({"rollout_deployment_summary": deployment("d-2")}))
    cb.v2_runner_on_failed(Result({"failed": True, "rollout_deployment_summary": deployment("d-1", status="failed")}))
    cb.v2_runner_on_ok(Result({"rollout_deployment_summary": deployment("d-2")}, host="other"))
    assert display.lines == []  # nothing before the recap
    cb.v2_playbook_on_stats(None)
    assert display.lines == [
        "[agentfleet] deployment d-2 (canary -> 2.0.0): completed",
        "[agentfleet] wave cohort            size  updated",
        "[agentfleet] 1    explorers            1        1",
        "[agentfleet] total: 10 agents: 9 updated, 1 deferred",
        "[agentfleet] report: /tmp/reports/d-2.json",
        "[agentfleet] deployment d-1 (canary -> 2.0.0): completed",
        "[agentfleet] wave cohort            size  updated",
        "[agentfleet] 1    explorers            1        1",
        "[agentfleet] total: 10 agents: 9 updated, 1 deferred",
        "[agentfleet] report: /tmp/reports/d-1.json",
    ]
    cb.v2_playbook_on_stats(None)
    assert len(display.lines) == 10


def test_show_table_false_prints_one_line_per_deployment():
    cb, display = make_callback(show_table=False)
    cb.v2_runner_on_ok(Result({"rollout_deployment_summary": deployment("d-1", status="failed")}))
    cb.v2_runner_on_ok(Result({"rollout_deployment_summary": {"totals": {"updated": "x"}}}))
    cb.v2_playbook_on_stats(None)
    assert display.lines == [
        "[agentfleet] deployment d-1: failed, target 2.0.0 | updated 9, deferred 1, rejected 0",
        "[agentfleet] report: /tmp/reports/d-1.json",
        "[agentfleet] deployment ?: status unknown | updated 0",
    ]


def test_a_deployment_without_a_table_gets_its_one_line_even_with_show_table():
    assert format_deployment_lines({"deployment_id": "d", "status": "completed", "summary_table": []}) == [
        "[agentfleet] deployment d: completed"]


def test_output_none_prints_nothing():
    cb, display = make_callback(output="none")
    cb.v2_runner_on_ok(Result({"rollout_wave_summary": wave(), "rollout_deployment_summary": deployment()}))
    cb.v2_playbook_on_stats(None)
    assert display.lines == []


def test_options_have_the_documented_defaults():
    cb, display = make_callback()
    assert cb.get_option("show_table") is True and cb.get_option("output") == "stdout"
    assert CallbackModule.CALLBACK_TYPE == "aggregate" and CallbackModule.CALLBACK_NEEDS_ENABLED is True
