"""fleetsim's `consent: ciris` behaviour, lifecycle timeline, violations and listen backlog: real HTTP."""

from __future__ import annotations

import functools
import http.client as httpclient
import json
import os
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from urllib.parse import urlsplit

import pytest

from fleetsim.config import ConfigError, build_fleet, fleet_options
from fleetsim.testing import FleetSim, http
import helpers

TOKEN = "tok-ciris-S3cret"
DECIDE = 0.3
DRAIN = 0.6
CONFIG = {
    "defaults": {"consent": "ciris", "decide_seconds": DECIDE, "drain_seconds": DRAIN},
    "agents": [
        {"count": 12, "name_prefix": "c-", "overrides": {
            "c-001": {"decision": "reject"},
            "c-002": {"decision": "defer"},
            "c-003": {"decision": "busy"},
            "c-004": {"decision": "error"},
            "c-007": {"decision": "reject"},
            "c-008": {"consent": "explicit"},
            "c-010": {"drain_seconds": 30},
            "c-011": {"decide_seconds": 30},
        }},
        {"names": ["r-draining", "r-stuck", "r-token"], "overrides": {
            "r-draining": {"drain_seconds": 30},
            "r-stuck": {"stuck_on_shutdown": True},
            "r-token": {"reject_token": True},
        }},
        {"agent_id": "datum", "occurrences": 4, "deliberation": "accept"},
        {"agent_id": "sage", "occurrences": 2, "deliberation": "reject"},
    ],
}
INITIATED_KEYS = {"status", "shutdown_initiated", "message", "timestamp"}


def body(**extra):
    b = {"reason": "update to 2.0.0", "confirm": True}
    b.update(extra)
    return b


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with FleetSim(CONFIG, token=TOKEN, workdir=tmp_path_factory.mktemp("ciris")) as s:
        yield s


def refused(sim, name):
    try:
        sim.health(name, timeout=2)
    except OSError:
        return True
    return False


wait_for = functools.partial(helpers.wait_for, timeout=5.0, interval=0.02)


def cog(sim, name):
    return sim.health(name)[1]["data"]["cognitive_state"]


def decided(sim, name, n=1):
    return len(sim.log(occurrence=name, event="decided")) >= n


def assert_initiated(status, answer):
    assert status == 200
    assert set(answer["data"]) == INITIATED_KEYS
    assert answer["data"]["status"] == "initiated" and answer["data"]["shutdown_initiated"] is True


# ---------------------------------------------------------------------------- config (pure)

def test_config_consent_and_backlog():
    cfg = {"defaults": {"decide_seconds": 1}, "agents": [{"count": 2, "overrides": {"agent-001": {"consent": "explicit"}}}]}
    specs = build_fleet(cfg, consent="ciris")
    assert [s.settings["consent"] for s in specs] == ["ciris", "explicit"]
    assert specs[0].settings["drain_seconds"] == 2.0 and specs[0].settings["decide_seconds"] == 1
    assert build_fleet(None, count=1)[0].settings["consent"] == "explicit"
    assert fleet_options({"backlog": 4, "agents": []}) == {"backlog": 4}
    assert fleet_options(None) == {"backlog": None}
    assert len(build_fleet({"backlog": 4, "agents": [{"count": 1}]})) == 1
    for bad in ({"defaults": {"consent": "maybe"}}, {"defaults": {"drain_seconds": -1}},
                {"defaults": {"decide_seconds": "soon"}}):
        with pytest.raises(ConfigError):
            build_fleet(bad)
    with pytest.raises(ConfigError, match="consent"):
        build_fleet(None, count=1, consent="always")
    for bad in (0, -3, "8", True, 1.5):
        with pytest.raises(ConfigError, match="backlog"):
            fleet_options({"backlog": bad})


def test_cli_rejects_bad_backlog(tmp_path):
    with pytest.raises(Exception, match="backlog"):
        FleetSim(count=1, workdir=tmp_path, backlog=0).start()


# ---------------------------------------------------------------------------- answers

def test_ciris_answers_401_422_200(sim):
    name = "c-005"
    url = sim.url(name)
    assert http("POST", url + "/v1/system/shutdown", body())[0] == 401
    status, answer = sim.shutdown(name, body(), token="wrong")
    assert status == 401 and "detail" in answer
    status, answer = sim.shutdown(name, {"confirm": True})
    assert status == 422
    assert [(e["type"], e["loc"]) for e in answer["detail"]] == [("missing", ["body", "reason"])]
    status, answer = sim.shutdown(name, {"reason": "x"})
    assert status == 422 and answer["detail"][0]["loc"] == ["body", "confirm"]
    status, answer = sim.shutdown(name, {"reason": "x", "confirm": False})
    assert status == 422 and answer["detail"][0]["loc"] == ["body", "confirm"]
    status, answer = sim.shutdown(name, {})
    assert status == 422 and len(answer["detail"]) == 2
    conn = httpclient.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=5)
    conn.request("POST", "/v1/system/shutdown", body=b"{not json",
                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 422 and json.loads(resp.read())["detail"][0]["type"] == "json_invalid"
    conn.close()
    # nothing so far reached the agent as a shutdown request
    assert sim.log(occurrence=name, event="shutdown_requested") == []
    assert cog(sim, name) == "work"
    t0 = time.monotonic()
    status, answer = sim.shutdown(name, body(deployment_id="d-1", target_version="2.0.0", scope="occurrence",
                                             decision_ref=None, force=False, whatever={"x": 1}))
    assert time.monotonic() - t0 < DECIDE
    assert_initiated(status, answer)
    assert "decision" not in answer["data"] and "decision_id" not in answer["data"]
    events = [e["event"] for e in sim.log(occurrence=name) if e["path"] in (None, "/v1/system/shutdown")]
    assert events == ["unauthorized", "unauthorized"] + ["bad_request"] * 5 + ["shutdown_requested", "deliberation"]
    assert sim.log(occurrence=name, event="bad_request")[0]["status"] == 422
    assert TOKEN not in json.dumps(sim.log()) + sim.log_path.read_text()


def test_error_decision_is_500(sim):
    status, answer = sim.shutdown("c-004", body())
    assert status == 500 and "detail" in answer
    assert sim.deliberations(occurrence="c-004") == 0


def test_explicit_occurrence_in_a_ciris_fleet(sim):
    status, answer = sim.shutdown("c-008", body(deployment_id="d-x"))
    assert status == 200 and answer["data"]["decision"] == "accept" and answer["data"]["decision_id"]
    assert wait_for(lambda: refused(sim, "c-008"))
    tl = sim.timeline("c-008")
    assert tl["shutdown_requested"] <= tl["drain_started"] < tl["exited"]
    assert sim.log(occurrence="c-008", event="drain_started")[0]["drain_seconds"] == 0.2


# ---------------------------------------------------------------------------- behaviour

def test_accept_deliberates_drains_then_exits(sim):
    name = "c-000"
    assert_initiated(*sim.shutdown(name, body(deployment_id="d-acc")))
    st = sim.occurrence(name)
    assert st["phase"] in ("deliberating", "draining") and st["consent"] == "ciris"
    assert wait_for(lambda: cog(sim, name) == "shutdown")
    assert sim.health(name)[1]["data"]["status"] == "healthy"  # still answering while it drains
    assert wait_for(lambda: refused(sim, name))
    st = sim.occurrence(name)
    assert (st["up"], st["down_reason"], st["phase"], st["health"]) == (False, "exited", "down", None)
    assert st["last_decision"]["decision"] == "accept" and st["last_decision"]["via"] == "deliberation"
    tl = st["timeline"]
    assert tl["started"] is None
    assert tl["drain_started"] - tl["shutdown_requested"] >= DECIDE - 0.02
    assert tl["exited"] - tl["drain_started"] >= DRAIN - 0.02
    lifecycle = [e["event"] for e in sim.log(occurrence=name) if e["path"] is None]
    assert lifecycle == ["shutdown_requested", "decided", "drain_started", "exited"]
    dec = sim.log(occurrence=name, event="decided")[0]
    assert (dec["decision"], dec["outcome"]) == ("accept", "stops")
    assert sim.deliberations(occurrence=name) == 1
    # a recreate after the exit: no violation
    sim.start([name], "2.0.0")
    assert sim.violations(occurrence=name)["count"] == 0
    assert sim.health(name)[1]["data"]["version"] == "2.0.0" and cog(sim, name) == "work"
    assert sim.timeline(name)["started"] >= tl["exited"]


def test_force_drains_faster(sim):
    name = "c-009"
    assert_initiated(*sim.shutdown(name, body(force=True)))
    assert wait_for(lambda: refused(sim, name))
    assert sim.log(occurrence=name, event="drain_started")[0]["drain_seconds"] == 0.2
    tl = sim.timeline(name)
    assert 0.18 <= tl["exited"] - tl["drain_started"] < DRAIN


@pytest.mark.parametrize("name,decision", [("c-001", "reject"), ("c-002", "defer"), ("c-003", "busy")])
def test_silent_decline_goes_on_working(sim, name, decision):
    assert_initiated(*sim.shutdown(name, body(deployment_id="d-dec")))
    assert wait_for(lambda: decided(sim, name))
    dec = sim.log(occurrence=name, event="decided")[0]
    assert (dec["decision"], dec["outcome"]) == (decision, "keeps_working")
    # observe for longer than a drain would take: it keeps working all along
    until = time.monotonic() + DRAIN + 0.3
    while time.monotonic() < until:
        status, answer = sim.health(name)
        assert status == 200 and answer["data"]["cognitive_state"] == "work"
        time.sleep(0.05)
    st = sim.occurrence(name)
    assert st["phase"] == "working" and st["up"] and st["timeline"]["drain_started"] is None
    assert sim.log(occurrence=name, event="drain_started") == []


def test_no_dedup_by_deployment_id(sim):
    name = "c-007"
    assert_initiated(*sim.shutdown(name, body(deployment_id="d-same")))
    # asked again while it deliberates: 409 "Shutdown already requested" (ciris-agent 2.16.5), no second deliberation
    assert sim.shutdown(name, body(deployment_id="d-same")) == (
        409, {"detail": "Shutdown already requested: update to 2.0.0"})
    assert wait_for(lambda: decided(sim, name))
    # asked again after it declined: 200 again and a new deliberation
    assert_initiated(*sim.shutdown(name, body(deployment_id="d-same")))
    assert wait_for(lambda: decided(sim, name, 2))
    events = [e["event"] for e in sim.log(occurrence=name, path="/v1/system/shutdown")]
    assert events == ["deliberation", "already_requested", "deliberation"]
    assert sim.deliberations(occurrence=name) == 2
    assert len(sim.log(occurrence=name, event="shutdown_requested")) == 3
    assert cog(sim, name) == "work"


def test_multi_occurrence_explorer_and_followers(sim):
    status, answer = sim.shutdown("datum-default", body(deployment_id="d-multi", scope="all_occurrences",
                                                        target_version="2.0.0"))
    assert_initiated(status, answer)
    assert "decision_id" not in answer["data"]
    assert wait_for(lambda: decided(sim, "datum-default"))
    # the collection makes the decision id; the followers told with it comply without deliberating
    for occ in ("occ-1", "occ-2"):
        assert_initiated(*sim.shutdown(f"datum-{occ}", body(deployment_id="d-multi", decision_ref="dec-made-by-us")))
    # a follower asked with decision_ref null deliberates itself
    assert_initiated(*sim.shutdown("datum-occ-3", body(deployment_id="d-multi", decision_ref=None)))
    entries = sim.log(agent_id="datum", path="/v1/system/shutdown")
    assert [(e["occurrence_id"], e["event"]) for e in entries] == [
        ("default", "deliberation"), ("occ-1", "complied"), ("occ-2", "complied"), ("occ-3", "deliberation")]
    assert entries[0]["deliberated_by"] == "agent" and entries[3]["deliberated_by"] == "occurrence"
    assert sim.deliberations(agent_id="datum") == 2
    names = [f"datum-{o}" for o in ("default", "occ-1", "occ-2", "occ-3")]
    assert wait_for(lambda: all(refused(sim, n) for n in names))
    for occ in ("occ-1", "occ-2"):
        tl = sim.timeline(f"datum-{occ}")
        assert tl["drain_started"] - tl["shutdown_requested"] < DECIDE  # no deliberation time
        assert sim.occurrence(f"datum-{occ}")["last_decision"]["via"] == "decision_ref"
    db = sqlite3.connect(str(sim.state_dir / "datum.db"))
    rows = db.execute("SELECT agent_occurrence_id, status, outcome FROM tasks WHERE task_id='shutdown_d-multi'").fetchall()
    db.close()
    assert rows[0][:2] == ("__shared__", "COMPLETED")
    outcome = json.loads(rows[0][2])
    assert (outcome["decision"], outcome["consent"], outcome["target_version"]) == ("accept", "ciris", "2.0.0")


def test_multi_occurrence_agent_level_decline(sim):
    assert_initiated(*sim.shutdown("sage-default", body(deployment_id="d-sage", scope="all_occurrences")))
    assert wait_for(lambda: decided(sim, "sage-default"))
    assert sim.log(occurrence="sage-default", event="decided")[0]["decision"] == "reject"
    assert cog(sim, "sage-default") == "work" and cog(sim, "sage-occ-1") == "work"
    assert sim.deliberations(agent_id="sage") == 1


# ---------------------------------------------------------------------------- violations

def test_violations_start_while_running_draining_not_after_exit(sim):
    before = sim.control("GET", "/_sim/healthz")["violations"]
    # c-006: still working
    sim.start(["c-006"], "2.0.0")
    v = sim.violations(occurrence="c-006")
    assert v["count"] == 1 and v["by_kind"] == {"start_while_running": 1, "start_while_draining": 0}
    entry = v["violations"][0]
    assert (entry["event"], entry["kind"], entry["phase"], entry["via"], entry["version"]) == \
        ("violation", "start_while_running", "working", "control", "2.0.0")
    # c-011: deliberating (30 s) counts as running
    assert_initiated(*sim.shutdown("c-011", body()))
    http("POST", sim.url("c-011") + "/_sim/start", {"version": "2.0.0"})
    v = sim.violations(occurrence="c-011")
    assert (v["count"], v["violations"][0]["phase"], v["violations"][0]["via"]) == (1, "deliberating", "occurrence")
    assert sim.occurrence("c-011")["phase"] == "working"  # the recreate cancelled the deliberation
    # c-010: draining (30 s)
    assert_initiated(*sim.shutdown("c-010", body()))
    assert wait_for(lambda: sim.phase("c-010") == "draining")
    sim.start(["c-010"], "2.0.0")
    v = sim.violations(occurrence="c-010")
    assert v["count"] == 1 and v["by_kind"]["start_while_draining"] == 1
    st = sim.occurrence("c-010")
    assert (st["phase"], st["version"], st["violations"]) == ("working", "2.0.0", 1)
    assert cog(sim, "c-010") == "work"
    kinds = [e["event"] for e in sim.log(occurrence="c-010") if e["path"] is None]
    assert kinds[-2:] == ["violation", "started"]
    # all of them through the control port and healthz
    assert sim.control("GET", "/_sim/healthz")["violations"] == before + 3
    assert sim.violations(kind="start_while_draining")["count"] >= 1
    # once stopped (exited), a start is no violation
    sim.configure("c-010", drain_seconds=0.2)
    assert_initiated(*sim.shutdown("c-010", body()))
    assert wait_for(lambda: refused(sim, "c-010"))
    sim.start(["c-010"])
    assert sim.violations(occurrence="c-010")["count"] == 1


def test_violations_reset(tmp_path):
    with FleetSim(count=2, consent="ciris", workdir=tmp_path) as sim:
        sim.start(["agent-000", "agent-001"])
        assert sim.violations()["count"] == 2
        assert sim.reset_violations()["count"] == 2
        assert sim.violations() == {"count": 0, "by_kind": {"start_while_running": 0, "start_while_draining": 0},
                                    "violations": []}
        assert sim.occurrence("agent-000")["violations"] == 0


# ---------------------------------------------------------------------------- paths layout, backlog

def test_paths_layout_ciris_exit_is_502(tmp_path):
    with FleetSim(count=2, layout="paths", consent="ciris", workdir=tmp_path,
                  config={"defaults": {"decide_seconds": 0.1, "drain_seconds": 0.2}}) as sim:
        url = sim.url("agent-000")
        assert_initiated(*http("POST", url + "/v1/system/shutdown", body()))
        assert wait_for(lambda: http("GET", url + "/v1/system/health")[0] == 502)
        assert sim.occurrence("agent-000")["down_reason"] == "exited"
        assert http("GET", sim.url("agent-001") + "/v1/system/health")[0] == 200


def _connect_burst(port, n, wait):
    """Open n connections at once; return how many completed within `wait` seconds."""
    socks, pending, connected, failed = [], set(), 0, 0
    try:
        for dummy in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            socks.append(s)
            err = s.connect_ex(("127.0.0.1", port))
            if err == 0:
                connected += 1
            else:
                pending.add(s)
        deadline = time.monotonic() + wait
        while pending and time.monotonic() < deadline:
            dummy, writable, dummy2 = select.select([], list(pending), [], max(0.0, deadline - time.monotonic()))
            for s in writable:
                pending.discard(s)
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    connected += 1
                else:
                    failed += 1
        return connected, failed + len(pending)
    finally:
        for s in socks:
            s.close()


def _listen_backlog(port):
    """The backlog the kernel gives a listening socket (ss's Send-Q), or None without ss."""
    if not shutil.which("ss"):
        return None
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(out.split()[2])


@pytest.mark.parametrize("backlog,expect_all", [(1, False), (None, True)])
def test_backlog_of_the_paths_listener(tmp_path, backlog, expect_all):
    n = 12
    with FleetSim(count=3, layout="paths", backlog=backlog, workdir=tmp_path) as sim:
        port = urlsplit(sim.url("agent-000")).port
        assert sim.control("GET", "/_sim/healthz")["backlog"] == (backlog or 256)
        assert sim.ready["backlog"] == (backlog or 256)
        kernel = _listen_backlog(port)
        assert kernel in (None, backlog or 256)
        # with the simulator stopped nothing is accepted: the kernel queues what the backlog allows
        # (backlog + 1 on Linux) and drops the SYNs of the rest, so their connects do not complete
        os.kill(sim.proc.pid, signal.SIGSTOP)
        try:
            connected, not_connected = _connect_burst(port, n, wait=1.0 if not expect_all else 5.0)
        finally:
            os.kill(sim.proc.pid, signal.SIGCONT)
        if expect_all:
            assert (connected, not_connected) == (n, 0)
        else:
            assert 1 <= connected <= 4 and not_connected >= n - 4
        assert wait_for(lambda: sim.health("agent-000")[0] == 200)


def test_consent_changes_at_run_time(tmp_path):
    with FleetSim(count=2, workdir=tmp_path) as sim:
        assert sim.shutdown("agent-000", body())[1]["data"]["decision"] == "accept"
        sim.configure("agent-001", consent="ciris", decide_seconds=0.1, drain_seconds=0.1)
        assert sim.occurrence("agent-001")["consent"] == "ciris"
        assert_initiated(*sim.shutdown("agent-001", body()))
        assert wait_for(lambda: refused(sim, "agent-001"))
        status, answer = http("POST", sim.control_url + "/_sim/configure",
                              {"occurrences": ["agent-000"], "set": {"consent": "sometimes"}})
        assert status == 400 and "consent" in answer["detail"]


def test_second_request_while_draining_or_stuck_is_409_already_requested(sim):
    """ciris-agent 2.16.5 (routes/system/helpers.py: check_shutdown_already_requested): a shutdown already
    requested answers 409 {"detail": "Shutdown already requested: <reason>"}; nothing new starts."""
    assert_initiated(*sim.shutdown("r-draining", body(reason="first ask", deployment_id="d-409")))
    assert wait_for(lambda: sim.phase("r-draining") == "draining")
    status, answer = sim.shutdown("r-draining", body(reason="second ask", deployment_id="d-409"))
    assert (status, answer) == (409, {"detail": "Shutdown already requested: first ask"})
    entry = sim.log(occurrence="r-draining", path="/v1/system/shutdown")[-1]
    assert (entry["event"], entry["status"], entry["phase"]) == ("already_requested", 409, "draining")
    assert sim.deliberations(occurrence="r-draining") == 1
    assert len(sim.log(occurrence="r-draining", event="drain_started")) == 1
    # accepted and never exits: still "already requested"
    assert_initiated(*sim.shutdown("r-stuck", body(reason="stuck ask")))
    assert wait_for(lambda: decided(sim, "r-stuck"))
    assert sim.shutdown("r-stuck", body()) == (409, {"detail": "Shutdown already requested: stuck ask"})
    assert sim.phase("r-stuck") == "working" and sim.deliberations(occurrence="r-stuck") == 1
    # a recreate clears it: the new process deliberates again
    sim.start(["r-stuck"], "1.0.0")
    assert_initiated(*sim.shutdown("r-stuck", body()))
    assert sim.deliberations(occurrence="r-stuck") == 2


def test_reject_token_answers_401_whatever_the_token(sim):
    status, answer = sim.shutdown("r-token", body())
    assert status == 401 and "detail" in answer
    status, answer = sim.shutdown("r-token", body(), token="any-other-token")
    assert status == 401
    entries = sim.log(occurrence="r-token", path="/v1/system/shutdown")
    assert [(e["event"], e["auth"]) for e in entries] == [("unauthorized", "bad"), ("unauthorized", "bad")]
    assert sim.log(occurrence="r-token", event="shutdown_requested") == []
    # health still answers (it needs no auth) and the agent keeps working
    assert sim.health("r-token")[0] == 200 and sim.phase("r-token") == "working"
    # the fleet's token does not leak into the log for it either
    assert TOKEN not in json.dumps(entries)
