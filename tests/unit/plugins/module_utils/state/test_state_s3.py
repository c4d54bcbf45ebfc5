# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The s3:// state backend against a real moto server (HTTP on loopback): conditional writes, the fleet
lock's lease, takeover after the TTL, breaking a lock, reports and audit logs in S3."""

from __future__ import annotations

import itertools
import json
import threading
import time

import pytest

from helpers import Clock, free_port
from motoserver import ACCESS_KEY, SECRET_KEY, MotoServer

from ansible_collections.agentfleet.rollout.plugins.module_utils import _s3_lock
from ansible_collections.agentfleet.rollout.plugins.module_utils import _s3_objects
from ansible_collections.agentfleet.rollout.plugins.module_utils import _state_s3
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import append_audit, write_report
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import LockedError, StaleRunError, StateError
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import break_lock, open_store
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import parse_state_url, state_exists

PLAN = [{"index": 1, "name": "explorers", "size": 2,
         "members": [{"name": "a", "agent_url": "http://x"}, {"name": "b", "agent_url": "http://y"}]}]
_buckets = itertools.count()


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    with MotoServer(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def url(moto, monkeypatch):
    for key, value in moto.env().items():
        monkeypatch.setenv(key, value)
    for module in (_s3_lock, _s3_objects, _state_s3):
        monkeypatch.setattr(module, "backoff", lambda attempt: None)
    return "s3://%s/fleets/prod" % moto.bucket("state-%d" % next(_buckets))


def _open(url, run, clock=None, ttl=30):
    return open_store(url, run_id=run, lock_ttl=ttl, clock=clock or Clock(1000.0))


def _start(store, dep="d1", fleet="agents", version="2.0.0"):
    return store.create_or_resume(dep, fleet, "canary", version, PLAN, {})


@pytest.mark.parametrize("given, expected", [
    ("/var/lib/state.db", ("sqlite", "/var/lib/state.db")),
    ("sqlite:///var/lib/state.db", ("sqlite", "/var/lib/state.db")),
    ("s3://bucket/some/prefix", ("s3", "s3://bucket/some/prefix")),
    ("s3://bucket", ("s3", "s3://bucket")),
])
def test_state_urls(given, expected):
    assert parse_state_url(given) == expected


@pytest.mark.parametrize("given, words", [
    ("gs://bucket/x", "unknown scheme 'gs'"),
    ("sqlite://relative.db", "three slashes"),
    ("", "state_path"),
])
def test_bad_state_urls_name_the_field(given, words):
    with pytest.raises(ValueError, match=words):
        parse_state_url(given)


@pytest.mark.parametrize("given, words", [
    ("s3:///prefix", "no bucket"),
    ("s3://bucket/p?secret_key=abc", "unknown option 'secret_key'"),
    ("s3://bucket/p?lock_ttl=soon", "lock_ttl"),
    ("s3://bucket/p?lock_ttl=0.5", "too short"),
])
def test_bad_s3_urls_are_refused_before_any_request(given, words):
    with pytest.raises(ValueError, match=words) as err:
        open_store(given)
    assert "abc" not in str(err.value)


def test_the_state_lives_in_s3_and_a_second_controller_sees_it(url, moto):
    assert not state_exists(url)
    with _open(url, "run-a") as store:
        dep, mode = _start(store)
        assert mode == "new" and dep["generation"] == 1
        store.mark_asked("d1", ["a"])
    assert state_exists(url)
    names = [o["Key"] for o in moto.client().list_objects_v2(Bucket=url.split("/")[2])["Contents"]]
    assert sorted(names) == ["fleets/prod/locks/agents.json", "fleets/prod/state.db"]
    with _open(url, "run-b") as other:
        assert [a["asked_count"] for a in other.agents("d1")] == [1, 0]


def test_one_active_deployment_per_fleet_across_controllers(url):
    with _open(url, "run-a") as first, _open(url, "run-b") as second:
        _start(first)
        with pytest.raises(LockedError, match="another rollout is active for fleet 'agents': deployment d1, run run-a"):
            _start(second, dep="d2", version="3.0.0")
        with pytest.raises(LockedError, match="another rollout is active"):
            _start(second)
        # the refused run left the lock to its holder
        holder, dummy = first._lock("agents").read()
        assert holder["run"] == "run-a" and holder["deployment_id"] == "d1"


def test_concurrent_starts_exactly_one_wins(url):
    stores = [_open(url, "run-%d" % i) for i in range(4)]
    outcomes = [None] * len(stores)
    barrier = threading.Barrier(len(stores))

    def start(i):
        barrier.wait()
        try:
            outcomes[i] = _start(stores[i], dep="d%d" % i, version="2.%d.0" % i)[1]
        except LockedError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=start, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in stores:
        s.close()
    winners = [i for i, o in enumerate(outcomes) if o == "new"]
    assert len(winners) == 1 and all(isinstance(o, LockedError) for o in outcomes if o != "new"), outcomes
    with _open(url, "reader") as reader:
        assert [d["deployment_id"] for d in reader.list_deployments()] == ["d%d" % winners[0]]


def test_a_lost_upload_race_reruns_the_write_on_the_winners_state(url):
    with _open(url, "run-a") as a:
        _start(a)
    with _open(url, "run-a") as one, _open(url, "run-a") as two:
        # both read the same ETag; one writes first, the other's If-Match upload gets 412 and is redone
        one.event("d1", "from_one")
        etag_before = two._etag
        two.event("d1", "from_two")
        assert two._etag not in (etag_before, None)
    with _open(url, "reader") as reader:
        names = [e["event"] for e in reader.events("d1")]
        assert names[-2:] == ["from_one", "from_two"]


def test_an_upload_that_always_loses_is_a_clear_error(url, monkeypatch):
    with _open(url, "run-a") as store:
        _start(store)
        real_put = store.objects.put

        def refused(key, body, **kwargs):
            if key == store.db_key:
                raise _s3_objects.ConflictError("s3://x changed under this run (conditional PUT refused)")
            return real_put(key, body, **kwargs)

        monkeypatch.setattr(store.objects, "put", refused)
        with pytest.raises(StateError, match=r"changed by another controller during each of 8 attempts of event"):
            store.event("d1", "never")
    with _open(url, "reader") as reader:
        assert "never" not in [e["event"] for e in reader.events("d1")]


def test_a_crashed_holder_expires_after_the_ttl_and_the_next_run_resumes(url):
    clock = Clock(1000.0)
    holder = _open(url, "run-a", clock=clock, ttl=30)
    dep, dummy = _start(holder)
    holder.fence("d1", dep["generation"])
    holder._stop_renewing.set()  # the holder is SIGKILLed: nobody renews
    holder.mark_asked("d1", ["a"])
    later = Clock(1029.0)
    with _open(url, "run-b", clock=later, ttl=30) as rerun:
        with pytest.raises(LockedError, match=r"expires in 1 s unless renewed"):
            _start(rerun)
        later.now = 1031.0
        dep2, mode = _start(rerun)
        assert mode == "resumed" and dep2["generation"] == 2
        assert [a["asked_count"] for a in rerun.agents("d1")] == [1, 0]
        taken = [e for e in rerun.events("d1") if e["event"] == "lock_taken_over"]
        assert taken[0]["data"]["previous_run"] == "run-a"
    # the old holder, should it come back, writes nothing more and sends nothing more
    with pytest.raises(StaleRunError, match="resumed or taken over by a newer run"):
        holder.mark_asked("d1", ["b"])
    assert not holder._lock("agents").renew("d1")
    holder.close()


def test_the_running_rollout_renews_its_lease(url):
    clock = Clock(1000.0)
    with _open(url, "run-a", clock=clock, ttl=30) as store:
        dep, dummy = _start(store)
        store.fence("d1", dep["generation"])
        clock.now = 1020.0
        store.heartbeat("d1")
        holder, dummy = store._lock("agents").read()
        assert holder["expires_at"] == 1050.0 and holder["acquired_at"] == 1000.0
        store.check_fence()


def test_finishing_releases_the_lock_for_the_next_deployment(url):
    with _open(url, "run-a") as first:
        _start(first)
        first.set_status("d1", "completed")
        assert first._lock("agents").read() == (None, None)
    with _open(url, "run-b") as second:
        assert _start(second, dep="d2", version="3.0.0")[1] == "new"


def test_manual_stage_then_promote_from_another_controller(url):
    with _open(url, "run-a") as stager:
        assert stager.create_or_resume("d1", "agents", "manual", "2.0.0", PLAN, {}, stage_only=True)[1] == "staged"
        assert stager._lock("agents").read() == (None, None)
    with _open(url, "run-b") as promoter:
        dep, mode = _start(promoter)
        assert mode == "promoted" and dep["status"] == "running"


def test_breaking_a_lock_needs_a_reason_and_is_recorded(url):
    with pytest.raises(ValueError, match="reason"):
        break_lock(url, "agents", " ", "ops")
    holder = _open(url, "run-a")
    dep, dummy = _start(holder)
    holder.fence("d1", dep["generation"])
    out = break_lock(url, "agents", "controller VM deleted", "alice@laptop")
    assert out["broken"] and out["deployment_id"] == "d1" and out["holder"]["run"] == "run-a"
    # the holder, were it alive, finds its lease gone at its next renewal and stops
    holder.heartbeat("d1")
    with pytest.raises(StaleRunError, match="no longer held by this run"):
        holder.check_fence()
    with pytest.raises(StaleRunError, match="no longer held by this run"):
        holder.mark_asked("d1", ["a"])
    holder.close()
    with _open(url, "run-b") as rerun:
        broken = [e for e in rerun.events("d1") if e["event"] == "lock_broken"]
        assert broken[0]["data"]["reason"] == "controller VM deleted" and broken[0]["data"]["by"] == "alice@laptop"
        assert _start(rerun)[1] == "resumed"
    assert break_lock(url, "other-fleet", "nothing there", "ops")["broken"] is False


def test_breaking_a_sqlite_lease_fences_its_run(tmp_path):
    path = str(tmp_path / "state.db")
    with open_store(path) as store:
        dep, dummy = store.create_or_resume("d1", "agents", "canary", "2.0.0", PLAN, {}, owner_pid=1)
    out = break_lock("sqlite://" + path, "agents", "stuck", "ops")
    assert out["broken"] and out["deployment_id"] == "d1"
    with open_store(path) as store:
        assert store.get_deployment("d1")["generation"] == dep["generation"] + 1
        assert [e["data"]["reason"] for e in store.events("d1") if e["event"] == "lock_broken"] == ["stuck"]


def test_reports_and_audit_logs_go_to_s3(url, moto):
    bucket = url.split("/")[2]
    write_report("s3://%s/reports/d1.json" % bucket, {"deployment_id": "d1", "token": "tok-123"}, secrets=("tok-123",))
    append_audit("s3://%s/audit/agents.jsonl" % bucket, {"event": "one"})
    append_audit("s3://%s/audit/agents.jsonl" % bucket, [{"event": "two"}, {"event": "three"}])
    s3 = moto.client()
    report = json.loads(s3.get_object(Bucket=bucket, Key="reports/d1.json")["Body"].read())
    assert report["deployment_id"] == "d1" and "tok-123" not in json.dumps(report)
    lines = s3.get_object(Bucket=bucket, Key="audit/agents.jsonl")["Body"].read().decode().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["one", "two", "three"]


def test_errors_name_the_object_and_never_the_keys(url, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:%d" % free_port())
    with pytest.raises(StateError) as err:
        open_store("s3://nowhere/p", access_key=ACCESS_KEY, secret_key=SECRET_KEY, run_id="r")
    assert "s3://nowhere/p/state.db" in str(err.value)
    assert SECRET_KEY not in str(err.value) and ACCESS_KEY not in str(err.value)
    with pytest.raises(ValueError, match="access_key and secret_key go together"):
        open_store("s3://nowhere/p", access_key=ACCESS_KEY)


def test_a_missing_bucket_is_a_clear_error(url):
    with pytest.raises(StateError, match=r"GET s3://no-such-bucket-here/p/state.db failed: NoSuchBucket"):
        open_store("s3://no-such-bucket-here/p")


def test_the_lock_ttl_comes_from_the_argument_then_the_url_then_the_environment(url, monkeypatch):
    monkeypatch.setenv("AGENTFLEET_LOCK_TTL", "77")
    with open_store(url, run_id="r") as store:
        assert store.lock_ttl == 77.0
    with open_store(url + "?lock_ttl=42", run_id="r") as store:
        assert store.lock_ttl == 42.0
    with open_store(url + "?lock_ttl=42", run_id="r", lock_ttl=9) as store:
        assert store.lock_ttl == 9.0


def test_renewals_keep_the_ttl_the_lock_was_taken_with(url):
    clock = Clock(1000.0)
    with _open(url, "run-a", clock=clock, ttl=30) as planner:
        _start(planner)
    # a later task of the same run opens the store with the default TTL and renews
    with open_store(url, run_id="run-a", clock=clock) as wave:
        assert wave.lock_ttl == 600.0
        clock.now = 1010.0
        wave.fence("d1", 1)
        holder, dummy = wave._lock("agents").read()
        assert holder["ttl"] == 30.0 and holder["expires_at"] == 1040.0


WAVES = [{"index": 1, "name": "explorers", "members": [{"name": "a", "agent_url": "http://127.0.0.1:1/a"}]}]


def _deployment_params(url, **kw):
    from ansible_collections.agentfleet.rollout.plugins.module_utils import _argspecs

    out = {k: v.get("default") for k, v in _argspecs.DEPLOYMENT_SPEC.items()}
    out.update(state_path=url, deployment_id="d1", fleet_key="agents", target_version="2.0.0", waves=WAVES)
    out.update(kw)
    return out


def test_the_deployment_module_takes_the_lock_with_its_ttl_and_breaks_one_with_a_reason(url, moto):
    from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners

    bucket = url.split("/")[2]
    with _open(url, "crashed-job", clock=time.time, ttl=600) as crashed:
        _start(crashed)
    with pytest.raises(LockedError, match="another rollout is active"):
        _runners.run_deployment(_deployment_params(url))
    audit_url = "s3://%s/audit.jsonl" % bucket
    out = _runners.run_deployment(_deployment_params(url, lock_ttl=45, audit_path=audit_url,
                                                     break_lock_reason="AWX job 4711 deleted"))
    assert out["mode"] == "resumed"
    assert out["lock_broken"]["broken"] and out["lock_broken"]["holder"]["run"] == "crashed-job"
    assert "@" in out["lock_broken"]["by"]
    holder = json.loads(moto.client().get_object(Bucket=bucket, Key="fleets/prod/locks/agents.json")["Body"].read())
    assert holder["ttl"] == 45.0 and holder["run"] != "crashed-job"
    lines = [json.loads(line) for line in
             moto.client().get_object(Bucket=bucket, Key="audit.jsonl")["Body"].read().decode().splitlines()]
    assert lines[0]["event"] == "lock_broken" and lines[0]["reason"] == "AWX job 4711 deleted"
    with open_store(url, run_id="reader") as reader:
        assert [e["data"]["reason"] for e in reader.events("d1") if e["event"] == "lock_broken"] == \
            ["AWX job 4711 deleted"]


def test_a_state_written_by_an_older_collection_meanwhile_is_migrated_on_reload(url):
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import SCHEMA_VERSION

    with _open(url, "run-a") as mine, _open(url, "run-old") as old:
        _start(mine)
        with old._tx():
            old.db.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
        mine.event("d1", "after_the_old_writer")
    with _open(url, "reader") as reader:
        version = reader.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        assert int(version) == SCHEMA_VERSION
        assert reader.events("d1")[-1]["event"] == "after_the_old_writer"
