# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AgentClient on urllib3 against real local servers: mutual TLS, proxies from the
environment, connect retries, ask() after a failure after sending, the request
deadline against a trickling server, and the token kept out of every message."""

from __future__ import annotations

import datetime
import json
import select
import socket
import socketserver
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils import _protocol
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.errors import TransportError
from helpers import FakeAgent, free_port


# ---------------------------------------------------------------- servers
@pytest.fixture
def agent():
    servers = []

    def make(**kw):
        srv = FakeAgent(**kw)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


# ---------------------------------------------------------------- TLS material
@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with cryptography."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    d = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key, path):
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("test CA")).issuer_name(name("test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(cn, usage, san=None):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        (d / (cn + ".pem")).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(key, d / (cn + ".key"))

    leaf("server", ExtendedKeyUsageOID.SERVER_AUTH,
         [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH)
    return d


def server_context(pki, require_client_cert=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki / "server.pem"), str(pki / "server.key"))
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(str(pki / "ca.pem"))
    return ctx


def test_tls_verified_against_ca_path(agent, pki):
    srv = agent(context=server_context(pki))
    with AgentClient(connect_retries=0) as client:
        with pytest.raises(TransportError) as err:
            client.request("GET", srv.url + "/v1/system/health")
        assert err.value.kind == "tls" and not err.value.sent
    with AgentClient(ca_path=str(pki / "ca.pem")) as client:
        assert client.probe(srv.url)["healthy"]


def test_mutual_tls_with_client_certificate(agent, pki):
    srv = agent(context=server_context(pki, require_client_cert=True))
    with AgentClient(ca_path=str(pki / "ca.pem"), connect_retries=0) as client:
        with pytest.raises(TransportError) as err:
            client.request("GET", srv.url + "/v1/system/health")
        assert err.value.kind in ("tls", "reset")  # TLS 1.3: the server's alert may come as a reset
    with AgentClient(ca_path=str(pki / "ca.pem"), client_cert=str(pki / "client.pem"),
                     client_key=str(pki / "client.key")) as client:
        assert client.probe(srv.url)["healthy"]
        assert client.ask(srv.url, {"deployment_id": "d-m", "reason": "r", "confirm": True})["decision"] == "accept"


def test_client_certificate_errors_name_the_option(pki):
    with pytest.raises(ValueError, match="client_cert"):
        AgentClient(client_cert=str(pki / "missing.pem"))
    with pytest.raises(ValueError, match="client_key"):
        AgentClient(client_key=str(pki / "client.key"))


# ---------------------------------------------------------------- proxies
class Proxy(BaseHTTPRequestHandler):
    """A tiny forwarding proxy: absolute-form requests are forwarded, CONNECT is tunnelled."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _forward(self):
        self.server.seen.append((self.command, self.path))
        from urllib.parse import urlsplit
        import http.client

        target = urlsplit(self.path)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = dict((k, v) for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection"))
        conn.request(self.command, target.path or "/", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = _forward

    def do_CONNECT(self):
        self.server.seen.append(("CONNECT", self.path))
        host, port = self.path.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)), timeout=10)
        self.send_response(200, "Connection established")
        self.end_headers()
        socks = [self.connection, upstream]
        try:
            while True:
                ready = select.select(socks, [], [], 10)[0]
                if not ready:
                    break
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (upstream if s is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()
            self.close_connection = True


@pytest.fixture
def proxy():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    srv.daemon_threads = True
    srv.seen = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def clean_proxy_env(monkeypatch):
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    return monkeypatch


def test_http_proxy_from_the_environment_and_no_proxy(agent, proxy, clean_proxy_env):
    srv = agent()
    clean_proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:%d" % proxy.server_address[1])
    with AgentClient(token="t") as client:
        assert client.probe(srv.url + "/api/datum")["healthy"]
        assert client.ask(srv.url + "/api/datum", {"deployment_id": "d-p", "reason": "r"})["decision"] == "accept"
    assert ("GET", srv.url + "/api/datum/v1/system/health") in proxy.seen
    assert ("POST", srv.url + "/api/datum/v1/system/shutdown") in proxy.seen
    seen_by_proxy = len(proxy.seen)
    clean_proxy_env.setenv("NO_PROXY", "localhost,127.0.0.1")
    with AgentClient() as client:
        assert client.probe(srv.url)["healthy"]
    assert len(proxy.seen) == seen_by_proxy  # bypassed
    assert ("GET", "/v1/system/health") in [s[:2] for s in srv.seen]


def test_https_proxy_tunnels_with_connect(agent, proxy, pki, clean_proxy_env):
    srv = agent(context=server_context(pki))
    clean_proxy_env.setenv("HTTPS_PROXY", "http://127.0.0.1:%d" % proxy.server_address[1])
    with AgentClient(ca_path=str(pki / "ca.pem")) as client:
        assert client.probe(srv.url)["healthy"]
    assert proxy.seen == [("CONNECT", "127.0.0.1:%d" % srv.server_address[1])]


def test_unreachable_proxy_is_a_proxy_failure_not_a_stopped_agent(agent, clean_proxy_env):
    srv = agent()
    clean_proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:%d" % free_port())
    with AgentClient(connect_retries=0) as client:
        with pytest.raises(TransportError) as err:
            client.request("GET", srv.url + "/v1/system/health")
        assert err.value.kind == "proxy" and not err.value.sent
        assert client.liveness(srv.url)[0] == _protocol.NO_ANSWER


# ---------------------------------------------------------------- retries
def test_refused_is_retried_with_backoff_until_the_agent_listens():
    port = free_port()
    servers = []
    pauses = []

    def pause(seconds):
        pauses.append(seconds)
        if len(pauses) == 3:  # the agent comes up while the client backs off
            servers.append(FakeAgent(port=port))

    try:
        with AgentClient(connect_retries=4, retry_delay=0.1, sleep=pause, jitter=lambda: 0.5) as client:
            answer = client.ask("http://127.0.0.1:%d" % port, {"deployment_id": "d-r", "reason": "r"})
        assert answer["decision"] == "accept" and not answer["resent"]
        assert pauses == pytest.approx([0.1, 0.2, 0.4])  # exponential (jitter pinned to the middle)
        assert [s[0] for s in servers[0].seen] == ["POST"]
    finally:
        for srv in servers:
            srv.stop()


def test_connect_retries_are_bounded_in_count_and_time():
    port = free_port()
    pauses = []
    with AgentClient(connect_retries=3, sleep=pauses.append, jitter=lambda: 0.5) as client:
        answer = client.ask("http://127.0.0.1:%d" % port, {"deployment_id": "d"})
    assert answer["decision"] == "unreachable" and "refused" in answer["reason"] and len(pauses) == 3
    pauses = []
    started = time.monotonic()
    with AgentClient(connect_retries=10, retry_delay=0.1, retry_deadline=0.5, jitter=lambda: 0.5,
                     sleep=lambda s: (pauses.append(s), time.sleep(s))) as client:
        with pytest.raises(TransportError) as err:
            client.request("GET", "http://127.0.0.1:%d/" % port, connect_retries=None)
    assert err.value.kind == "refused" and not err.value.sent
    assert pauses == pytest.approx([0.1, 0.2]) and time.monotonic() - started < 2.0


class SlowAcceptServer(socketserver.ThreadingTCPServer):
    """One listener with a backlog of 8 whose accept loop takes its time."""

    request_queue_size = 8
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), SlowAcceptHandler)
        self.posts = 0
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)
        self.thread.start()

    def accept_loop(self):
        while not self.stop_event.is_set():
            if select.select([self.socket], [], [], 0.1)[0]:
                self._handle_request_noblock()
                self.stop_event.wait(0.003)  # a slow accept loop: the backlog overflows under a burst


class SlowAcceptHandler(socketserver.StreamRequestHandler):
    def handle(self):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            head += chunk
        header, _sep, rest = head.partition(b"\r\n\r\n")
        length = 0
        for line in header.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        while len(rest) < length:
            rest += self.request.recv(65536)
        with self.server.lock:
            self.server.posts += 1
        body = b'{"data": {"decision": "accept"}}'
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


def test_burst_against_a_small_backlog_every_ask_gets_an_answer():
    srv = SlowAcceptServer()
    try:
        url = "http://127.0.0.1:%d" % srv.server_address[1]
        # a generous read timeout: the test is about connects lost to the backlog, not about a loaded machine's
        # slow handler threads (read timeouts under load made it fail once in a while)
        with AgentClient(max_workers=128, connect_timeout=2.0, read_timeout=60.0, retry_deadline=30.0,
                         connect_retries=6) as client:
            answers = client.fan_out(lambda i: client.ask(url, {"deployment_id": "d-burst", "reason": "r%d" % i}),
                                     range(520))
        assert [a["decision"] for a in answers].count("accept") == 520, [a for a in answers if a["decision"] != "accept"][:3]
        assert srv.posts >= 520
    finally:
        srv.stop_event.set()
        srv.thread.join(5)
        srv.server_close()


# ---------------------------------------------------------------- ask() after sending
BODY = {"deployment_id": "d-ask", "reason": "update", "confirm": True}


def test_ask_reset_after_sending_and_agent_draining_is_pending(agent):
    srv = agent(behaviour={"post": "reset_first_then_drain"})
    with AgentClient() as client:
        answer = client.ask(srv.url, BODY)
    assert answer["decision"] == _protocol.PENDING and not answer["resent"]
    assert "draining" in answer["reason"] and "connection lost" in answer["reason"]
    assert [s[0] for s in srv.seen] == ["POST", "GET"]


def test_ask_reset_after_sending_and_agent_stopped_is_pending(agent):
    srv = agent(behaviour={"post": "reset_and_stop"})
    with AgentClient() as client:
        answer = client.ask(srv.url, BODY)
    assert answer["decision"] == _protocol.PENDING and not answer["resent"]
    assert "stopped" in answer["reason"] and "refused" in answer["reason"]
    assert [s[0] for s in srv.seen] == ["POST"]


def test_ask_reset_after_sending_and_agent_working_asks_once_more(agent):
    srv = agent(behaviour={"post": "reset_first"})
    with AgentClient() as client:
        answer = client.ask(srv.url, BODY)
    assert answer["decision"] == "accept" and answer["resent"] is True
    assert "same deployment_id" in answer["note"]
    posts = [s.body for s in srv.seen if s.method == "POST"]
    assert len(posts) == 2 and posts[0] == posts[1] == BODY
    assert [s[0] for s in srv.seen] == ["POST", "GET", "POST"]


def test_ask_never_sends_a_third_time(agent):
    srv = agent(behaviour={"post": "reset"})
    with AgentClient() as client:
        answer = client.ask(srv.url, BODY)
    assert answer["decision"] == "unreachable" and answer["resent"] is True
    assert len([s for s in srv.seen if s[0] == "POST"]) == 2


def test_ask_timeout_after_sending_and_no_health_answer_is_unreachable(agent):
    srv = agent(behaviour={"post": "hang", "health": "hang"})
    with AgentClient(read_timeout=0.3) as client:
        answer = client.ask(srv.url, BODY)
    assert answer["decision"] == "unreachable" and not answer["resent"]
    assert "read timeout" in answer["reason"]
    assert len([s for s in srv.seen if s[0] == "POST"]) == 1


def test_forced_ask_that_times_out_is_pending_without_probing(agent):
    srv = agent(behaviour={"post": "hang"})
    with AgentClient(read_timeout=0.3) as client:
        answer = client.ask(srv.url, dict(BODY, force=True))
    assert answer["decision"] == _protocol.PENDING and "forced" in answer["reason"]
    assert [s[0] for s in srv.seen] == ["POST"]


def test_shutdown_keeps_its_one_shot_meaning(agent):
    srv = agent(behaviour={"post": "reset_first"})
    with AgentClient() as client:
        answer = client.shutdown(srv.url, BODY)
    assert answer["decision"] == "unreachable" and "connection lost" in answer["reason"]
    assert [s[0] for s in srv.seen] == ["POST"]


# ---------------------------------------------------------------- deadline
class Trickle(socketserver.StreamRequestHandler):
    def handle(self):
        self.request.recv(65536)
        answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
                  + b" " * 400)
        stop = self.server.stop_event
        for i in range(len(answer)):
            if stop.wait(0.05):
                return
            try:
                self.request.sendall(answer[i:i + 1])
            except OSError:
                return


@pytest.mark.parametrize("skip_headers", [False, True])
def test_trickling_server_is_cut_off_at_the_deadline(skip_headers):
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Trickle)
    srv.daemon_threads = True
    srv.stop_event = threading.Event()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        with AgentClient(read_timeout=1.0, request_deadline=0.8) as client:
            if skip_headers:
                probe = client.probe("http://127.0.0.1:%d" % srv.server_address[1])
                assert not probe["healthy"] and "deadline" in probe["cause"]
            else:
                with pytest.raises(TransportError) as err:
                    client.request("GET", "http://127.0.0.1:%d/v1/system/health" % srv.server_address[1])
                assert err.value.kind == "timeout" and err.value.sent and "deadline" in str(err.value)
        assert time.monotonic() - started < 3.0  # ~0.8 s; the trickle alone would take 20 s
    finally:
        srv.stop_event.set()
        srv.shutdown()
        srv.server_close()


# ---------------------------------------------------------------- secrets
def test_token_with_a_newline_is_refused_without_echoing_it():
    secret = "s3cr3t-value"
    with pytest.raises(ValueError) as err:
        AgentClient(token=secret + "\n")
    assert "token" in str(err.value) and secret not in str(err.value) and secret not in repr(err.value)
    with pytest.raises(ValueError) as err:
        AgentClient(token=secret + "\u2603")
    assert secret not in str(err.value) and "\u2603" not in str(err.value)


def test_token_never_in_transport_errors(agent):
    secret = "s3cr3t-value"
    srv = agent(behaviour={"post": "hang", "health": "hang"})
    messages = []
    with AgentClient(token=secret, read_timeout=0.3, connect_retries=0) as client:
        for url in (srv.url, "http://127.0.0.1:%d" % free_port(), "ftp://x", "http://"):
            try:
                client.request("GET", url + "/v1/system/health")
            except TransportError as exc:
                messages.append("%s %r %s" % (exc, exc, exc.__cause__))
        answer = client.ask(srv.url, BODY)
        messages.append(json.dumps(answer))
    assert len(messages) == 5
    assert not [m for m in messages if secret in m]


def test_ecs_health_check_uses_the_client_and_follows_redirects(agent):
    from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import service

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", target.url + "/v1/system/health")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    target = agent()
    front = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=front.serve_forever, daemon=True).start()
    try:
        get = service.default_http_get()
        assert get("http://127.0.0.1:%d/health" % front.server_address[1], 2) == 200
        assert target.seen and target.seen[0][:2] == ("GET", "/v1/system/health")
        assert "refused" in get("http://127.0.0.1:%d/health" % free_port(), 2)
    finally:
        front.shutdown()
        front.server_close()
