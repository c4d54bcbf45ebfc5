"""AgentClient against real local HTTP(S) servers: TLS verification, timeouts,
keep-alive reuse, retry rules and the token header."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
from helpers import FakeAgent, free_port


def slow_under_slow(seen, handler):
    """An agent behind /slow takes a second to answer (health and shutdown); the others answer at once."""
    del handler
    if seen.method == "GET" and seen.path.endswith("/slow/v1/system/health") or \
            seen.method == "POST" and seen.path.startswith("/slow"):
        time.sleep(1.0)
    return None


def serve(context=None):
    return FakeAgent(behaviour={"version": "2.0.0"}, context=context, answer=slow_under_slow)


@pytest.fixture
def agent():
    server = serve()
    yield server
    server.stop()


@pytest.fixture
def http_server(agent):
    return agent.url + "/api/datum"


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")], check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


@pytest.fixture
def https_server(cert):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    server = serve(ctx)
    yield server.url
    server.stop()


def test_path_prefix_token_and_keep_alive(http_server, agent):
    with AgentClient(token="t0k3n") as client:
        for _attempt in range(3):
            assert client.probe(http_server)["healthy"]
        answer = client.shutdown(http_server, {"deployment_id": "d-1", "reason": "r"})
    assert answer["decision"] == "accept"
    gets = [s for s in agent.seen if s.method == "GET"]
    assert {s.path for s in gets} == {"/api/datum/v1/system/health"}
    assert len({s.port for s in gets}) == 1  # one connection reused for every probe
    post = [s for s in agent.seen if s.method == "POST"][0]
    assert post.path == "/api/datum/v1/system/shutdown" and post.auth == "Bearer t0k3n"
    assert post.body["deployment_id"] == "d-1"


def test_tls_is_verified_by_default(https_server, cert):
    with AgentClient() as client:
        probe = client.probe(https_server)
        assert not probe["healthy"] and "TLS" in probe["cause"]
        assert client.shutdown(https_server, {"deployment_id": "d"})["decision"] == "unreachable"
    with AgentClient(ca_path=str(cert[0])) as client:
        assert client.probe(https_server)["healthy"]
    with AgentClient(validate_certs=False) as client:
        assert client.probe(https_server)["healthy"]


def test_read_timeout_is_a_cause_and_a_timed_out_shutdown_is_not_retried(http_server, agent):
    with AgentClient(read_timeout=0.2) as client:
        probe = client.probe(http_server.replace("/api/datum", "/slow"))
        answer = client.shutdown(http_server.replace("/api/datum", "/slow"), {"deployment_id": "d"})
    assert not probe["healthy"] and "read timeout" in probe["cause"]
    assert answer["decision"] == "unreachable" and "read timeout" in answer["reason"]
    assert len([s for s in agent.seen if s.method == "POST"]) == 1  # it may have reached the agent: never sent again


def test_refused_connection_is_retried_then_unreachable():
    port = free_port()  # nothing listens there now
    sleeps = []
    client = AgentClient(connect_retries=2, sleep=sleeps.append)
    answer = client.shutdown("http://127.0.0.1:%d" % port, {"deployment_id": "d"})
    assert answer["decision"] == "unreachable" and "refused" in answer["reason"]
    assert len(sleeps) == 2  # refused before sending: retried, always with the same body


def _open_sockets(client):
    socks = []
    for pool in list(client._pools.values()):
        if pool.pool is not None:
            socks.extend(c for c in list(pool.pool.queue) if c is not None and c.sock is not None)
    return socks


def test_open_connections_stay_bounded_however_many_agents():
    from ansible_collections.agentfleet.rollout.plugins.module_utils._transport import client as transport_client

    servers = [serve() for _index in range(20)]
    try:
        urls = [srv.url for srv in servers]
        with AgentClient(max_workers=2) as client:
            for _round in range(2):
                assert all(r["healthy"] for r in client.fan_out(client.probe, urls))
            assert 0 < len(_open_sockets(client)) <= 2 * transport_client.IDLE_PER_WORKER
        assert not _open_sockets(client)
    finally:
        for srv in servers:
            srv.stop()
