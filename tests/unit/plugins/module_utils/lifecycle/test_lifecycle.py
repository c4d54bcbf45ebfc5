"""Deployment records (schema 3 and its migration), the lifecycle engine and the CLI, on real SQLite state files."""

from __future__ import annotations

import json
import sqlite3

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils import _cli
from ansible_collections.agentfleet.rollout.plugins.module_utils import _lifecycle as lifecycle
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import open_store

PLAN = [{"index": 1, "name": "explorers", "size": 1, "members": [{"name": "a", "agent_url": "http://x"}]},
        {"index": 2, "name": "rest", "size": 1, "members": [{"name": "b", "agent_url": "http://y"}]}]
DEAD_PID = 999999


def deploy(store, dep_id, target, status="completed", key="fleet", **record):
    store.create_or_resume(dep_id, "fleet", "canary", target, PLAN, {}, owner_pid=DEAD_PID,
                           record=dict(record, deployment_key=key))
    if status:
        store.set_status(dep_id, status)
    return store.get_deployment(dep_id)


def test_a_schema_2_state_file_gets_versions_per_key_in_creation_order(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(str(path))
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
        INSERT INTO meta VALUES ('schema_version', '2');
        CREATE TABLE deployments (deployment_id TEXT PRIMARY KEY, fleet_key TEXT NOT NULL, strategy TEXT NOT NULL,
            target_version TEXT, status TEXT NOT NULL, plan TEXT NOT NULL, params TEXT NOT NULL,
            created_at REAL NOT NULL, started_at REAL, finished_at REAL, updated_at REAL NOT NULL,
            owner_pid INTEGER, owner_host TEXT, heartbeat REAL, message TEXT, generation INTEGER NOT NULL DEFAULT 0);
        INSERT INTO deployments VALUES ('b', 'prod', 'canary', '2.0', 'completed', '[]', '{}', 2, 2, 3, 3,
            NULL, NULL, NULL, NULL, 1);
        INSERT INTO deployments VALUES ('a', 'prod', 'canary', '1.0', 'completed', '[]', '{}', 1, 1, 2, 2,
            NULL, NULL, NULL, NULL, 1);
        INSERT INTO deployments VALUES ('s', 'prod', 'shutdown', '', 'completed', '[]', '{}', 3, 3, 4, 4,
            NULL, NULL, NULL, NULL, 1);
        INSERT INTO deployments VALUES ('c', 'staging', 'canary', '2.0', 'failed', '[]', '{}', 4, 4, 5, 5,
            NULL, NULL, NULL, NULL, 1);
    """)
    db.close()
    with open_store(path) as s:
        assert [(d["deployment_id"], d["version"]) for d in s.history("prod")] == [("b", 2), ("a", 1)]
        assert s.get_deployment("s")["version"] is None  # a shutdown changes no version
        assert s.get_deployment("c")["deployment_key"] == "staging" and s.get_deployment("c")["version"] == 1
        # the next deployment of the key gets the next version; its source is the last completed target
        dep = deploy(s, "d", "3.0", status=None, key="prod")
        assert dep["version"] == 3 and dep["source_version"] == "2.0"
        assert s.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "3"


def test_versions_only_grow_and_the_rollback_target_is_the_last_completed(tmp_path):
    with open_store(tmp_path / "s.db") as s:
        deploy(s, "d1", "2.0")
        deploy(s, "d2", "3.0", status="failed")
        deploy(s, "d3", "4.0")
        assert [d["version"] for d in s.history("fleet")] == [3, 2, 1]
        assert s.rollback_target("fleet", before=3)["version"] == 1  # version 2 failed
        rec = lifecycle.record(s, s.get_deployment("d3"))
        assert rec["rollback_target"] == {"version": 1, "target_version": "2.0"}
        assert rec["source_version"] == "2.0"
        with pytest.raises(lifecycle.LifecycleError, match="version 2 of 'fleet' is failed"):
            lifecycle.rollback_source(s, "fleet", 2)
        with pytest.raises(lifecycle.LifecycleError, match=r"no version 7 \(versions: 1, 2, 3\)"):
            lifecycle.rollback_source(s, "fleet", 7)
        assert lifecycle.rollback_source(s, "fleet")["version"] == 1
        assert lifecycle.rollback_id(s, "fleet", s.version("fleet", 1)) == "rollback-fleet-v4-to-v1"


def test_pause_lift_and_fail(tmp_path):
    audit = str(tmp_path / "audit.jsonl")
    with open_store(tmp_path / "s.db") as s:
        dep = deploy(s, "d1", "2.0", status=None)
        changed, dep = lifecycle.pause(s, dep, "look first", "alice@host", audit)
        assert changed and dep["status"] == "paused" and dep["message"] == "paused by alice@host: look first"
        assert lifecycle.pause(s, dep, "again", "alice@host", audit)[0] is False
        # its rollout (pid 999999) is gone: the pause cannot be lifted in place, a rerun resumes
        assert lifecycle.lift_pause(s, dep, None, "bob", audit)[0] is False
        out = lifecycle.fail(s, dep, "broken", "bob@host", audit)
        assert out["changed"] and out["status"] == "failed"
        with pytest.raises(lifecycle.LifecycleError, match="is failed: only"):
            lifecycle.pause(s, s.get_deployment("d1"), None, "x", audit)
    lines = [json.loads(line) for line in open(audit)]
    assert [(x["event"], x["actor"], x["reason"]) for x in lines] == [
        ("deployment_pause", "alice@host", "look first"), ("deployment_fail", "bob@host", "broken")]
    assert all(x["ts"] and x["version"] == 1 for x in lines)


def test_fail_with_a_revert_ends_rolled_back(tmp_path):
    with open_store(tmp_path / "s.db") as s:
        dep = deploy(s, "d1", "2.0", status=None)
        s.record_answers("d1", [{"host": "a", "decision": "accept", "version_before": "1.0"}])
        s.set_results("d1", [{"host": "a", "result": "updated", "version_after": "2.0"}])
        asked = []

        def revert(agents):
            asked.extend(agents)
            return [a["name"] for a in agents], {}

        out = lifecycle.fail(s, dep, "bad", "bob", revert=revert, wait=0)
        assert asked == [{"name": "a", "agent_url": "http://x", "version": "1.0"}]
        assert out["status"] == "rolled_back" and out["reverted"] == ["a"]
        assert s.agents("d1", hosts=["a"])[0]["result"] == "reverted"


def test_actor_is_the_awx_job_or_the_local_user():
    assert lifecycle.actor(env={"JOB_ID": "42"}) == "awx job 42"
    assert lifecycle.actor(job_id="7", env={}) == "awx job 7"
    assert "@" in lifecycle.actor(env={})


def test_cli_list_status_history_pause(tmp_path, capsys):
    state = str(tmp_path / "s.db")
    with open_store(state) as s:
        deploy(s, "d1", "2.0")
        deploy(s, "d2", "3.0", status=None)
    base = ["--state", state, "--audit", str(tmp_path / "a.jsonl")]
    assert _cli.main(base + ["list"]) == 0
    assert "fleet                2       running" in capsys.readouterr().out
    assert _cli.main(base + ["history", "fleet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[1:]] == [["2", "running"], ["1", "completed"]]
    assert _cli.main(base + ["pause", "fleet", "--reason", "why not"]) == 0
    assert "paused" in capsys.readouterr().out
    assert _cli.main(base + ["--json", "status", "fleet"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["status"] == "paused" and rec["version"] == 2 and rec["counts"]["total"] == 2
    assert rec["rollback_target"] == {"version": 1, "target_version": "2.0"}
    # a resume of a stopped rollout is a playbook run: without --inventory the command is shown, nothing changes
    assert _cli.main(base + ["resume", "fleet"]) == _cli.EXIT_NEEDS_RUN
    assert "ansible-playbook agentfleet.rollout.resume" in capsys.readouterr().out
    assert _cli.main(base + ["rollback", "fleet", "--version", "2", "--reason", "x"]) == _cli.EXIT_ERROR
    assert "version 2 of 'fleet' is paused" in capsys.readouterr().err
    assert _cli.main(base + ["status", "nokey"]) == _cli.EXIT_ERROR
    assert "no deployment recorded for key 'nokey'" in capsys.readouterr().err
    assert _cli.main(["--state", str(tmp_path / "none.db"), "list"]) == _cli.EXIT_ERROR


def _deployment(tmp_path, **kw):
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    from ansible_collections.agentfleet.rollout.plugins.module_utils import _argspecs
    from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners

    result = ArgumentSpecValidator(_argspecs.DEPLOYMENT_SPEC, required_if=_argspecs.DEPLOYMENT_REQUIRED_IF).validate(
        dict(state_path=str(tmp_path / "s.db"), **kw))
    assert not result.error_messages, result.error_messages
    return _runners.run_deployment(result.validated_parameters)


def test_module_states_present_resumed_rolled_back_and_the_operators(tmp_path):
    with open_store(tmp_path / "s.db") as s:
        deploy(s, "d1", "2.0")
        s.create_or_resume("d2", "fleet", "canary", "3.0", PLAN, {}, owner_pid=1)  # pid 1 lives: a running rollout
    present = _deployment(tmp_path, state="present", deployment_id="d1", fleet_key="fleet", target_version="2.0")
    assert present["changed"] is False and present["version"] == 1
    paused = _deployment(tmp_path, state="paused", deployment_key="fleet", reason="wait", actor="carol")
    assert paused["changed"] and paused["status"] == "paused" and paused["version"] == 2
    assert paused["phase"] == "paused in wave 1/2 (explorers)"
    # its rollout still runs: resuming lifts the pause, nothing to rerun
    resumed = _deployment(tmp_path, state="resumed", fleet_key="fleet")
    assert resumed["mode"] == "lifted" and resumed["status"] == "running" and resumed["waves"] == []
    failed = _deployment(tmp_path, state="failed", deployment_key="fleet", reason="bad", revert_wait=0.5)
    assert failed["status"] == "failed" and failed["counts"]["total"] == 2
    back = _deployment(tmp_path, state="rolled_back", fleet_key="fleet", rollback_to=1, reason="restore",
                       waves=[dict(PLAN[0], members=PLAN[0]["members"] + PLAN[1]["members"])])
    assert back["mode"] == "new" and back["version"] == 3 and back["target_version"] == "2.0"
    assert back["rollback_to"] == 1 and back["rollback_from"] == 2 and back["batches"] == [2]
    with open_store(tmp_path / "s.db") as s:
        dep = s.version("fleet", 3)
        assert (dep["strategy"], dep["source_version"], dep["reason"]) == ("rollback", "2.0", "restore")
        assert dep["actor"]
