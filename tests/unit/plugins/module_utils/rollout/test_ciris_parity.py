"""What docs/ciris.md says about setting our wave verdict to CIRISManager's "one stable agent"."""

from __future__ import annotations

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.ask import build_reason
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.verdict import judge_wave, wave_line_for_previous


@pytest.mark.parametrize("accepted", [1, 2, 7, 100, 1000])
def test_a_tiny_threshold_needs_exactly_one_stable_agent(accepted):
    assert judge_wave({"accepted": accepted, "healthy": 1}, 0.001) == (True, 1)
    assert judge_wave({"accepted": accepted, "healthy": 0}, 0.001) == (False, 1)


def test_beyond_one_over_the_threshold_it_needs_more():
    assert judge_wave({"accepted": 1001, "healthy": 1}, 0.001) == (False, 2)


def test_zero_needs_no_stable_agent_at_all():
    assert judge_wave({"accepted": 5, "healthy": 0}, 0.0) == (True, 0)


def test_a_wave_nobody_accepted_passes_whatever_the_threshold():
    # CIRISManager fails such a phase; the threshold cannot express that (docs/ciris.md)
    assert judge_wave({"accepted": 0, "healthy": 0, "deferred": 3}, 0.001) == (True, 0)


def test_the_default_is_the_documented_canary_config():
    assert judge_wave({"accepted": 5, "healthy": 4}, None) == (True, 4)
    assert judge_wave({"accepted": 5, "healthy": 3}, None) == (False, 4)


def test_the_notice_carries_the_peer_results():
    line = wave_line_for_previous({"name": "explorers", "healthy": 2, "updated": 2, "target_version": "2.0.0",
                                   "deferred": 1})
    assert line == "explorers: 2/2 healthy on 2.0.0 (1 deferred)"
    reason = build_reason("2.0.0", "deploy-agents-2.0.0", "Faster memory consolidation", "early_adopters", 2, 4,
                          [line])
    assert reason == (
        "Update to version 2.0.0 is available (deployment deploy-agents-2.0.0, canary rollout). "
        "Changes: Faster memory consolidation You are in the early_adopters group (wave 2 of 4). "
        "Earlier waves: explorers: 2/2 healthy on 2.0.0 (1 deferred). Accept to shut down gracefully so the new "
        "version can start; defer if you are busy; reject to decline.")
