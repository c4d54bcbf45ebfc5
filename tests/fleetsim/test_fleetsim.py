"""Functional tests of fleetsim: real HTTP against a started simulator."""

from __future__ import annotations

import functools
import http.client as httpclient
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from urllib.parse import urlsplit

import pytest

from fleetsim.config import ConfigError, build_fleet
from fleetsim.testing import FleetSim, http
import helpers

CONFIG = {
    "defaults": {"version": "1.0.0"},
    "agents": [
        {"count": 12, "name_prefix": "a-", "overrides": {
            "a-000": {"shutdown_exit_seconds": 0.3},
            "a-001": {"decision": "defer", "defer_seconds": 0.6},
            "a-002": {"decision": "reject", "decision_reason": "talking to a user"},
            "a-003": {"decision": "busy", "busy_retry_after_ms": 250},
            "a-004": {"decision": "noanswer"},
            "a-005": {"decision": "error"},
            "a-006": {"boot_seconds": 0.6},
            "a-007": {"unhealthy_after_update": True},
            "a-008": {"crash_after_update": True, "crash_seconds": 0.3},
            "a-009": {"garbage": True},
            "a-010": {"down": True},
            "a-011": {"stuck_on_shutdown": True},
        }},
        {"agent_id": "datum", "occurrences": 5, "deliberation": "accept",
         "overrides": {"occ-4": {"old_version_agent": True}}},
        {"agent_id": "sage", "occurrences": 3, "deliberation": "reject", "deliberation_reason": "not now"},
    ],
}
HEALTH_KEYS = {"status", "version", "cognitive_state", "initialization_complete", "uptime_seconds",
               "occurrence_id", "agent_id", "warnings", "degraded_mode"}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with FleetSim(CONFIG, workdir=tmp_path_factory.mktemp("fleet")) as s:
        yield s


def refused(sim, name):
    try:
        sim.health(name, timeout=2)
    except OSError:  # URLError wraps ConnectionRefusedError; both are OSError
        return True
    return False


wait_for = functools.partial(helpers.wait_for, timeout=3.0)


# ---------------------------------------------------------------------------- config (pure)

def test_config_expansion():
    specs = build_fleet({"agents": [{"agent_id": "datum", "occurrences": 3},
                                    {"count": 2, "name_prefix": "x-", "overrides": {"x-001": {"decision": "reject"}}}]})
    assert [s.name for s in specs] == ["datum-default", "datum-occ-1", "datum-occ-2", "x-000", "x-001"]
    assert specs[4].settings["decision"] == "reject" and specs[3].settings["decision"] == "accept"
    assert [s.name for s in build_fleet(None, count=3)] == ["agent-000", "agent-001", "agent-002"]
    spread = build_fleet(None, count=5, agents=2)
    assert [s.name for s in spread] == ["agent-000-default", "agent-000-occ-1", "agent-000-occ-2",
                                        "agent-001-default", "agent-001-occ-1"]
    with pytest.raises(ConfigError):
        build_fleet({"agents": [{"count": 2, "overrides": {"nope": {}}}]})
    with pytest.raises(ConfigError):
        build_fleet({"defaults": {"decisoin": "accept"}})
    with pytest.raises(ConfigError):
        build_fleet({"defaults": {"decision": "maybe"}})


# ---------------------------------------------------------------------------- one fleet, many behaviours

def test_health_shape(sim):
    status, body = sim.health("a-000")
    assert status == 200
    assert set(body["data"]) == HEALTH_KEYS
    d = body["data"]
    assert (d["status"], d["cognitive_state"], d["version"], d["initialization_complete"]) == \
        ("healthy", "work", "1.0.0", True)
    assert (d["agent_id"], d["occurrence_id"]) == ("a-000", "default")
    dummy, body = sim.health("datum-occ-3")
    assert (body["data"]["agent_id"], body["data"]["occurrence_id"]) == ("datum", "occ-3")


def test_inventory(sim):
    inv = sim.inventory()
    assert inv["all"]["vars"]["fleetsim_control_url"] == sim.control_url
    assert inv["all"]["vars"]["ansible_python_interpreter"] == "{{ ansible_playbook_python }}"
    hosts = inv["all"]["children"]["agents"]["hosts"]
    assert len(hosts) == 20
    h = hosts["datum-occ-3"]
    assert h["agent_id"] == "datum" and h["occurrence_id"] == "occ-3" and h["ansible_connection"] == "local"
    assert hosts["a-000"]["agent_url"].startswith("http://127.0.0.1:")
    assert hosts["a-000"]["occurrence_id"] == "default"


def test_accept_is_idempotent_then_shutdown_then_down_then_restart(sim):
    s1, b1 = sim.shutdown("a-000", {"deployment_id": "d-acc", "reason": "update", "target_version": "2.0.0"})
    assert s1 == 200 and b1["data"]["decision"] == "accept" and b1["data"]["decision_id"]
    s2, b2 = sim.shutdown("a-000", {"deployment_id": "d-acc"})
    assert s2 == 200 and b2["data"] == b1["data"]
    assert sim.health("a-000")[1]["data"]["cognitive_state"] == "shutdown"
    events = [e["event"] for e in sim.log(occurrence="a-000", path="/v1/system/shutdown")]
    assert events == ["deliberation", "repeat"]
    assert sim.deliberations(occurrence="a-000") == 1
    assert wait_for(lambda: refused(sim, "a-000"))
    assert sim.occurrence("a-000")["down_reason"] == "exited"
    sim.start(["a-000"], "2.0.0")
    status, body = sim.health("a-000")
    assert status == 200 and body["data"]["version"] == "2.0.0" and body["data"]["cognitive_state"] == "work"
    # asked again after the restart with the same deployment id: same answer, no second shutdown
    assert sim.shutdown("a-000", {"deployment_id": "d-acc"})[1]["data"]["decision"] == "accept"
    time.sleep(0.4)
    assert sim.health("a-000")[1]["data"]["cognitive_state"] == "work"


def test_reject_is_final(sim):
    s1, b1 = sim.shutdown("a-002", {"deployment_id": "d-rej"})
    assert s1 == 200 and b1["data"]["decision"] == "reject" and b1["data"]["reason"] == "talking to a user"
    s2, b2 = sim.shutdown("a-002", {"deployment_id": "d-rej"})
    assert b2["data"] == b1["data"]
    assert sim.deliberations(occurrence="a-002") == 1
    assert sim.health("a-002")[1]["data"]["cognitive_state"] == "work"


def test_defer_then_deliberates_again_after_defer_until(sim):
    s1, b1 = sim.shutdown("a-001", {"deployment_id": "d-def"})
    assert s1 == 200 and b1["data"]["decision"] == "defer"
    until = datetime.fromisoformat(b1["data"]["defer_until"])
    assert until.utcoffset().total_seconds() == 0
    dummy, b2 = sim.shutdown("a-001", {"deployment_id": "d-def"})
    assert b2["data"]["decision"] == "defer" and b2["data"]["defer_until"] == b1["data"]["defer_until"]
    time.sleep(0.7)
    dummy, b3 = sim.shutdown("a-001", {"deployment_id": "d-def"})
    assert b3["data"]["decision"] == "accept"
    events = [e["event"] for e in sim.log(occurrence="a-001", path="/v1/system/shutdown")]
    assert events == ["deliberation", "repeat", "deliberation"]


def test_busy_noanswer_error(sim):
    status, body = sim.shutdown("a-003", {"deployment_id": "d-b"})
    assert status == 409 and body["retry_after_ms"] == 250
    status, body = sim.shutdown("a-004", {"deployment_id": "d-n"})
    assert status == 200 and "decision" not in body["data"]
    status, body = sim.shutdown("a-005", {"deployment_id": "d-e"})
    assert status == 500 and "detail" in body
    assert [e["event"] for e in sim.log(occurrence="a-003")][-1] == "busy"


def test_boot_wakeup_then_work(sim):
    sim.start(["a-006"], "2.0.0")
    d = sim.health("a-006")[1]["data"]
    assert (d["cognitive_state"], d["status"], d["initialization_complete"], d["version"]) == \
        ("wakeup", "initializing", False, "2.0.0")
    time.sleep(0.7)
    d = sim.health("a-006")[1]["data"]
    assert (d["cognitive_state"], d["status"], d["initialization_complete"]) == ("work", "healthy", True)


def test_unhealthy_after_update(sim):
    sim.start(["a-007"], "2.0.0")
    assert sim.health("a-007")[1]["data"]["status"] == "degraded"
    sim.start(["a-007"], "1.0.0")  # rollback to the original version: healthy again
    assert sim.health("a-007")[1]["data"]["status"] == "healthy"
    sim.configure("a-007", unhealthy_mode="stuck_wakeup")
    sim.start(["a-007"], "2.0.0")
    assert sim.health("a-007")[1]["data"]["cognitive_state"] == "wakeup"


def test_crash_after_update(sim):
    sim.start(["a-008"], "2.0.0")
    assert sim.health("a-008")[0] == 200
    assert wait_for(lambda: refused(sim, "a-008"))
    assert sim.occurrence("a-008")["down_reason"] == "crashed"


def test_garbage_down_stuck_and_configure(sim):
    status, body = sim.health("a-009")
    assert status == 200 and isinstance(body, str)
    sim.configure("a-009", garbage=False)
    assert sim.health("a-009")[1]["data"]["status"] == "healthy"
    assert refused(sim, "a-010")
    sim.configure("a-010", down=False)
    assert sim.health("a-010")[0] == 200
    assert sim.shutdown("a-011", {"deployment_id": "d-s"})[1]["data"]["decision"] == "accept"
    time.sleep(0.4)
    assert sim.health("a-011")[1]["data"]["cognitive_state"] == "work"


def test_per_occurrence_sim_endpoints(sim):
    url = sim.url("a-005")
    status, st = http("GET", url + "/_sim/status")
    assert status == 200 and st["name"] == "a-005"
    status, st = http("POST", url + "/_sim/start", {"version": "3.0.0"})
    assert status == 200 and st["version"] == "3.0.0" and st["up"]


def test_multi_occurrence_shared_decision(sim):
    body = {"deployment_id": "d-multi", "scope": "all_occurrences", "target_version": "2.0.0", "reason": "upd"}
    status, b1 = sim.shutdown("datum-default", body)
    assert status == 200 and b1["data"]["decision"] == "accept"
    ref = b1["data"]["decision_id"]
    assert sim.shutdown("datum-default", body)[1]["data"]["decision_id"] == ref
    for occ in ("occ-1", "occ-2", "occ-3"):
        status, b = sim.shutdown(f"datum-{occ}", {"deployment_id": "d-multi", "decision_ref": ref})
        assert status == 200 and b["data"]["decision"] == "accept" and b["data"]["decision_id"] == ref
    dummy, b = sim.shutdown("datum-occ-4", {"deployment_id": "d-multi", "decision_ref": ref})
    assert b["data"]["decision"] == "accept" and b["data"]["decision_id"] != ref
    entries = sim.log(agent_id="datum", path="/v1/system/shutdown")
    assert [(e["occurrence_id"], e["event"]) for e in entries] == [
        ("default", "deliberation"), ("default", "repeat"), ("occ-1", "complied"), ("occ-2", "complied"),
        ("occ-3", "complied"), ("occ-4", "deliberation")]
    assert sim.deliberations(agent_id="datum") == 2
    db = sqlite3.connect(str(sim.state_dir / "datum.db"))
    rows = db.execute("SELECT agent_occurrence_id, status, outcome FROM tasks WHERE task_id='shutdown_d-multi'").fetchall()
    assert rows[0][:2] == ("__shared__", "COMPLETED")
    assert json.loads(rows[0][2])["decision_id"] == ref
    assert wait_for(lambda: all(refused(sim, f"datum-{o}") for o in ("default", "occ-1", "occ-2", "occ-3")))


def test_multi_occurrence_reject_means_nobody_shuts_down(sim):
    dummy, b = sim.shutdown("sage-default", {"deployment_id": "d-sage", "scope": "all_occurrences"})
    assert b["data"]["decision"] == "reject" and b["data"]["reason"] == "not now"
    dummy, b2 = sim.shutdown("sage-occ-1", {"deployment_id": "d-sage", "decision_ref": b["data"]["decision_id"]})
    assert b2["data"]["decision"] == "reject"
    time.sleep(0.3)
    for o in ("default", "occ-1"):
        assert sim.health(f"sage-{o}")[1]["data"]["cognitive_state"] == "work"
    assert sim.deliberations(agent_id="sage") == 1


def test_log_file_jsonl(sim):
    # a request of its own: the module's fleet is shared, and this test may run first (xdist, -k)
    sim.health("a-002")
    lines = sim.log_path.read_text().splitlines()
    entry = json.loads(lines[0])
    for key in ("seq", "ts", "iso", "occurrence", "agent_id", "method", "path", "status", "auth", "body",
                "decision", "event"):
        assert key in entry
    since = sim.log()[-1]["seq"]
    sim.health("a-002")
    assert [e["occurrence"] for e in sim.log(since=since)] == ["a-002"]


# ---------------------------------------------------------------------------- token

def test_token(tmp_path):
    secret = "tok-S3cret-value"
    with FleetSim(count=2, token=secret, workdir=tmp_path) as sim:
        assert sim.health("agent-000")[0] == 200
        status, body = sim.shutdown("agent-000", {"deployment_id": "d1", "note": secret}, token="nope")
        assert status == 401 and "detail" in body
        url = sim.url("agent-000")
        assert http("POST", url + "/v1/system/shutdown", {"deployment_id": "d1"})[0] == 401
        status, body = sim.shutdown("agent-000", {"deployment_id": "d1", "token": secret})
        assert status == 200 and body["data"]["decision"] == "accept"
        auths = [e["auth"] for e in sim.log(path="/v1/system/shutdown")]
        assert auths == ["bad", "none", "ok"]
        dump = json.dumps(sim.log()) + sim.log_path.read_text() + sim.inventory_path.read_text()
        assert secret not in dump


# ---------------------------------------------------------------------------- paths layout

def test_paths_layout(tmp_path):
    cfg = {"agents": [{"count": 3, "overrides": {"agent-002": {"down": True}}},
                      {"agent_id": "datum", "occurrences": 2}]}
    with FleetSim(cfg, layout="paths", workdir=tmp_path) as sim:
        hosts = sim.hosts()
        url = hosts["agent-000"]["agent_url"]
        assert url.endswith("/api/agent-000")
        assert hosts["datum-occ-1"]["agent_url"].endswith("/api/datum-occ-1")
        assert len({urlsplit(h["agent_url"]).port for h in hosts.values()}) == 1
        assert http("GET", url + "/v1/system/health")[1]["data"]["agent_id"] == "agent-000"
        assert http("GET", hosts["agent-002"]["agent_url"] + "/v1/system/health")[0] == 502
        assert http("POST", url + "/v1/system/shutdown", {"deployment_id": "d"})[1]["data"]["decision"] == "accept"
        assert wait_for(lambda: http("GET", url + "/v1/system/health")[0] == 502)
        status, st = http("POST", url + "/_sim/start", {"version": "2.0.0"})
        assert status == 200 and st["up"]
        assert http("GET", url + "/v1/system/health")[1]["data"]["version"] == "2.0.0"


# ---------------------------------------------------------------------------- scale

def _health_all(urls, workers=32):
    def worker(chunk):
        conns, codes = {}, []
        for u in chunk:
            parts = urlsplit(u)
            key = (parts.hostname, parts.port)
            conn = conns.get(key)
            if conn is None:
                conn = conns[key] = httpclient.HTTPConnection(*key, timeout=10)
            conn.request("GET", parts.path + "/v1/system/health")
            resp = conn.getresponse()
            json.loads(resp.read())
            codes.append(resp.status)
        for c in conns.values():
            c.close()
        return codes

    chunks = [urls[i::workers] for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        return [c for codes in pool.map(worker, chunks) for c in codes]


def test_2000_occurrences_ports_layout(tmp_path):
    t0 = time.monotonic()
    with FleetSim(count=2000, workdir=tmp_path) as sim:
        startup = time.monotonic() - t0
        hosts = sim.hosts()
        assert len(hosts) == 2000
        urls = [h["agent_url"] for h in hosts.values()]
        t1 = time.monotonic()
        codes = _health_all(urls)
        elapsed = time.monotonic() - t1
        assert codes == [200] * 2000
        # two rounds over the same keep-alive-able connections
        print(f"\n2000 ports: startup {startup:.2f}s, health of all {elapsed:.2f}s")
        assert elapsed < 15


def test_5000_occurrences_paths_layout(tmp_path):
    t0 = time.monotonic()
    with FleetSim(count=5000, layout="paths", workdir=tmp_path) as sim:
        startup = time.monotonic() - t0
        urls = [h["agent_url"] for h in sim.hosts().values()]
        t1 = time.monotonic()
        codes = _health_all(urls)
        elapsed = time.monotonic() - t1
        assert codes == [200] * 5000
        print(f"\n5000 paths: startup {startup:.2f}s, health of all {elapsed:.2f}s")
        assert startup < 15


# ---------------------------------------------------------------------------- slow answers, clean exit

def test_slow_ms_and_sigterm_exit(tmp_path):
    cfg = {"agents": [{"count": 2, "overrides": {"agent-001": {"slow_ms": 300}}},
                      {"agent_id": "busy", "decision": "busy", "busy_times": 1, "busy_retry_after_ms": 10}]}
    sim = FleetSim(cfg, workdir=tmp_path).start()
    try:
        t0 = time.monotonic()
        assert sim.health("agent-000")[0] == 200
        fast = time.monotonic() - t0
        t0 = time.monotonic()
        assert sim.health("agent-001")[0] == 200
        assert time.monotonic() - t0 >= 0.3 > fast
        assert sim.shutdown("busy", {"deployment_id": "d"})[0] == 409
        status, body = sim.shutdown("busy", {"deployment_id": "d"})
        assert status == 200 and body["data"]["decision"] == "accept"
        assert [e["event"] for e in sim.log(occurrence="busy", path="/v1/system/shutdown")] == ["busy", "deliberation"]
    finally:
        sim.close()
    assert sim.proc.returncode == 0


# ---------------------------------------------------------------------------- ports below the ephemeral range

def test_agent_ports_are_below_the_ephemeral_range_and_a_taken_range_is_tried_again(tmp_path, monkeypatch):
    """An agent closes its port while it restarts; in the ephemeral range (32768+) a client socket could take it
    meanwhile and the agent would refuse connections for good (the refused-port flakes of test_2000_occurrences,
    test_canary, test_crash). FleetSim takes a random range below it and tries another one when a port is taken."""
    import random
    import socket

    from fleetsim import testing

    taken = None
    # a port below the ephemeral range, held like another process's listener: the first range tried starts
    # just below it
    for port in range(21001, 31000, 97):
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port + 1))
            sock.listen()
            taken = sock
            break
        except OSError:
            sock.close()
    assert taken is not None
    bases = iter([port, port + 200])
    monkeypatch.setattr(random, "randrange", lambda lo, hi: next(bases))
    try:
        with FleetSim(count=3, workdir=tmp_path / "sim") as sim:
            ports = sorted(urlsplit(h["agent_url"]).port for h in sim.hosts().values())
            assert ports == [port + 200, port + 201, port + 202], ports
            assert all(p < testing.LOW_PORTS[1] for p in ports)
            assert sim.health("agent-000")[0] == 200
    finally:
        taken.close()
