# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small CIRISManager stand-in for the tests, served on loopback (HTTP or HTTPS).

It follows the CD API of CIRISManager's documentation (seed 000): ``POST /manager/v1/updates/notify``
with the fields ``agent_image``, ``gui_image``, ``strategy`` (canary | immediate | manual), ``source``,
``commit_sha``, ``message``, ``metadata`` - any other field, a wrong type or no image is a 422 - and
``GET /manager/v1/updates/status[?deployment_id=]``, both answering a deployment status with exactly the
documented fields (``deployment_id``, ``status``, ``agents_total``, ``agents_updated``, ``agents_deferred``,
``agents_rejected``, ``started_at``, ``canary_phase``, ``message``). Like the real manager (FastAPI):
a missing or wrong ``Authorization: Bearer`` token is a 401 with ``{"detail": ...}``, a notify while a
deployment is in progress a 409 ``{"detail": "Deployment <id> already in progress"}``, and a status
request for an unknown or absent deployment answers ``null``.

A deployment advances with time, computed from its age on each request (no threads): a canary runs the
phases explorers, early_adopters, general (those with agents), ``phase_seconds`` each; at the end of a
phase its agents are counted by their scripted outcome (accept -> updated, defer, reject; fail -> none
of those). As in CIRISManager, a phase passes when at least one of its agents is stable (an ``accept``):
an explorer or early-adopter phase without one fails the deployment; the general phase never does.
``immediate`` runs one phase with every agent and fails if any agent fails; ``manual`` stays ``pending``.

``echo_auth=True`` makes the stand-in misbehave like a careless proxy: it repeats the received
Authorization header in its error details and messages, to prove that clients mask it.
"""

from __future__ import annotations

import datetime
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

NOTIFY_PATH = "/manager/v1/updates/notify"
STATUS_PATH = "/manager/v1/updates/status"
FIELDS = {"agent_image": str, "gui_image": str, "strategy": str, "source": str, "commit_sha": str, "message": str,
          "metadata": dict}
STRATEGIES = ("canary", "immediate", "manual")
PHASES = ("explorers", "early_adopters", "general")
PHASE_FAILED = {"explorers": "Explorer phase failed - no agents reached stable WORK state",
                "early_adopters": "Early adopter phase failed - no agents reached stable WORK state"}
OUTCOMES = ("accept", "defer", "reject", "fail")


def default_agents():
    """Seven agents: two explorers, two early adopters (one defers), three general (one rejects)."""
    return [
        {"agent_id": "datum", "group": "explorers", "outcome": "accept"},
        {"agent_id": "sage", "group": "explorers", "outcome": "accept"},
        {"agent_id": "scout", "group": "early_adopters", "outcome": "accept"},
        {"agent_id": "echo", "group": "early_adopters", "outcome": "defer"},
        {"agent_id": "nova", "group": "general", "outcome": "accept"},
        {"agent_id": "atlas", "group": "general", "outcome": "reject"},
        {"agent_id": "orion", "group": "general", "outcome": "accept"},
    ]


class ManagerSim:
    """The stand-in; ``with ManagerSim(...) as sim:`` serves it on ``sim.url`` until the block ends."""

    def __init__(self, tokens=("deploy-token-0123456789abcdef",), agents=None, phase_seconds=0.5, tls=None,
                 echo_auth=False, notify_delay=0.0, clock=time.monotonic):
        self.tokens = tuple(tokens)
        self.agents = list(agents if agents is not None else default_agents())
        for agent in self.agents:
            assert agent["group"] in PHASES and agent["outcome"] in OUTCOMES, agent
        self.phase_seconds = float(phase_seconds)
        self.tls = tls  # (certfile, keyfile)
        self.echo_auth = echo_auth
        self.notify_delay = float(notify_delay)
        self.clock = clock
        self.lock = threading.Lock()
        self.deployments = {}
        self.current = None
        self.requests = []  # (method, path, query, body, auth_ok) of every request
        self._seq = 0
        self._server = None
        self._thread = None

    # ------------------------------------------------------------------ serving
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        sim = self

        class Handler(_Handler):
            manager = sim

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.tls[0], self.tls[1])
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self):
        scheme = "https" if self.tls else "http"
        return "%s://127.0.0.1:%d" % (scheme, self._server.server_address[1])

    # ------------------------------------------------------------------ deployments
    def start_deployment(self, body):
        """Create a deployment from a notification (what the notify endpoint does); returns its id."""
        with self.lock:
            return self._create(body)

    def _create(self, body):
        self._seq += 1
        now = datetime.datetime.now(datetime.timezone.utc)
        deployment_id = "deploy-%s-%03d" % (now.strftime("%Y%m%d-%H%M%S"), self._seq)
        strategy = body.get("strategy", "canary")
        self.deployments[deployment_id] = {
            "deployment_id": deployment_id, "notification": dict(body), "strategy": strategy,
            "created": self.clock(), "started_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "final": None,
        }
        if strategy != "manual":
            self.current = deployment_id
        return deployment_id

    def cancel(self, deployment_id):
        with self.lock:
            self.deployments[deployment_id]["final"] = ("cancelled", "Deployment cancelled by an admin")

    def reject(self, deployment_id):
        with self.lock:
            self.deployments[deployment_id]["final"] = ("rejected", "Deployment rejected by an admin")

    def view(self, deployment_id):
        """The deployment's status now: the documented fields, nothing else."""
        with self.lock:
            return self._view(deployment_id)

    def _phases(self, strategy):
        if strategy == "immediate":
            return [(None, list(self.agents))]
        return [(p, [a for a in self.agents if a["group"] == p]) for p in PHASES
                if any(a["group"] == p for a in self.agents)]

    def _view(self, deployment_id):
        dep = self.deployments[deployment_id]
        counts = {"updated": 0, "deferred": 0, "rejected": 0}
        status, phase, message = "in_progress", None, "Deployment started"
        if dep["strategy"] == "manual":
            status, message = "pending", "Deployment staged; an admin starts it"
        else:
            elapsed = self.clock() - dep["created"]
            phases = self._phases(dep["strategy"])
            done = min(len(phases), int(elapsed // self.phase_seconds)) if self.phase_seconds > 0 else len(phases)
            for name, members in phases[:done]:
                for agent in members:
                    if agent["outcome"] == "accept":
                        counts["updated"] += 1
                    elif agent["outcome"] == "defer":
                        counts["deferred"] += 1
                    elif agent["outcome"] == "reject":
                        counts["rejected"] += 1
                stable = any(a["outcome"] == "accept" for a in members)
                failing = any(a["outcome"] == "fail" for a in members)
                if name in PHASE_FAILED and not stable:
                    status, phase, message = "failed", name, PHASE_FAILED[name]
                    break
                if name is None and failing:
                    status, message = "failed", "Deployment failed: %d agents failed, %d updated, %d deferred" % (
                        sum(1 for a in members if a["outcome"] == "fail"), counts["updated"], counts["deferred"])
                    break
            else:
                if done >= len(phases):
                    status = "completed"
                    phase = phases[-1][0] if phases else None
                    message = "Deployment completed: %d updated, %d deferred, %d rejected" % (
                        counts["updated"], counts["deferred"], counts["rejected"])
                else:
                    phase = phases[done][0]
                    members = phases[done][1]
                    message = ("Notifying %d %s agents" % (len(members), {"explorers": "explorer", "early_adopters": "early adopter"}.get(phase, phase))
                               if phase else "Updating %d agents immediately" % len(members))
            if dep["final"] and status == "in_progress":
                status, message = dep["final"]
        if status != "in_progress" and self.current == deployment_id:
            self.current = None
        return {
            "deployment_id": deployment_id,
            "status": status,
            "agents_total": len(self.agents),
            "agents_updated": counts["updated"],
            "agents_deferred": counts["deferred"],
            "agents_rejected": counts["rejected"],
            "started_at": dep["started_at"],
            "canary_phase": phase,
            "message": message,
        }

    def notify(self, body):
        """``(code, answer)`` for a notification body (validated as the manager's model would)."""
        problems = validate_notification(body)
        if problems:
            return 422, {"detail": problems}
        with self.lock:
            if self.current is not None and self._view(self.current)["status"] == "in_progress":
                return 409, {"detail": "Deployment %s already in progress" % self.current}
            deployment_id = self._create(body)
            return 200, self._view(deployment_id)

    def status(self, deployment_id=None):
        with self.lock:
            if deployment_id:
                return 200, self._view(deployment_id) if deployment_id in self.deployments else None
            if self.current is None:
                return 200, None
            view = self._view(self.current)
            return 200, view

    def posts(self):
        return [r for r in self.requests if r[0] == "POST"]


def validate_notification(body):
    """FastAPI-style validation errors (``[{"loc": [...], "msg": ...}]``) of a notification body."""
    if not isinstance(body, dict):
        return [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}]
    problems = []
    for key, value in body.items():
        if key not in FIELDS:
            problems.append({"loc": ["body", key], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"})
        elif value is not None and not isinstance(value, FIELDS[key]):
            problems.append({"loc": ["body", key], "msg": "Input should be a valid %s" % FIELDS[key].__name__,
                             "type": "type_error"})
    if body.get("strategy", "canary") not in STRATEGIES:
        problems.append({"loc": ["body", "strategy"], "msg": "strategy must be canary, immediate or manual",
                         "type": "value_error"})
    if not (body.get("agent_image") or body.get("gui_image")):
        problems.append({"loc": ["body"], "msg": "At least one of agent_image, gui_image must be provided",
                         "type": "value_error"})
    return problems


class _Handler(BaseHTTPRequestHandler):
    manager = None  # set by ManagerSim.start
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, code, payload):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _auth(self):
        header = self.headers.get("Authorization")
        if not header:
            return "Missing authorization header"
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            return "Invalid authorization format"
        if parts[1] not in self.manager.tokens:
            return "Invalid deployment token"
        return None

    def _echo(self, text):
        if self.manager.echo_auth:
            return "%s (received Authorization: %s)" % (text, self.headers.get("Authorization"))
        return text

    def _handle(self, method):
        sim = self.manager
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        body = None
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        problem = self._auth()
        if method == "POST" and raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        with sim.lock:
            sim.requests.append((method, parts.path, query, body, problem is None))
        if parts.path not in (NOTIFY_PATH, STATUS_PATH):
            return self._send(404, {"detail": "Not Found"})
        if (parts.path == NOTIFY_PATH) != (method == "POST"):
            return self._send(405, {"detail": "Method Not Allowed"})
        if problem:
            return self._send(401, {"detail": self._echo(problem)})
        if method == "POST":
            if sim.notify_delay:
                time.sleep(sim.notify_delay)
            if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json" or isinstance(body, str):
                return self._send(422, {"detail": [{"loc": ["body"], "msg": "JSON body expected"}]})
            code, answer = sim.notify(body)
        else:
            code, answer = sim.status((query.get("deployment_id") or [None])[0])
        if isinstance(answer, dict):
            if "detail" in answer and isinstance(answer["detail"], str):
                answer = dict(answer, detail=self._echo(answer["detail"]))
            elif "message" in answer and sim.echo_auth:
                answer = dict(answer, message=self._echo(answer["message"]))
        return self._send(code, answer)

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._handle("GET")

    def do_POST(self):  # noqa: N802
        self._handle("POST")


def make_tls_files(directory):
    """A CA and a server certificate for 127.0.0.1/localhost signed by it, written to ``directory``.

    Returns ``(ca_pem, cert_pem, key_pem)`` paths. Needs the ``cryptography`` package.
    """
    import ipaddress
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "managersim test CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False, decipher_only=False),
                              critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = tuple(os.path.join(str(directory), name) for name in ("ca.pem", "cert.pem", "key.pem"))
    with open(paths[0], "wb") as f:
        f.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths
