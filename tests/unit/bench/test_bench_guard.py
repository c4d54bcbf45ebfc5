# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bench/check.py --guard (make bench-guard, a step of make test): the regression limits pass today's numbers
and fail issue 20's regression (and a failed run), whatever the bars say."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "check.py"
spec = importlib.util.spec_from_file_location("bench_check", SCRIPT)
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)  # it puts bench/ on sys.path for its own run and wave_call


def numbers(overhead, floor, wave_ms, eff, size=1000):
    return {"overhead_ms": overhead, "floor_ms": floor, "wave_calls_s": None if wave_ms is None else wave_ms * size / 1000.0,
            "cp_efficiency": eff}


def verdicts(nums, ok=True, cp_ok=True):
    rows = check.guard_rows({"ok": ok, "size": 1000}, {"ok": cp_ok}, nums)
    return [r["met"] for r in rows]


def test_todays_numbers_are_within_the_limits_though_the_bars_are_missed():
    assert verdicts(numbers(15.7, 8.7, 3.4, 0.91)) == [True, True, True]


def test_issue_20s_regression_exceeds_every_limit():
    # 31.5 ms per agent over a 9.5 ms floor, 17 s of wave calls for 1,000 agents, efficiency 0.60
    assert verdicts(numbers(31.5, 9.5, 17.0, 0.60)) == [False, False, False]


def test_a_failed_run_or_a_missing_timer_is_never_within():
    assert verdicts(numbers(10.0, 8.7, 1.0, 0.95), ok=False) == [False, True, True]
    assert verdicts(numbers(10.0, 8.7, 1.0, 0.95), cp_ok=False) == [True, True, False]
    assert verdicts(numbers(10.0, 8.7, None, 0.95)) == [True, False, True]


def test_the_limits_are_looser_than_the_bars_not_a_replacement():
    assert check.GUARD_OVER_FLOOR_MS > check.OVER_FLOOR_MS
    assert check.GUARD_WAVE_CALL_MS > check.WAVE_CALL_MS
    assert check.GUARD_CP_EFFICIENCY < check.CP_EFFICIENCY


def tasks_numbers(above):
    return dict(numbers(15.7, 8.7, 3.4, 0.91), tasks_above_s=above)


def test_the_tasks_driver_limit_catches_issue_20s_22_seconds_and_a_failed_run():
    def tasks_verdict(above, ok=True):
        rows = check.guard_rows({"ok": True, "size": 1000}, {"ok": True}, tasks_numbers(above), {"ok": ok})
        assert len(rows) == 4
        return rows[3]["met"]
    assert tasks_verdict(13.4) is True
    assert tasks_verdict(22.0) is False
    assert tasks_verdict(13.4, ok=False) is False


def run_of(wall):
    return {"wall_s": wall}


def test_bars_judge_the_fixed_costs_from_the_timeline_and_the_tasks_run():
    c = {"ok": True, "empty": run_of(0.8), "floor": run_of(8.3), "canary": {"wall_s": 14.8, "timer": None}}
    waves = [{"agents": 20, "before_first_ask_s": 1.03, "last_up_to_last_probe_s": 1.10},   # wave 1: start-up, not judged
             {"agents": 60, "before_first_ask_s": 0.01, "last_up_to_last_probe_s": 1.62},
             {"agents": 80, "before_first_ask_s": 0.35, "last_up_to_last_probe_s": 1.07},
             {"after_last_probe_s": 0.57}]
    cp = {"ok": True, "empty": run_of(0.6), "canary": run_of(18.1), "breakdown": waves, "started_to_probe_s": 0.12}
    tk = {"ok": True, "empty": run_of(0.4), "canary": run_of(10.7), "alone": run_of(5.5),
          "stopped_to_update_s": 0.32, "started_to_probe_s": None}

    class Opts:
        size, cp_size = 1000, 200
    rows, nums = check.bars(c, cp, Opts, tk)

    def met(prefix):
        return [r["met"] for r in rows if r["what"].startswith(prefix)][0]
    assert nums["stable_to_next_ask_s"] == 0.35          # waves 2-4 only
    assert abs(nums["gate_notice_s"] - 0.62) < 1e-9      # the longest, minus the stable window
    assert nums["tasks_above_s"] == 10.7 - 0.4
    assert met("critical path: last agent stable") is False      # 0.35 > 0.3
    assert met("critical path: agent started") is True
    assert met("critical path: the gate notices") is False       # 0.62 > 0.5
    assert met("tasks driver: agent stopped") is False           # 0.32 > 0.3
    assert met("tasks driver: agent started") is False           # not measured is never met
    tasks_row = [r for r in rows if r["what"].startswith("tasks driver, 20 agents")][0]
    assert tasks_row["met"] is False                      # 10.3 s > 10 s


def test_the_scale_rows_judge_overhead_over_the_floor_and_the_controllers_memory():
    def none_run(canary, rss, ok=True):
        return {"kind": "none", "size": 10000, "ok": ok, "empty": run_of(14.0), "floor": run_of(314.0),
                "canary": {"wall_s": canary, "controller_rss_peak_mb": rss}}
    over, mem = check.scale_rows([none_run(330.0, 309.0)])   # 31.6 ms over a 30 ms floor
    assert over["met"] is True and mem["met"] is True
    over, mem = check.scale_rows([none_run(503.0, 1100.0)])
    assert over["met"] is False and mem["met"] is False
    over, mem = check.scale_rows([none_run(330.0, 309.0, ok=False)])
    assert over["met"] is False and mem["met"] is False
    tasks = dict(none_run(165.0, 124.0), kind="tasks", size=1000)
    assert check.scale_rows([tasks])[0]["met"] is None     # measured, no bar
