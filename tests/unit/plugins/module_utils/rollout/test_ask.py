from __future__ import annotations

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.ask import build_reason, notify_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.errors import AuthenticationFailed
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import open_store


class FakeClient:
    """Answers from a script: name -> list of decision dicts (one per ask)."""

    def __init__(self, script, versions=None):
        self.script = script
        self.versions = versions or {}
        self.asked = []

    def probe(self, url, expected_states=None, target_version=None):
        name = url.rsplit("/", 1)[-1]
        return {"healthy": True, "cause": None, "info": {"version": self.versions.get(name, "1.0")}}

    def ask(self, url, body):
        name = url.rsplit("/", 1)[-1]
        self.asked.append((name, body["deployment_id"]))
        return dict(self.script[name].pop(0))

    def fan_out(self, fn, items):
        return [fn(i) for i in items]


def agents(*names):
    return [{"name": n, "agent_url": "http://h/" + n, "wave": 1, "cohort": "c"} for n in names]


def ans(decision, **kw):
    d = {"decision": decision, "reason": None, "defer_until": None, "decision_id": None, "http_status": 200}
    d.update(kw)
    return d


def test_final_answers_are_recorded_and_never_asked_again(tmp_path):
    client = FakeClient({"a": [ans("accept")], "b": [ans("reject", reason="no")], "c": [ans("unreachable")] * 2})
    with open_store(tmp_path / "s.db") as store:
        store.create_or_resume("d", "f", "canary", "2.0", [{"index": 1, "name": "c", "members": agents("a", "b", "c")}], {})
        first = notify_wave(client, agents("a", "b", "c"), "d", "2.0", "r", store=store)
        assert first["accepted"] == ["a"] and first["rejected"] == ["b"] and first["unreachable_agents"] == ["c"]
        assert [u["name"] for u in first["update_agents"]] == ["a"]
        second = notify_wave(client, agents("a", "b", "c"), "d", "2.0", "r", store=store)
        assert second["asked"] == ["c"]  # an unreachable agent gave no answer: asked again
        assert [asked[0] for asked in client.asked] == ["a", "b", "c", "c"]


def test_agents_already_on_target_are_skipped_without_asking():
    client = FakeClient({"a": [ans("accept")]}, versions={"b": "2.0"})
    out = notify_wave(client, agents("a", "b"), "d", "2.0", "r")
    assert out["skipped_agents"] == ["b"] and [asked[0] for asked in client.asked] == ["a"]


def test_defer_is_reasked_after_defer_until_inside_the_deadline():
    now = [100.0]
    client = FakeClient({"a": [ans("defer", defer_until=105.0), ans("accept")]})
    out = notify_wave(client, agents("a"), "d", "2.0", "r", reask_until=200.0, clock=lambda: now[0],
                      sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert out["accepted"] == ["a"] and now[0] == 105.0


def test_defer_beyond_the_deadline_is_reported_not_reasked():
    client = FakeClient({"a": [ans("defer", defer_until=500.0)]})
    out = notify_wave(client, agents("a"), "d", "2.0", "r", reask_until=200.0, clock=lambda: 100.0, sleep=None)
    assert out["deferred"] == ["a"] and len(client.asked) == 1


def test_auth_error_raises_and_check_mode_asks_nobody():
    client = FakeClient({"a": [ans("unauthorized")]})
    with pytest.raises(AuthenticationFailed, match="AGENTFLEET_TOKEN"):
        notify_wave(client, agents("a"), "d", "2.0", "r")
    quiet = FakeClient({})
    out = notify_wave(quiet, agents("a", "b"), "d", "2.0", "r", check_mode=True)
    assert out["would_ask"] == ["a", "b"] and quiet.asked == [] and out["changed"] is True


def test_reason_text_mentions_version_message_and_earlier_waves():
    text = build_reason("2.0.0", "d-1", "faster recall", "early_adopters", 2, 4, ["explorers: 2/2 healthy on 2.0.0"])
    assert "2.0.0" in text and "faster recall" in text and "explorers: 2/2 healthy on 2.0.0" in text
    assert "wave 2 of 4" in text
