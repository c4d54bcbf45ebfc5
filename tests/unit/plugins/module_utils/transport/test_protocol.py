from __future__ import annotations

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import (
    evaluate_health, map_shutdown_answer, parse_defer_until,
)

NOW = 1_800_000_000.0


@pytest.mark.parametrize("status,payload,decision", [
    (200, None, "pending"),  # observed consent: the decision shows in behaviour
    (202, {"data": {}}, "pending"),
    (200, {"data": {"status": "shutting down"}}, "pending"),
    (200, {"data": {"decision": "accept"}}, "accept"),
    (200, {"data": {"decision": "DEFER", "defer_until": 30}}, "defer"),
    (200, {"data": {"decision": "reject", "reason": "busy with a critical task"}}, "reject"),
    (200, {"data": {"decision": "maybe"}}, "reject"),
    (409, {"retry_after_ms": 1500}, "defer"),
    (409, None, "defer"),
    (401, {"detail": "bad token"}, "unauthorized"),
    (403, None, "unauthorized"),
    (404, None, "reject"),
    (500, {"detail": "boom"}, "reject"),
    (503, None, "reject"),
])
def test_answer_mapping_follows_the_protocol(status, payload, decision):
    assert map_shutdown_answer(status, payload, NOW)["decision"] == decision


def test_defer_until_iso_and_seconds_and_busy_retry():
    assert map_shutdown_answer(200, {"data": {"decision": "defer", "defer_until": 30}}, NOW)["defer_until"] == NOW + 30
    iso = map_shutdown_answer(200, {"data": {"decision": "defer", "defer_until": "2027-01-15T08:00:00Z"}}, NOW)
    assert iso["defer_until"] == parse_defer_until("2027-01-15T08:00:00+00:00", NOW)
    assert map_shutdown_answer(409, {"retry_after_ms": 1500}, NOW)["defer_until"] == NOW + 1.5
    assert parse_defer_until("garbage", NOW) is None
    assert parse_defer_until(None, NOW) is None


def test_reason_is_kept_and_auth_error_says_what_to_do():
    out = map_shutdown_answer(200, {"data": {"decision": "reject", "reason": "mid-conversation"}}, NOW)
    assert out["reason"] == "mid-conversation"
    assert "token" in map_shutdown_answer(401, None, NOW)["reason"]


HEALTHY = {"data": {"status": "healthy", "version": "2.0.0", "cognitive_state": "work"}}


@pytest.mark.parametrize("status,payload,kwargs,healthy,cause", [
    (200, HEALTHY, {}, True, None),
    (200, HEALTHY, {"target_version": "2.0.0"}, True, None),
    (200, HEALTHY, {"target_version": "3.0.0"}, False, "version 2.0.0 (expected 3.0.0)"),
    (200, {"data": {"status": "degraded", "cognitive_state": "work"}}, {}, False, "status degraded"),
    (200, {"data": {"status": "healthy", "cognitive_state": "dream"}}, {}, False, "cognitive_state dream (expected work)"),
    (200, {"data": {"status": "healthy", "cognitive_state": "dream"}}, {"expected_states": ("work", "dream")}, True, None),
    (200, {"data": {"status": "healthy"}}, {}, False, "missing fields: cognitive_state"),
    (200, None, {}, False, "unparsable body"),
    (503, HEALTHY, {}, False, "HTTP 503"),
])
def test_health_evaluation(status, payload, kwargs, healthy, cause):
    ok, why, _info = evaluate_health(status, payload, **kwargs)
    assert ok is healthy and why == cause


@pytest.mark.parametrize("reported,target,match", [
    ("2.16.5", "2.16.5", True),
    ("2.16.5-stable", "2.16.5", True),        # a real CIRIS agent reports its release with the channel
    ("2.16.5-stable", "2.16.5-stable", True),
    ("2.16.5-rc1", "2.16.5", False),          # a pre-release is not the release
    ("2.16.50-stable", "2.16.5", False),
    ("2.16.5", "2.16.5-stable", False),
    (None, "2.16.5", False),
])
def test_version_matches_the_release_a_ciris_agent_reports(reported, target, match):
    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import version_matches

    assert version_matches(reported, target) is match
    body = {"data": {"status": "healthy", "cognitive_state": "work", "version": reported}}
    assert evaluate_health(200, body, target_version=target)[0] is match
