"""Issue 21 item 4: rollout_hooks run the user's task files on the controller before and after each wave and at
the deployment's end, with the wave and its results; a failing before_wave hook (a change freeze) stops the
rollout before anyone of that wave is asked and leaves the deployment paused; resume runs the hook again."""

from __future__ import annotations

import json

from fleetsim.testing import FleetSim
from userpath import FILES, TOKEN, asked, down, fleet, records, run, states

TWO_WAVES = [{"name": "canary", "count": 1}, {"name": "rest", "rest": True}]
HOOK = str(FILES / "hook-record.yml")
ALL_POINTS = {p: HOOK for p in ("before_wave", "after_wave", "on_success", "on_failure", "on_pause")}


def calls(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_hooks_run_before_and_after_each_wave_and_at_the_end(tmp_path):
    log = tmp_path / "hooks.jsonl"
    with FleetSim(config=fleet(3), workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_cohorts=TWO_WAVES, rollout_hooks=ALL_POINTS, hook_log=str(log),
                  rollout_extra_vars=["hook_*"], token=TOKEN)
        assert res.rc == 0, res.output[-4000:]
    got = calls(log)
    assert [(c["event"], c["wave"]) for c in got] == [
        ("before_wave", "canary"), ("after_wave", "canary"), ("before_wave", "rest"), ("after_wave", "rest"),
        ("on_success", "rest")], got
    assert got[0]["agents"] == ["agent-000"] and got[0]["results"] == [] and got[0]["index"] == 1
    assert got[1]["results"] == ["updated"]
    assert got[3]["agents"] == ["agent-001", "agent-002"] and got[3]["results"] == ["updated", "updated"]
    assert len({c["deployment_id"] for c in got}) == 1


def test_a_failing_before_wave_hook_pauses_before_anyone_is_asked_and_resume_runs_it_again(tmp_path):
    log = tmp_path / "hooks.jsonl"
    freeze = tmp_path / "freeze"
    freeze.write_text("")
    hook_vars = {"rollout_hooks": ALL_POINTS, "hook_log": str(log), "hook_freeze_file": str(freeze),
                 "hook_freeze_waves": ["rest"], "rollout_extra_vars": ["hook_*"]}
    with FleetSim(config=fleet(3), workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, rollout_cohorts=TWO_WAVES, token=TOKEN, **hook_vars)
        assert res.rc != 0, res.output[-4000:]
        assert "the before_wave hook of wave 2 (rest) failed" in res.output and "change freeze" in res.output, \
            res.output[-4000:]
        assert records(tmp_path) == {1: "paused"}
        assert asked(sim) == {"agent-000": 1}, "an agent of the frozen wave was asked"
        assert down(sim) == []
        assert [(c["event"], c["wave"]) for c in calls(log)] == [
            ("before_wave", "canary"), ("after_wave", "canary"), ("on_pause", "rest")], calls(log)
        # the freeze holds: resume runs the hook again and pauses again, still asking nobody
        again = run(sim, tmp_path, "resume", rollout_cohorts=TWO_WAVES, token=TOKEN, **hook_vars)
        assert again.rc != 0 and records(tmp_path) == {1: "paused"}, again.output[-4000:]
        assert asked(sim) == {"agent-000": 1}
        freeze.unlink()
        resumed = run(sim, tmp_path, "resume", rollout_cohorts=TWO_WAVES, token=TOKEN, **hook_vars)
        assert resumed.rc == 0, resumed.output[-4000:]
        assert records(tmp_path) == {1: "completed"}
        assert set(states(sim).values()) == {(True, "2.0.0")}
        assert asked(sim) == {n: 1 for n in states(sim)}
    assert [(c["event"], c["wave"]) for c in calls(log)][-3:] == [
        ("before_wave", "rest"), ("after_wave", "rest"), ("on_success", "rest")], calls(log)
