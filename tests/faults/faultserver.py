# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small misbehaving agent server for the fault harness (issue 12).

One HTTP (or HTTPS) server on loopback serves many agents, each under its own path prefix
(``{url}/a/<name>``, the way a reverse proxy serves CIRIS agents), each with one *fault*: how it
answers the shutdown request and how it behaves after it, as its supervisor restarts it on the
version asked for (the ``none`` update driver). Every request is logged (agent, method, whether
the token was right, the body), so a test can tell who was asked how often.

Faults (``FAULTS``): ``ok``, ``read_timeout``, ``http_500``, ``busy_409``, ``unauthorized_401``,
``forbidden_403``, ``garbage_json``, ``endless_body``, ``crash_mid_update``, ``unhealthy_after_update``,
``flapping``, ``crash_after_start``, ``wrong_version``, ``never_stops``, ``echo_headers``; ``refused``
(nothing listens) and ``self_signed_tls`` (this server with a self-signed certificate) are what the
URL points at.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = (
    "ok", "read_timeout", "http_500", "busy_409", "unauthorized_401", "forbidden_403", "garbage_json",
    "endless_body", "crash_mid_update", "unhealthy_after_update", "flapping", "crash_after_start",
    "wrong_version", "never_stops", "echo_headers",
)
HEALTH = "/v1/system/health"
SHUTDOWN = "/v1/system/shutdown"
OLD_VERSION = "1.0.0"
# after accepting: draining (cognitive_state shutdown) this long, then down (503 from its proxy) this long,
# then its supervisor starts the version asked for
DRAIN_SECONDS = 0.2
DOWN_SECONDS = 0.8
# healthy probes a crash_after_start agent answers after starting, before it is gone for good
HEALTHY_BEFORE_CRASH = 2


class Agent:
    def __init__(self, name, fault):
        self.name = name
        self.fault = fault
        self.version = OLD_VERSION
        self.accepted_at = None
        self.target = None
        self.probes_after_start = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    # -- answers ---------------------------------------------------------------
    def _send(self, status, payload=None, raw=None, headers=()):
        body = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _health(self, agent, **data):
        out = {"status": "healthy", "version": agent.version, "cognitive_state": "work",
               "initialization_complete": True, "uptime_seconds": 1.0}
        out.update(data)
        self._send(200, {"data": out})

    def _hang(self):
        # answer nothing until the test ends (the client's read timeout and deadline cut it)
        self.server.stop_event.wait(60)
        self.close_connection = True

    def _endless(self):
        # the headers at once, then a byte now and then, for ever
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        try:
            while not self.server.stop_event.wait(0.2):
                self.wfile.write(b" ")
                self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    # -- routing ---------------------------------------------------------------
    def _route(self):
        parts = self.path.split("/")
        # /a/<name>/v1/system/...
        if len(parts) < 4 or parts[1] != "a":
            return None, None
        agent = self.server.agents.get(parts[2])
        return agent, "/" + "/".join(parts[3:])

    def _log(self, agent, method, path, body=None):
        auth = self.headers.get("Authorization")
        token = self.server.token
        with self.server.lock:
            self.server.log.append({"agent": agent.name, "method": method, "path": path, "t": time.monotonic(),
                                    "auth": "none" if auth is None else ("ok" if auth == "Bearer " + token else "bad"),
                                    "body": body})

    def do_GET(self):
        agent, path = self._route()
        if agent is None or path != HEALTH:
            return self._send(404, {"detail": "not found"})
        self._log(agent, "GET", path)
        fault = agent.fault
        if fault == "read_timeout":
            return self._hang()
        if fault == "endless_body":
            return self._endless()
        if agent.accepted_at is None or fault == "never_stops":
            return self._health(agent)
        since = time.monotonic() - agent.accepted_at
        if since < DRAIN_SECONDS:
            return self._health(agent, cognitive_state="shutdown")
        if since < DRAIN_SECONDS + DOWN_SECONDS or fault == "crash_mid_update":
            return self._send(503, {"detail": "backend down"})
        # started again by its supervisor
        agent.version = OLD_VERSION if fault == "wrong_version" else agent.target
        agent.probes_after_start += 1
        if fault == "unhealthy_after_update":
            return self._health(agent, status="degraded")
        if fault == "flapping" and agent.probes_after_start % 2 == 0:
            return self._health(agent, status="critical")
        if fault == "crash_after_start" and agent.probes_after_start > HEALTHY_BEFORE_CRASH:
            return self._send(503, {"detail": "backend down"})
        return self._health(agent)

    def do_POST(self):
        agent, path = self._route()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if agent is None or path != SHUTDOWN:
            return self._send(404, {"detail": "not found"})
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        self._log(agent, "POST", path, body)
        fault = agent.fault
        auth = self.headers.get("Authorization")
        if fault == "read_timeout":
            return self._hang()
        if fault == "endless_body":
            return self._endless()
        if fault == "unauthorized_401" or auth != "Bearer " + self.server.token:
            return self._send(401, {"detail": "invalid credentials"})
        if fault == "forbidden_403":
            return self._send(403, {"detail": "not an admin"})
        if fault == "http_500":
            return self._send(500, {"detail": "internal error"})
        if fault == "busy_409":
            return self._send(409, {"detail": "busy", "retry_after_ms": 600000})
        if fault == "garbage_json":
            return self._send(200, raw=b"{\"data\": {\"decision\": acc")
        if fault == "echo_headers":
            # a misconfigured proxy that puts the request's headers into its error page (and a header)
            return self._send(400, {"detail": "bad request (Authorization: %s), headers: %s"
                                              % (auth, json.dumps(dict(self.headers.items())))},
                              headers=(("X-Echo-Authorization", auth or ""),))
        if fault != "never_stops" and agent.accepted_at is None:
            agent.accepted_at = time.monotonic()
            agent.target = (body or {}).get("target_version")
        return self._send(200, {"data": {"decision": "accept", "reason": "ready"}})


class FaultServer:
    """``with FaultServer({"name": "fault", ...}, token) as srv``: ``srv.url_of(name)``, ``srv.posts(name)``."""

    def __init__(self, agents, token, tls=None):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.agents = dict((n, Agent(n, f)) for n, f in agents.items())
        self.server.token = token
        self.server.log = []
        self.server.lock = threading.Lock()
        self.server.stop_event = threading.Event()
        self.scheme = "http"
        if tls is not None:
            cert, key = tls
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(cert), str(key))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.stop_event.set()
        self.server.shutdown()
        self.server.server_close()

    @property
    def base(self):
        return "%s://127.0.0.1:%d" % (self.scheme, self.server.server_address[1])

    def url_of(self, name):
        return "%s/a/%s" % (self.base, name)

    def log(self, name=None, method=None):
        with self.server.lock:
            return [e for e in self.server.log if (name is None or e["agent"] == name)
                    and (method is None or e["method"] == method)]

    def posts(self, name=None):
        return self.log(name, "POST")


def self_signed(directory):
    """A self-signed certificate for 127.0.0.1 / localhost: ``(cert_path, key_path)``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agentfleet fault harness")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "agent.pem", directory / "agent.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
