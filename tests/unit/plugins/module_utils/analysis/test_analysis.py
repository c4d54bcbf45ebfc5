"""Analysis checks (_analysis): conditions, one measurement's phase, the measuring loop (count, limits,
initial delay, interval, dry run), the wave's placeholders and one clear error per bad field."""

from __future__ import annotations

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import FAILED
from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import INCONCLUSIVE
from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import SUCCESSFUL
from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import AnalysisError
from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import Sources as AnalysisSources
from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import fill
from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import holds
from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import judge
from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import normalize_checks
from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import parse_condition
from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import run_analysis
from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import wave_checks
from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import wave_values
from helpers import Clock


def check(**kw):
    base = {"name": "c", "http": {"url": "http://127.0.0.1:1/x"}, "success_condition": "result < 0.05"}
    base.update(kw)
    checks, errors = normalize_checks([base])
    assert errors == [], errors
    return checks[0]


@pytest.mark.parametrize("text, value, expected", [
    ("result < 0.05", 0.01, True), ("result < 0.05", 0.05, False), ("result <= 0.05", 0.05, True),
    ("0.5 > result", 0.4, True), ("result >= 1 and result < 2", 1.5, True), ("result >= 1 and result < 2", 2, False),
    ("result < 1 or result > 10", 11, True), ("result == 0", 0.0, True), ("result != 0", 0.0, False),
    ("result > -1e3", -5, True),
])
def test_conditions(text, value, expected):
    assert holds(parse_condition(text), value) is expected


@pytest.mark.parametrize("text", ["", "result << 3", "x < 3", "result < foo", "3 < 4", "import os"])
def test_a_condition_that_cannot_be_read_names_its_field(text):
    with pytest.raises(AnalysisError, match="^f: "):
        parse_condition(text, "f")


def test_judge_every_sample_and_the_argo_rules():
    both = check(failure_condition="result >= 0.2")
    assert judge(both, [0.01, 0.02]) == SUCCESSFUL
    assert judge(both, [0.01, 0.3]) == INCONCLUSIVE, "a vector meets a condition only in every sample"
    assert judge(both, [0.3, 0.4]) == FAILED
    assert judge(both, [0.1]) == INCONCLUSIVE
    assert judge(both, None) == INCONCLUSIVE
    assert judge(check(), [0.1]) == FAILED, "only a success condition: not met is failed"
    only_failure = check(success_condition=None, failure_condition="result > 0.5")
    assert judge(only_failure, [0.1]) == SUCCESSFUL


class Sources:
    """Measurements from a script: name -> list of (samples, error), the last one repeated."""

    def __init__(self, clock, script):
        self.clock, self.script, self.times = clock, script, []

    def measure(self, c, values, agents):
        self.times.append((c["name"], self.clock.now))
        seq = self.script[c["name"]]
        return seq.pop(0) if len(seq) > 1 else seq[0]


def test_count_interval_and_initial_delay():
    clock = Clock()
    c = check(count=3, interval=2, initial_delay=5)
    src = Sources(clock, {"c": [([0.01], None)]})
    out = run_analysis([c], src, {}, [], clock=clock, sleep=clock.sleep)
    assert out["phase"] == SUCCESSFUL and out["reason"] is None
    assert [t for n, t in src.times] == [5, 7, 9]
    assert out["checks"]["c"] == {"phase": SUCCESSFUL, "successful": 3, "failed": 0, "inconclusive": 0,
                                  "dry_run": False}


def test_failure_limit_and_inconclusive_limit():
    clock = Clock()
    c = check(count=2, interval=1, failure_limit=1, failure_condition="result > 0.2")
    # one failure is tolerated, the second fails the check
    out = run_analysis([c], Sources(clock, {"c": [([0.5], None), ([0.01], None), ([0.5], None)]}), {}, [],
                       clock=clock, sleep=clock.sleep)
    assert out["phase"] == FAILED and out["checks"]["c"]["failed"] == 2
    assert out["reason"].startswith("analysis c failed: 2 failed, 0 inconclusive of 3 measurements (last: value 0.5")
    clock = Clock()
    c = check(count=1, inconclusive_limit=1)
    out = run_analysis([c], Sources(clock, {"c": [(None, "no data")]}), {}, [], clock=clock, sleep=clock.sleep)
    assert out["phase"] == INCONCLUSIVE and out["checks"]["c"]["inconclusive"] == 2
    assert "no data" in out["reason"]


def test_a_dry_run_check_is_measured_and_never_decides():
    clock = Clock()
    checks = [check(name="real"), check(name="dry", dry_run=True)]
    src = Sources(clock, {"real": [([0.01], None)], "dry": [([0.9], None)]})
    seen = []
    out = run_analysis(checks, src, {}, [], clock=clock, sleep=clock.sleep, on_measurement=seen.append)
    assert out["phase"] == SUCCESSFUL
    assert out["checks"]["dry"]["phase"] == FAILED and out["checks"]["dry"]["dry_run"] is True
    assert [m["check"] for m in seen] == ["real", "dry"] and seen[1]["dry_run"] is True


def test_placeholders_of_the_wave():
    values = wave_values({"target_version": "2.0.0", "deployment_id": "d-1"}, {"index": 2, "name": "rest"},
                         [{"name": "agent-b"}, {"name": "agent.a"}])
    assert fill('x{version="${version}",dep="${deployment_id}",w="${wave}",c="${cohort}",a=~"${agents_regex}"}',
                values) == 'x{version="2.0.0",dep="d-1",w="2",c="rest",a=~"agent-b|agent\\.a"}'
    assert fill("${unknown} stays", values) == "${unknown} stays"


@pytest.mark.parametrize("raw, words", [
    ({"http": {"url": "http://x/"}, "success_condition": "result < 1"}, "rollout_analysis[0].name: is required"),
    ({"name": "a", "success_condition": "result < 1"}, "rollout_analysis[a]: needs exactly one source"),
    ({"name": "a", "http": {"url": "http://x/"}, "agent": {"path": "/m"}, "success_condition": "result < 1"},
     "needs exactly one source"),
    ({"name": "a", "http": {"url": "http://x/"}}, "needs success_condition or failure_condition"),
    ({"name": "a", "prometheus": {"url": "http://x/"}, "success_condition": "result < 1"},
     "rollout_analysis[a].prometheus.query: is required"),
    ({"name": "a", "agent": {"path": "metrics"}, "success_condition": "result < 1"}, "path: must start with /"),
    ({"name": "a", "http": {"url": "ftp://x/"}, "success_condition": "result < 1"}, "must be an http:// or https://"),
    ({"name": "a", "http": {"url": "http://x/", "json_path": "a[?"}, "success_condition": "result < 1"},
     "json_path: not a JMESPath expression"),
    ({"name": "a", "http": {"url": "http://x/"}, "success_condition": "result < 1", "count": 0},
     "rollout_analysis[a].count: must be a whole number >= 1"),
    ({"name": "a", "http": {"url": "http://x/"}, "success_condition": "result < 1", "interval": "soon"},
     "rollout_analysis[a].interval: must be a number"),
    ({"name": "a", "http": {"url": "http://x/"}, "success_condition": "result < 1", "intervall": 3},
     "rollout_analysis[a]: unknown key intervall"),
])
def test_bad_checks_name_the_field(raw, words):
    errors = normalize_checks([raw])[1]
    assert any(words in e for e in errors), errors


def test_names_are_unique():
    raw = {"name": "a", "http": {"url": "http://x/"}, "success_condition": "result < 1"}
    assert "rollout_analysis[a].name: used twice" in normalize_checks([raw, raw])[1]


def test_the_telemetry_check_is_one_more_agent_check():
    assert wave_checks({"analysis": [], "telemetry_check": False}) == []
    checks, errors = normalize_checks(wave_checks({"analysis": [], "telemetry_check": True}))
    assert errors == [] and checks[0]["name"] == "telemetry-incidents" and checks[0]["source"] == "agent"
    assert checks[0]["agent"] == {"path": "/v1/telemetry/overview", "json_path": "data.recent_incidents"}
    assert judge(checks[0], [0.0, 0.0]) == SUCCESSFUL and judge(checks[0], [0.0, 2.0]) == FAILED


def test_an_agent_check_without_the_agents_client_is_inconclusive():
    # Sources without agent_client (only prometheus and http checks need none): an agent check's measurement
    # is an error, so inconclusive, never a crash of the wave
    checks, errors = normalize_checks([{"name": "own", "agent": {"path": "/v1/metrics"}, "success_condition": "result < 1"}])
    assert errors == [] and checks[0]["source"] == "agent"
    agent_check = checks[0]
    samples, error = AnalysisSources().measure(agent_check, {}, [{"name": "a1", "agent_url": "http://127.0.0.1:1"}])
    assert samples is None and error == "AnalysisError: an agent check needs the agents' client"
    assert judge(agent_check, samples) == INCONCLUSIVE
