from __future__ import annotations

import ast

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils import _state
from ansible_collections.agentfleet.rollout.plugins.module_utils import _state_progress
from ansible_collections.agentfleet.rollout.plugins.module_utils import _state_queries
from ansible_collections.agentfleet.rollout.plugins.module_utils import _state_s3
from ansible_collections.agentfleet.rollout.plugins.module_utils import _state_schema
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import LockedError, StateError
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import open_store

PLAN = [{"index": 1, "name": "explorers", "size": 1, "members": [{"name": "a", "agent_url": "http://x"}]},
        {"index": 2, "name": "rest", "size": 2, "members": [{"name": "b", "agent_url": "http://y"}, {"name": "c", "agent_url": "http://z"}]}]


def test_create_resume_complete(tmp_path):
    db = tmp_path / "s.db"
    with open_store(db) as s:
        dep, mode = s.create_or_resume("d1", "fleet", "canary", "2.0", PLAN, {}, owner_pid=999999)
        assert mode == "new" and dep["status"] == "running"
        s.record_answers("d1", [{"host": "a", "decision": "accept", "reason": None}])
    with open_store(db) as s:
        # the owner (pid 999999) is gone: the same deployment resumes
        dep, mode = s.create_or_resume("d1", "fleet", "canary", "2.0", [], {})
        assert mode == "resumed" and dep["plan"] == PLAN
        assert s.agents("d1", hosts=["a"])[0]["decision"] == "accept"
        s.set_status("d1", "completed")
        assert s.create_or_resume("d1", "fleet", "canary", "2.0", PLAN, {})[1] == "complete"


def test_one_active_deployment_per_fleet(tmp_path, monkeypatch):
    with open_store(tmp_path / "s.db") as s:
        s.create_or_resume("d1", "fleet", "canary", "2.0", PLAN, {}, owner_pid=1)  # pid 1 is alive
        with pytest.raises(LockedError, match="another rollout is active"):
            s.create_or_resume("d2", "fleet", "canary", "3.0", PLAN, {})
        # another fleet key is independent
        assert s.create_or_resume("d3", "other", "canary", "3.0", PLAN, {})[1] == "new"


def test_interrupted_deployment_needs_resume_or_takeover(tmp_path):
    with open_store(tmp_path / "s.db") as s:
        s.create_or_resume("d1", "fleet", "canary", "2.0", PLAN, {}, owner_pid=999999)
        with pytest.raises(LockedError, match="was interrupted"):
            s.create_or_resume("d2", "fleet", "canary", "3.0", PLAN, {})
        assert s.create_or_resume("d2", "fleet", "canary", "3.0", PLAN, {}, takeover=True)[1] == "new"
        assert s.get_deployment("d1")["status"] == "aborted"


def test_same_id_for_another_version_is_refused(tmp_path):
    with open_store(tmp_path / "s.db") as s:
        s.create_or_resume("d1", "fleet", "canary", "2.0", PLAN, {}, owner_pid=999999)
        with pytest.raises(StateError, match="targets version 2.0"):
            s.create_or_resume("d1", "fleet", "canary", "3.0", PLAN, {})


def test_shared_decisions_expire(tmp_path):
    now = [1000.0]
    with _state.StateStore(str(tmp_path / "s.db"), clock=lambda: now[0]) as s:
        s.record_shared_decision("datum", "d1", "shutdown", "accept", decision_id="x", decided_by="default")
        now[0] += 100
        assert s.shared_decision("datum", "shutdown", max_age=3600)["decision_id"] == "x"
        now[0] += 3600
        assert s.shared_decision("datum", "shutdown", max_age=3600) is None


def test_unknown_backend_is_a_clear_error(tmp_path):
    with pytest.raises(StateError, match="unknown state backend"):
        open_store(tmp_path / "s.db", backend="s3")


def _imported_module_utils(module):
    tree = ast.parse(open(module.__file__, encoding="utf-8").read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and ".module_utils." in node.module:
            names.add(node.module.rsplit(".", 1)[-1])
    return names


def test_the_sqlite_store_never_imports_the_s3_store_nor_the_backend_chooser():
    # the one-way dependency: _state_backend -> _state_s3 -> _state (and its parts); never back
    for module in (_state, _state_progress, _state_queries, _state_schema):
        assert not _imported_module_utils(module) & {"_state_s3", "_state_backend", "_s3_objects"}, module.__name__
    assert "_state_backend" not in _imported_module_utils(_state_s3)


def test_check_fence_returns_the_status_an_operator_set_from_another_store(tmp_path):
    db = tmp_path / "s.db"
    with open_store(db) as run:
        assert run.check_fence() is None  # unfenced
        dep, dummy = run.create_or_resume("d1", "fleet", "canary", "2.0", PLAN, {}, owner_pid=999999)
        run.fence("d1", dep["generation"])
        assert run.check_fence() == ("running", None)
        with open_store(db) as operator:
            operator.set_status("d1", "paused", "paused by alice")
        assert run.check_fence() == ("paused", "paused by alice")


def test_agents_of_named_hosts_are_looked_up_in_chunks_in_wave_then_host_order(tmp_path):
    # issue 20: a wave reads its own members' rows, not the whole fleet's; more hosts than one query binds
    names = ["h%04d" % i for i in range(1203)]
    plan = [{"index": 1, "name": "all", "size": len(names), "members": [{"name": n, "agent_url": "http://x/" + n}
                                                                        for n in names]}]
    with open_store(tmp_path / "s.db") as s:
        s.create_or_resume("d1", "fleet", "canary", "2.0", plan, {})
        s.ensure_agents("d1", [{"name": "extra", "agent_url": "http://x/extra"}])  # no wave: sorts first
        wanted = list(reversed(names[::2])) + ["extra", "not-there"]
        rows = s.agents("d1", hosts=wanted)
        assert [r["host"] for r in rows] == ["extra"] + names[::2]
        assert [r["host"] for r in s.agents("d1")] == [r["host"] for r in sorted(
            s.agents("d1"), key=lambda r: (r["wave"] if r["wave"] is not None else -1, r["host"]))]
        assert s.agents("d1", hosts=[]) == []
