"""AgentClient against real local HTTP(S) servers: TLS verification, timeouts,
keep-alive reuse, retry rules and the token header."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = []

    def log_message(self, *args):
        pass

    def _send(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.seen.append(("GET", self.path, self.headers.get("Authorization"), self.client_address[1]))
        if self.path.endswith("/slow/v1/system/health"):
            time.sleep(1.0)
        self._send(200, {"data": {"status": "healthy", "cognitive_state": "work", "version": "2.0.0"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.seen.append(("POST", self.path, self.headers.get("Authorization"), body))
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        self._send(200, {"data": {"decision": "accept"}})


def serve(context=None):
    Handler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture
def http_server():
    server = serve()
    yield "http://127.0.0.1:%d/api/datum" % server.server_address[1]
    server.shutdown()


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
    yield "https://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


def test_path_prefix_token_and_keep_alive(http_server):
    with AgentClient(token="t0k3n") as client:
        for _attempt in range(3):
            assert client.probe(http_server)["healthy"]
        answer = client.shutdown(http_server, {"deployment_id": "d-1", "reason": "r"})
    assert answer["decision"] == "accept"
    gets = [s for s in Handler.seen if s[0] == "GET"]
    assert {s[1] for s in gets} == {"/api/datum/v1/system/health"}
    assert len({s[3] for s in gets}) == 1  # one connection reused for every probe
    post = [s for s in Handler.seen if s[0] == "POST"][0]
    assert post[1] == "/api/datum/v1/system/shutdown" and post[2] == "Bearer t0k3n"
    assert post[3]["deployment_id"] == "d-1"


def test_tls_is_verified_by_default(https_server, cert):
    with AgentClient() as client:
        probe = client.probe(https_server)
        assert not probe["healthy"] and "TLS" in probe["cause"]
        assert client.shutdown(https_server, {"deployment_id": "d"})["decision"] == "unreachable"
    with AgentClient(ca_path=str(cert[0])) as client:
        assert client.probe(https_server)["healthy"]
    with AgentClient(validate_certs=False) as client:
        assert client.probe(https_server)["healthy"]


def test_read_timeout_is_a_cause_and_a_timed_out_shutdown_is_not_retried(http_server):
    with AgentClient(read_timeout=0.2) as client:
        probe = client.probe(http_server.replace("/api/datum", "/slow"))
        answer = client.shutdown(http_server.replace("/api/datum", "/slow"), {"deployment_id": "d"})
    assert not probe["healthy"] and "read timeout" in probe["cause"]
    assert answer["decision"] == "unreachable" and "read timeout" in answer["reason"]
    assert len([s for s in Handler.seen if s[0] == "POST"]) == 1  # it may have reached the agent: never sent again


def test_refused_connection_is_retried_then_unreachable():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
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
        urls = ["http://127.0.0.1:%d" % srv.server_address[1] for srv in servers]
        with AgentClient(max_workers=2) as client:
            for _round in range(2):
                assert all(r["healthy"] for r in client.fan_out(client.probe, urls))
            assert 0 < len(_open_sockets(client)) <= 2 * transport_client.IDLE_PER_WORKER
        assert not _open_sockets(client)
    finally:
        for srv in servers:
            srv.shutdown()
