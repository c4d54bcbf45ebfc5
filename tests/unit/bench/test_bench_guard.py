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
