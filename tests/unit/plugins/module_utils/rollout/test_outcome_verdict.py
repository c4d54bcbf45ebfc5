"""The one outcome mapping (``_outcome.member_outcomes``) and the one wave verdict (``_rollout.verdict``) for
rollouts, shutdowns and wakeups (issue 22): each kind's rule gives what its own copy gave before."""

from __future__ import annotations

import itertools

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils import _outcome as oc
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence import deployment as dp
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence import wakeup as wk
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence import waves as wv
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import verdict as vd
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import open_store
from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_stop import agent_outcomes


# ------------------------------------------------------------------ the copies before issue 22, as references

def _old_rollout(rows, names, this_run):
    out = {}
    for name in names:
        row = rows.get(name) or {}
        result = row.get("result") or ("pending" if row.get("decision") else "not asked")
        changed = result == "updated" and name in this_run
        detail = row.get("result_detail") or row.get("decision_reason")
        if result == "updated" and not changed:
            detail = "updated in an earlier run"
        out[name] = {"result": result, "changed": changed, "failed": result in ("failed", "reverted"), "detail": detail,
                     "decision": row.get("decision"), "version_before": row.get("version_before"),
                     "version_after": row.get("version_after")}
    return out


def _old_shutdown(rows, names, terminated, tolerate_failures):
    out = {}
    for name in names:
        row = rows.get(name) or {}
        result = row.get("result") or "not_touched"
        if name in terminated:
            out[name] = {"result": "stopped", "changed": True, "failed": False, "detail": row.get("result_detail")}
        elif result in dp.FAILED_RESULTS:
            out[name] = {"result": result, "changed": False, "failed": not tolerate_failures, "detail": row.get("result_detail")}
        else:
            out[name] = {"result": result, "changed": False, "failed": False,
                         "detail": row.get("result_detail") or ("not asked: the rollout stopped" if result == "not_touched" else None)}
    return out


def _old_shutdown_skipped(rows, names, reason):
    return {n: {"result": (rows.get(n) or {}).get("result") or "skipped", "changed": False, "failed": False,
                "detail": "wave skipped: %s" % reason} for n in names}


RESULTS = (None, "updated", "failed", "reverted", "declined", "deferred", "rejected", "skipped", "stopped",
           "already_down", "kept_running", "not_touched", "unhealthy", "awake", "already_awake", "left_down")


def _rows():
    """One row per (result, decision, detail, reason) combination, named after its index."""
    rows = {}
    combos = itertools.product(RESULTS, (None, "accept", "reject"), (None, "the detail"), (None, "its reason"))
    for i, (result, decision, detail, reason) in enumerate(combos):
        rows["a%d" % i] = {"host": "a%d" % i, "result": result, "decision": decision, "result_detail": detail,
                           "decision_reason": reason, "version_before": "1.0", "version_after": "2.0" if result else None}
    return rows


def test_rollout_rule_is_the_rollouts_mapping():
    rows = _rows()
    names = sorted(rows) + ["absent"]
    this_run = set(names[::2])
    assert oc.member_outcomes(rows, names, oc.ROLLOUT_OUTCOMES, this_run) == _old_rollout(rows, names, this_run)
    assert oc.rollout_outcomes(rows.values(), [{"name": n} for n in names], this_run) == _old_rollout(rows, names, this_run)


@pytest.mark.parametrize("tolerate", [False, True])
def test_shutdown_rule_is_the_shutdowns_mapping(tolerate):
    rows = _rows()
    names = sorted(rows) + ["absent"]
    # this run terminated only occurrences it recorded stopped
    terminated = set(n for n in names[::2] if (rows.get(n) or {}).get("result") == "stopped")
    assert oc.member_outcomes(rows, names, oc.SHUTDOWN_OUTCOMES, terminated, tolerate_failures=tolerate) == \
        _old_shutdown(rows, names, terminated, tolerate)
    assert oc.member_outcomes(rows, names, oc.SHUTDOWN_OUTCOMES, terminated, skipped="wave 1 already passed") == \
        _old_shutdown_skipped(rows, names, "wave 1 already passed")


def test_wakeup_rule():
    rows = {"up": {"result": "already_awake"}, "started": {"result": "awake", "result_detail": "cognitive_state work"},
            "sick": {"result": "unhealthy", "result_detail": "not work within 10s"},
            "broken": {"result": "failed", "result_detail": "the update driver failed"}, "down": {"result": "left_down"}}
    names = sorted(rows) + ["absent"]
    out = oc.member_outcomes(rows, names, oc.WAKEUP_OUTCOMES, this_run={"started", "sick"})
    assert {n: (o["result"], o["changed"], o["failed"]) for n, o in out.items()} == {
        "up": ("already_awake", False, False), "started": ("awake", True, False), "sick": ("unhealthy", False, True),
        "broken": ("failed", False, True), "down": ("left_down", False, False), "absent": ("not_touched", False, False)}
    assert set(out["started"]) == {"result", "changed", "failed", "detail", "version_before", "version_after"}
    tolerated = oc.member_outcomes(rows, names, oc.WAKEUP_OUTCOMES, this_run={"started"}, tolerate_failures=True)
    assert not any(o["failed"] for o in tolerated.values())
    skipped = oc.member_outcomes(rows, names, oc.WAKEUP_OUTCOMES, this_run={"started"}, skipped="skipped")
    assert not any(o["changed"] or o["failed"] for o in skipped.values())
    assert skipped["started"]["detail"] == "cognitive_state work"


def test_rollout_rule_matches_wave_stop_agent_outcomes(tmp_path):
    store = open_store(str(tmp_path / "s.db"))
    members = [{"name": n, "agent_url": "http://127.0.0.1:1/%s" % n} for n in ("a", "b", "c", "d", "e", "f")]
    plan = [{"index": 1, "name": "canary", "size": 6, "members": members}]
    store.create_or_resume("d1", "fleet", "canary", "2.0", plan, {})
    store.record_answers("d1", [{"host": "a", "decision": "accept", "reason": "ok"},
                                {"host": "b", "decision": "reject", "reason": "busy"},
                                {"host": "c", "decision": "accept"}, {"host": "d", "decision": "accept"}])
    store.set_results("d1", [{"host": "a", "result": "updated", "version_after": "2.0"},
                             {"host": "b", "result": "rejected", "detail": "busy"},
                             {"host": "d", "result": "failed", "detail": "not stable: timeout"},
                             {"host": "e", "result": "updated"}])
    rows = store.agents("d1")
    assert oc.rollout_outcomes(rows, members, ["a", "c", "d"]) == agent_outcomes(store, "d1", members, ["a", "c", "d"])
    store.close()


def test_planned_outcomes():
    assert oc.planned_outcomes(["a"], "would be shut down") == {
        "a": {"result": "planned", "changed": True, "failed": False, "detail": "would be shut down"}}


# ------------------------------------------------------------------ the one verdict

def test_judge_wave():
    assert vd.judge_wave({"accepted": 4, "unreachable": 1, "healthy": 4}, 0.8) == (True, 4)
    assert vd.judge_wave({"accepted": 4, "unreachable": 1, "healthy": 4}, 1.0) == (False, 5)
    assert vd.judge_wave({"accepted": 4, "healthy": 4}, 1.0, blocked=True) == (False, 4)
    assert vd.judge_wave({}, None) == (True, 0)


@pytest.mark.parametrize("wave,ok,failures,fail_on_partial,stop,declined,expected", [
    ("explorer", 1, {}, True, None, None, ("passed", None, False, False)),
    ("explorer", 0, {}, True, None, "kept working", ("declined", None, True, False)),
    ("explorer", 0, {"e": "did not stop"}, True, None, None, ("failed", "explorer wave failed: e did not stop", True, False)),
    ("early_adopter", 1, {"x": "r", "a": "q"}, False, None, None, ("failed", "early_adopter wave failed: a q; x r", True, False)),
    ("general", 3, {"g": "did not stop"}, True, None, None, ("partial", None, False, False)),
    ("general", 3, {"g": "did not stop"}, False, None, None, ("partial", None, False, True)),
    ("general", 0, {}, False, None, None, ("passed", None, False, True)),
    ("general", 2, {"g": "rejected: no"}, False, "g rejected", None, ("failed", "g rejected", True, False)),
])
def test_judge_occurrence_wave(wave, ok, failures, fail_on_partial, stop, declined, expected):
    verdict = vd.judge_occurrence_wave(wave, ok, failures, fail_on_partial, stop, declined)
    assert (verdict["status"], verdict["stop_reason"], verdict["halt"], verdict["tolerate_failures"]) == expected
    assert verdict["passed"] == (not failures)


def test_canary_stop_wording():
    assert vd.canary_stop("explorer", {"e": "x"}, "unhealthy") == "explorer wave unhealthy: e x"
    assert vd.canary_stop("general", {"e": "x"}) is None
    assert vd.canary_stop("explorer", {}) is None


@pytest.mark.parametrize("stop,failed,fail_on_partial,expected", [
    (None, [], True, False), (None, ["a"], True, True), (None, ["a"], False, False), ("stopped", ["a"], False, True),
])
def test_deployment_should_fail(stop, failed, fail_on_partial, expected):
    assert vd.deployment_should_fail(stop, failed, fail_on_partial) is expected


# ------------------------------------------------------------------ wakeup fixes (issue 22)

def _wakeup(tmp_path, results, status="running"):
    members = [{"name": n, "agent_url": "http://127.0.0.1:1/%s" % n, "agent_id": "datum", "occurrence_id": n}
               for n in ("default", "occ-1", "occ-2")]
    plan = {"agent_id": "datum", "fleet_key": "agents/datum",
            "waves": [{"index": 1, "name": "explorer", "size": 3, "members": members,
                       "batches": [{"index": 1, "members": [m["name"] for m in members]}]}]}
    params = {"deployment_id": "w1", "state_path": str(tmp_path / "s.db"), "report_path": str(tmp_path / "w.json"),
              "wave": 1, "plan": plan}
    store = open_store(params["state_path"])
    dp.begin(store, params, plan, "wakeup", lambda: 1000.0)
    store.wave_started("w1", 1)
    dp.set_extra(store, "w1", {m["name"]: {"asked": {"action": "start"}} for m in members})
    store.set_results("w1", [{"host": h, "result": r, "detail": "why %s" % h} for h, r in results.items()])
    if status != "running":
        store.set_status("w1", status, "done")
    return store, params


def test_wakeup_abort_fails_the_occurrences_prepare_found_not_stopped(tmp_path):
    """The prepare step recorded occ-2 unhealthy (it never stopped, so it was not started): when the driver then
    fails to start default, occ-2's row fails too, as it does when the wave is gated (it was ``ok`` before)."""
    store, params = _wakeup(tmp_path, {"occ-2": "unhealthy"})
    res = wk.wakeup_abort(dict(params, hosts=["default"], reason="docker run failed"), store=store)
    assert {n: o["failed"] for n, o in res["outcomes"].items()} == {"default": True, "occ-1": False, "occ-2": True}
    assert res["outcomes"]["occ-1"]["result"] == "left_down"
    store.close()


def test_wakeup_skipped_wave_changes_nobody(tmp_path):
    """A rerun of a finished wakeup skips its waves: the occurrences an earlier run started show ``ok``, not
    ``changed`` (they were ``changed`` before)."""
    store, params = _wakeup(tmp_path, {"default": "awake", "occ-1": "awake", "occ-2": "awake"}, status="completed")
    gate = wk.wakeup_gate(params, client=object(), store=store)
    assert gate["skipped"] and {n: (o["result"], o["changed"], o["failed"]) for n, o in gate["outcomes"].items()} == {
        n: ("awake", False, False) for n in ("default", "occ-1", "occ-2")}
    prep = wk.wakeup_prepare(params, client=object(), store=store)
    assert prep["skipped"] and not any(o["changed"] for o in prep["outcomes"].values())
    store.close()


def test_shutdown_skipped_outcomes_keep_their_shape(tmp_path):
    store, params = _wakeup(tmp_path, {"default": "stopped"})
    wave = {"members": [{"name": "default"}, {"name": "occ-1"}]}
    assert wv.skipped_outcomes(store, "w1", wave, "deployment is failed") == {
        "default": {"result": "stopped", "changed": False, "failed": False, "detail": "wave skipped: deployment is failed"},
        "occ-1": {"result": "skipped", "changed": False, "failed": False, "detail": "wave skipped: deployment is failed"}}
    store.close()


# ------------------------------------------------------------------ found by mypy --strict

def test_promote_in_check_mode_without_a_state_file_says_nothing_is_staged():
    """``promote`` in check mode before any state file exists: the operator's error (was an AttributeError)."""
    from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.deployment import begin
    from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.errors import RolloutError

    with pytest.raises(RolloutError, match="no staged deployment for fleet 'agents' to promote"):
        begin(None, None, "agents", "canary", None, [], {}, promote=True, check_mode=True)
