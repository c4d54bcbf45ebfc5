"""Scaffolding shared by the test suites (unit, fleetsim, integration, faults): ``from helpers import ...``.

tests/ is on ``sys.path`` (pytest puts the directory of the rootdir's conftest.py there, and tests/conftest.py
puts the repository root there), so every suite imports this module the way it imports ``conftest``.

* :func:`wait_for` polls a predicate until a deadline; :class:`Clock` is a fake clock for unit tests.
* :func:`free_port` is a loopback port nothing listens on.
* :func:`patch_module_args` runs a module's ``main()`` with given arguments (ansible-core's own helper from 2.19,
  the same for the oldest core tested).
* :class:`LoopbackServer` is a threaded HTTP(S) server on 127.0.0.1 that records every request (:class:`Seen`)
  and answers what its ``answer`` function says; :class:`FakeAgent` answers like an agent (health, shutdown)
  with configurable faults, :class:`Receiver` like a webhook receiver or a JSON endpoint.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from unittest import mock

try:
    from ansible.module_utils.testing import patch_module_args  # pylint: disable=unused-import
except ImportError:  # ansible-core < 2.19 (the oldest requires_ansible allows is tested: make units-oldest)
    from ansible.module_utils import basic as ansible_basic

    @contextlib.contextmanager
    def patch_module_args(args=None):
        with mock.patch.object(ansible_basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode()):
            yield


# ---------------------------------------------------------------- polling and time
def wait_for(predicate, timeout, what="the condition", interval=0.05):
    """Call ``predicate`` every ``interval`` seconds until it returns something true, and return that; after
    ``timeout`` seconds raise AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out (%ss) waiting for %s" % (timeout, what))


class Clock:
    """A fake clock: ``clock()`` (or ``clock.time()``) is the time, ``clock.sleep(s)`` moves it on by ``s`` (by at
    least ``min_step`` when one is given, so that code sleeping 0 s still moves on) and records ``s`` in
    ``clock.sleeps``."""

    def __init__(self, now=0.0, min_step=None):
        self.now = now
        self.min_step = min_step
        self.sleeps = []

    def __call__(self):
        return self.now

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds if self.min_step is None else max(seconds, self.min_step)


def free_port():
    """A loopback TCP port that was free a moment ago (nothing listens on it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# a container's published ports: above fleetsim's agent ports (fleetsim.testing.LOW_PORTS) and below Linux's
# ephemeral range (32768+), which is where the kernel picks a free port for any listener that asks for one
PUBLISHED_PORTS = (32001, 32767)
_published = set()


def published_port():
    """A loopback port to publish a container's port on (podman's netavark). Netavark forwards it with an iptables
    DNAT rule and holds no socket: on a port the kernel can hand out, a fleetsim agent or any test server that
    asks for a free port could get it, and the rule would take its connections (they were refused: the
    refused-port flakes of the suite, seen when the docker tests ran beside the others)."""
    for dummy in range(200):
        port = random.randint(*PUBLISHED_PORTS)
        if port in _published:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _published.add(port)
        return port
    raise RuntimeError("no free port in %d-%d" % PUBLISHED_PORTS)


# ---------------------------------------------------------------- HTTP servers on loopback
class Seen(NamedTuple):
    """One request a :class:`LoopbackServer` received. ``body`` is the parsed JSON body ({} when none)."""

    method: str
    path: str
    headers: dict
    port: int
    body: Any

    def header(self, name):
        """The request's header ``name`` (any case), or None."""
        return next((value for key, value in self.headers.items() if key.lower() == name.lower()), None)

    @property
    def auth(self):
        return self.header("Authorization")


class _Handler(BaseHTTPRequestHandler):
    def setup(self):
        super().setup()
        self.protocol_version = self.server.http_version

    def log_message(self, *args):
        pass

    def _handle(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        seen = Seen(self.command, self.path, dict(self.headers), self.client_address[1], json.loads(raw) if raw else {})
        with self.server.lock:
            self.server.seen.append(seen)
            self.index = len(self.server.seen) - 1  # pylint: disable=attribute-defined-outside-init
        answer = self.server.answer(seen, self)
        if answer is not None:
            self.send(*answer)

    do_GET = do_POST = _handle

    def send(self, status, payload):
        """Answer ``payload``: bytes as they are, anything else as JSON."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        if not isinstance(payload, bytes):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def drop(self):
        """Close without answering, with a reset (SO_LINGER 0)."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.close_connection = True


class LoopbackServer(ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1 (HTTPS with an ``ssl`` server ``context``), serving from the moment it
    is made. Each GET and POST is recorded in ``seen`` (under ``lock``), then ``answer(seen, handler)`` says
    what to send: ``(status, payload)``, or None when it answered (``handler.send``) or dropped
    (``handler.drop()``) the request itself. ``release`` is set by :meth:`stop`, for answers that hang."""

    daemon_threads = True

    def __init__(self, answer, context=None, port=0, http_version="HTTP/1.1"):
        super().__init__(("127.0.0.1", port), _Handler)
        self.answer = answer
        self.http_version = http_version
        self.seen = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return "%s://127.0.0.1:%d" % (scheme, self.server_address[1])

    def stop(self):
        self.release.set()
        self.shutdown()
        self.server_close()


class FakeAgent(LoopbackServer):
    """An agent: GET answers its health (``behaviour["health"]``: the cognitive state, default ``work``, or
    ``hang``), POST answers ``accept`` unless ``behaviour["post"]`` is a fault: ``reset`` (every time),
    ``reset_first``, ``hang``, ``reset_and_stop`` (the agent goes away right after taking the request),
    ``reset_first_then_drain`` (and its health says ``shutdown`` from then on). ``behaviour["version"]`` is the
    version its health reports (default 1.0.0). ``answer(seen, handler)``, when given, is asked first and
    the behaviour only when it returns None."""

    def __init__(self, behaviour=None, context=None, port=0, answer=None):
        self.behaviour = dict(behaviour or {})
        self.custom = answer
        super().__init__(self._agent_answer, context=context, port=port)

    def _agent_answer(self, seen, handler):
        if self.custom is not None:
            custom = self.custom(seen, handler)
            if custom is not None:
                return custom
        if seen.method == "GET":
            health = self.behaviour.get("health", "work")
            if health == "hang":
                self.release.wait(30)
                return handler.drop()
            return 200, {"data": {"status": "healthy", "cognitive_state": health,
                                  "version": self.behaviour.get("version", "1.0.0")}}
        post = self.behaviour.get("post", "accept")
        with self.lock:
            count = len([s for s in self.seen[:handler.index + 1] if s.method == "POST"])  # this one included
        if post == "reset_first" and count == 1 or post == "reset":
            return handler.drop()
        if post == "hang":
            self.release.wait(30)
            return handler.drop()
        if post == "reset_and_stop":
            self.socket.shutdown(socket.SHUT_RDWR)
            threading.Thread(target=self.shutdown, daemon=True).start()
            return handler.drop()
        if post == "reset_first_then_drain":
            self.behaviour["health"] = "shutdown"
            return handler.drop()
        return 200, {"data": {"decision": "accept"}}


class Receiver(LoopbackServer):
    """A webhook receiver or JSON endpoint (HTTP/1.0): every request is answered ``status`` with ``payload``
    (JSON; ``b"ok"`` when None), or never with ``hang`` (until :meth:`stop`). ``posts``: the POSTs it got."""

    def __init__(self, status=200, payload=None, hang=False):
        self.status, self.payload, self.hang = status, payload, hang
        super().__init__(self._receiver_answer, http_version="HTTP/1.0")

    @property
    def posts(self):
        with self.lock:
            return [s for s in self.seen if s.method == "POST"]

    def _receiver_answer(self, seen, handler):
        del seen, handler
        if self.hang:
            self.release.wait(30)
            return None
        return self.status, b"ok" if self.payload is None else self.payload
