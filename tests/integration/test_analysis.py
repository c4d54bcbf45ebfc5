"""Issue 21 items 2 and 3: analysis checks (rollout_analysis) judge a wave once its agents are stable. Measured
through a real Prometheus (Debian's package, on loopback, scraping fleetsim's /metrics every second), any JSON
endpoint and each agent's own endpoint: a bad version fails the canary wave; a dry-run check never blocks; no
data or a query error is inconclusive and pauses the deployment, and resume measures again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest

from fleetsim.testing import FleetSim, Supervisor
from helpers import Receiver, free_port, wait_for
from userpath import TOKEN, by_host, down, fleet, records, run, states

TWO_WAVES = [{"name": "canary", "count": 1}, {"name": "rest", "rest": True}]
# an error counter appears with the first error (as a client library's labelled counter does): "or vector(0)"
ERROR_RATIO = ('(sum(rate(fleetsim_agent_errors_total{version="${version}"}[4s])) or vector(0)) / '
               'sum(rate(fleetsim_agent_tasks_total{version="${version}"}[4s]))')


def _must_run():
    return os.environ.get("CI") == "true" and sys.platform.startswith("linux") and os.geteuid() == 0


class Prometheus:
    """A real Prometheus on loopback scraping ``target`` (host:port, path /metrics) every second."""

    def __init__(self, workdir, target):
        binary = shutil.which("prometheus")
        if binary is None:
            reason = "the analysis tests need Debian's prometheus package (apt-get install prometheus)"
            if _must_run():
                pytest.fail(reason + " (CI=true as root on Linux: .ci/run installs it)")
            pytest.skip(reason)
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
                          "  - job_name: fleetsim\n    static_configs:\n      - targets: ['%s']\n" % target)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = open(workdir / "prometheus.log", "w")
        self.proc = subprocess.Popen([binary, "--config.file=%s" % config, "--storage.tsdb.path=%s" % (workdir / "data"),
                                      "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self._ready, 60, "Prometheus ready")

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("prometheus exited: %s" % open(self.log.name).read()[-2000:])
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def query(self, q):
        with urllib.request.urlopen(self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": q}), timeout=5) as r:
            return json.loads(r.read())["data"]["result"]

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def prom_fleet(tmp_path):
    """Four fleetsim agents (2.0.0 is a bad version: half its tasks fail), their supervisor (none driver) and a
    Prometheus scraping them, with a sample already taken."""
    config = fleet(4, error_rates={"2.0.0": 0.5}, error_rate=0.01, tasks_per_second=50)
    with FleetSim(config=config, workdir=tmp_path / "sim") as sim:
        control = sim.inventory()["all"]["vars"]["fleetsim_control_url"]
        prom = Prometheus(tmp_path / "prom", control.split("//", 1)[1])
        try:
            wait_for(lambda: prom.query("fleetsim_agent_up"), 30, "the first scrape")
            with Supervisor(sim, "2.0.0") as supervisor:
                yield sim, prom, supervisor
        finally:
            prom.close()


def prometheus_check(prom, **extra):
    check = {"name": "error-rate", "prometheus": {"url": prom.url, "query": ERROR_RATIO},
             "success_condition": "result < 0.05", "failure_condition": "result >= 0.2",
             "initial_delay": 3, "interval": 1, "count": 2}
    check.update(extra)
    return check


def test_a_bad_version_fails_the_canary_wave_by_its_error_rate_and_is_reverted(tmp_path, prom_fleet):
    sim, prom, supervisor = prom_fleet
    supervisor.__exit__()  # the tasks driver starts the agents itself
    res = run(sim, tmp_path, rollout_cohorts=TWO_WAVES, token=TOKEN, rollout_auto_revert=True,
              rollout_analysis=[prometheus_check(prom)])
    assert res.rc != 0, res.output[-4000:]
    assert "analysis error-rate failed" in res.output, res.output[-4000:]
    assert records(tmp_path) == {1: "failed"}
    report = res.report()
    canary = report["waves"][0]["summary"]
    assert canary["analysis"]["phase"] == "failed", canary
    values = [m["value"] for m in canary["analysis"]["measurements"]]
    assert values and all(0.4 <= v <= 0.6 for v in values), values
    # the canary went back to 1.0.0; nobody of the rest was asked
    assert by_host(report)["agent-000"]["result"] == "reverted", by_host(report)["agent-000"]
    wait_for(lambda: down(sim) == [], 20, "agents settled")
    assert set(states(sim).values()) == {(True, "1.0.0")}
    assert sorted(n for n, a in by_host(report).items() if a.get("decision")) == ["agent-000"]
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert any(e["event"] == "analysis_measurement" and e["check"] == "error-rate" for e in audit)


def test_a_good_version_passes_and_a_dry_run_check_never_blocks(tmp_path, prom_fleet):
    sim, prom, supervisor = prom_fleet
    supervisor.version = "3.0.0"
    checks = [prometheus_check(prom),
              prometheus_check(prom, name="never-met", success_condition="result > 1000", failure_condition=None,
                               dry_run=True, count=1)]
    res = run(sim, tmp_path, driver="none", rollout_cohorts=TWO_WAVES, token=TOKEN, rollout_target_version="3.0.0",
              rollout_analysis=checks, env={"ANSIBLE_SHOW_CUSTOM_STATS": "true"})
    assert res.rc == 0, res.output[-4000:]
    assert records(tmp_path) == {1: "completed"}
    # each measurement is a live progress line; each wave's analysis an AWX artifact
    assert "[agentfleet] wave 1 canary: analysis error-rate: successful value" in res.output, res.output[-4000:]
    assert "agentfleet_rollout_analysis" in res.output.split("CUSTOM STATS")[-1], res.output[-3000:]
    for wave in [w["summary"] for w in res.report()["waves"]]:
        assert wave["analysis"]["phase"] == "successful"
        assert wave["analysis"]["checks"]["never-met"] == {"phase": "failed", "successful": 0, "failed": 1,
                                                           "inconclusive": 0, "dry_run": True}
    assert "analysis successful" in res.output


def test_no_data_pauses_the_deployment_and_resume_measures_again_once_data_comes(tmp_path, prom_fleet):
    sim, prom, supervisor = prom_fleet
    supervisor.version = "3.0.0"
    # nothing is deferred yet, so the deferral counter has no series: no data -> inconclusive -> the deployment
    # pauses with every agent up
    sim.configure(list(sim.occurrences()), deferral_rate=0)
    check = prometheus_check(prom, name="deferrals", initial_delay=0, interval=0.5, count=1,
                             success_condition="result >= 0", failure_condition=None,
                             prometheus={"url": prom.url,
                                         "query": 'sum(fleetsim_agent_deferrals_total{version="${version}"})'})
    res = run(sim, tmp_path, driver="none", rollout_cohorts=TWO_WAVES, token=TOKEN, rollout_target_version="3.0.0",
              rollout_analysis=[check])
    assert res.rc == 0, res.output[-4000:]
    assert records(tmp_path) == {1: "paused"}, res.output[-4000:]
    assert "analysis deferrals inconclusive" in res.output and "no data" in res.output, res.output[-4000:]
    wait_for(lambda: down(sim) == [], 20, "agents settled")
    # the agents defer again: once Prometheus has the series, resume measures again and finishes
    sim.configure(list(sim.occurrences()), deferral_rate=0.05)
    wait_for(lambda: prom.query('fleetsim_agent_deferrals_total{version="3.0.0"}'),
             30, "the deferral series in Prometheus")
    resumed = run(sim, tmp_path, "resume", driver="none", rollout_cohorts=TWO_WAVES, token=TOKEN,
                  rollout_target_version="3.0.0", rollout_analysis=[check])
    assert resumed.rc == 0, resumed.output[-4000:]
    assert records(tmp_path) == {1: "completed"}
    assert set(states(sim).values()) == {(True, "3.0.0")}


def test_a_query_syntax_error_is_inconclusive_with_a_clear_message(tmp_path, prom_fleet):
    sim, prom, supervisor = prom_fleet
    supervisor.version = "3.0.0"
    check = prometheus_check(prom, name="typo", initial_delay=0, count=1,
                             prometheus={"url": prom.url, "query": "sum(rate(fleetsim_agent_errors_total[4s]"})
    res = run(sim, tmp_path, driver="none", rollout_cohorts=TWO_WAVES, token=TOKEN, rollout_target_version="3.0.0",
              rollout_analysis=[check])
    assert res.rc == 0, res.output[-4000:]
    assert records(tmp_path) == {1: "paused"}
    assert "analysis typo inconclusive" in res.output and "bad_data" in res.output, res.output[-4000:]
    assert "Traceback" not in res.output


@pytest.mark.parametrize("rate, ok", [(0.01, True), (0.3, False)])
def test_an_http_check_passes_and_fails(tmp_path, rate, ok):
    endpoint = Receiver(payload={"stats": {"error_rate": rate}})
    try:
        with FleetSim(config=fleet(2), workdir=tmp_path / "sim") as sim:
            check = {"name": "stats", "http": {"url": endpoint.url + "/stats?v=${version}&wave=${cohort}",
                                               "json_path": "stats.error_rate"},
                     "success_condition": "result < 0.05", "interval": 0.2, "count": 2}
            res = run(sim, tmp_path, rollout_cohorts=TWO_WAVES, token=TOKEN, rollout_analysis=[check])
            assert (res.rc == 0) == ok, res.output[-4000:]
            assert records(tmp_path) == {1: "completed" if ok else "failed"}
            assert endpoint.seen[0].path == "/stats?v=2.0.0&wave=canary"
            assert down(sim) == []
    finally:
        endpoint.stop()


@pytest.mark.parametrize("bound, ok", [("result >= 0", True), ("result > 100000", False)])
def test_an_agent_check_measures_each_agent_of_the_wave(tmp_path, bound, ok):
    with FleetSim(config=fleet(3), workdir=tmp_path / "sim") as sim:
        check = {"name": "uptime", "agent": {"path": "/v1/system/health", "json_path": "data.uptime_seconds"},
                 "success_condition": bound, "count": 1}
        res = run(sim, tmp_path, rollout_cohorts=TWO_WAVES, token=TOKEN, rollout_analysis=[check])
        assert (res.rc == 0) == ok, res.output[-4000:]
        canary = res.report()["waves"][0]["summary"]["analysis"]
        assert canary["phase"] == ("successful" if ok else "failed")
        assert isinstance(canary["measurements"][0]["value"], float)
        assert down(sim) == []


@pytest.mark.parametrize("incidents, ok", [(0, True), (3, False)])
def test_the_telemetry_check_fails_a_version_that_reports_incidents(tmp_path, incidents, ok):
    with FleetSim(config=fleet(3, incidents_by_version={"2.0.0": incidents}), workdir=tmp_path / "sim",
                  token=TOKEN) as sim:
        res = run(sim, tmp_path, rollout_cohorts=TWO_WAVES, token=TOKEN, rollout_telemetry_check=True)
        assert (res.rc == 0) == ok, res.output[-4000:]
        canary = res.report()["waves"][0]["summary"]["analysis"]
        assert canary["phase"] == ("successful" if ok else "failed"), canary
        assert canary["measurements"][0]["value"] == float(incidents)
        if not ok:
            assert "analysis telemetry-incidents failed" in res.output
            assert records(tmp_path) == {1: "failed"}
        assert TOKEN not in res.output


def test_a_bad_check_is_an_input_error_naming_its_field(tmp_path):
    with FleetSim(config=fleet(2), workdir=tmp_path / "sim") as sim:
        res = run(sim, tmp_path, token=TOKEN, rollout_analysis=[
            {"name": "x", "http": {"url": "http://127.0.0.1:1/"}, "success_condition": "result << 3"}])
        assert res.rc != 0
        assert "rollout_analysis[x].success_condition" in res.output, res.output[-3000:]
        assert sim.log(event="shutdown_requested") == []
        assert not (tmp_path / "state.db").exists()
