"""Issue 21 item 5: ``rollout_notify_url`` gets one JSON POST per event of a deployment (started, each wave passed
or failed, finished) with a human ``text``; a receiver that is down or hangs is a warning and the rollout goes on;
no token, header value or webhook path is ever printed or sent in a payload."""

from __future__ import annotations

import json

import pytest

from fleetsim.testing import FleetSim
from helpers import Receiver, free_port
from userpath import TOKEN, fleet, records, run

TWO_WAVES = [{"name": "canary", "count": 1}, {"name": "rest", "rest": True}]
SECRET_PATH = "/hooks/T0001/B0001/s3cr3tw3bh00kpath"
SECRET_HEADER = "Bearer hook-secret-value"


def events(receiver):
    return [p.body["event"] for p in receiver.posts]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def test_events_of_a_canary_reach_the_receiver_with_text_counts_and_headers(tmp_path, receiver):
    with FleetSim(config=fleet(3), workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_cohorts=TWO_WAVES, rollout_notify_url=receiver.url + SECRET_PATH,
                  rollout_notify_headers={"Authorization": SECRET_HEADER}, token=TOKEN)
        assert res.rc == 0, res.output[-4000:]
    assert events(receiver) == ["deployment_started", "wave_passed", "wave_passed", "deployment_finished"], \
        receiver.posts
    first, canary, rest, end = (p.body for p in receiver.posts)
    assert all(p.path == SECRET_PATH and p.headers.get("Authorization") == SECRET_HEADER
               and p.headers.get("Content-Type") == "application/json" for p in receiver.posts)
    dep = first["deployment_id"]
    assert all(b["deployment_id"] == dep and b["target_version"] == "2.0.0" and b["strategy"] == "canary"
               and b["deployment_key"] == "agents" and b["text"] for b in (first, canary, rest, end))
    assert canary["wave"] == {"index": 1, "count": 2, "name": "canary"} and canary["counts"]["updated"] == 1
    assert rest["wave"]["name"] == "rest" and rest["counts"]["updated"] == 2
    assert end["status"] == "completed" and end["counts"]["updated"] == 3
    assert "completed" in end["text"] and dep in end["text"]
    everything = json.dumps(receiver.posts) + res.output
    assert TOKEN not in everything, "a token went into a notification or the output"
    assert SECRET_PATH not in res.output and SECRET_HEADER not in res.output


def test_a_failed_wave_is_told_with_its_reason(tmp_path, receiver):
    with FleetSim(config=fleet(3, overrides={"agent-000": {"unhealthy_after_update": True}}),
                  workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_cohorts=TWO_WAVES, rollout_notify_url=receiver.url + SECRET_PATH,
                  rollout_healthy_deadline=3, rollout_success_threshold=1.0, token=TOKEN)
        assert res.rc != 0, res.output[-4000:]
    assert events(receiver)[:2] == ["deployment_started", "wave_failed"], receiver.posts
    assert events(receiver)[-1] == "deployment_finished"
    failed = receiver.posts[1].body
    assert failed["wave"]["name"] == "canary" and failed["reason"], failed
    assert receiver.posts[-1].body["status"] == "failed"


@pytest.mark.parametrize("fault", ["down", "hangs", "http500"])
def test_a_failing_receiver_is_a_warning_and_the_rollout_completes(tmp_path, fault):
    if fault == "down":
        url = "http://127.0.0.1:%d%s" % (free_port(), SECRET_PATH)
        r = None
    else:
        r = Receiver(status=500, hang=fault == "hangs")
        url = r.url + SECRET_PATH
    try:
        with FleetSim(config=fleet(2), workdir=tmp_path / "sim") as sim:
            res = run(sim, tmp_path, rollout_cohorts=TWO_WAVES, rollout_notify_url=url, token=TOKEN)
            assert res.rc == 0, res.output[-4000:]
        assert records(tmp_path) == {1: "completed"}
        assert "not delivered" in res.output and "the rollout goes on" in res.output, res.output[-4000:]
        assert SECRET_PATH not in res.output
        if fault == "hangs":
            # the whole run's budget (5 s) is spent on the first events; later ones are not tried
            assert len(r.posts) <= 3, events(r)
        if fault == "http500":
            # each event tried up to three times
            assert 4 <= len(r.posts) <= 12
    finally:
        if r is not None:
            r.stop()
