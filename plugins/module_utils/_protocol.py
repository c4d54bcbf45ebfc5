# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent control protocol client (CIRIS-compatible), see PROTOCOL.md.

One :class:`AgentClient` serves a whole wave: keep-alive connections kept per
thread and per (scheme, host, port), one TLS context built once, separate
connect and read timeouts, and a bounded thread pool for fan-out.

Pure functions map HTTP answers to decisions (:func:`map_shutdown_answer`)
and health bodies to verdicts (:func:`evaluate_health`); they hold the
protocol's rules and are unit-tested on their own.
"""

from __future__ import annotations

import datetime
import http.client
import json
import socket
import ssl
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

HEALTH_PATH = "/v1/system/health"
SHUTDOWN_PATH = "/v1/system/shutdown"

ACCEPT = "accept"
DEFER = "defer"
REJECT = "reject"
UNREACHABLE = "unreachable"
AUTH_ERROR = "auth_error"
# 200/202 without ``data.decision``: the agent deliberates as a task and shows
# its decision by acting (PROTOCOL.md, "Observed consent")
PENDING = "pending"
# the result of an observed decline: still working when the stop timeout ended
DECLINED = "declined"
FINAL_DECISIONS = (ACCEPT, REJECT)
DECISIONS = (ACCEPT, PENDING, DEFER, REJECT, UNREACHABLE, AUTH_ERROR)

# what a health answer says about the agent's process (see classify_liveness)
WORKING = "working"
DRAINING = "draining"
STOPPED = "stopped"
NO_ANSWER = "no_answer"
GATEWAY_DOWN = (502, 503, 504)
# transport failures that prove nothing is listening any more
STOPPED_KINDS = ("refused", "reset", "connect")

DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_READ_TIMEOUT = 10.0
DEFAULT_MAX_WORKERS = 32
# keep-alive connections each pool thread keeps open (least recently used closed first):
# bounds the open sockets to max_workers x this, however many agent hosts there are
CONNECTIONS_PER_THREAD = 8
USER_AGENT = "agentfleet.rollout/0.1"


class ProtocolError(Exception):
    """A failure talking to an agent that is not a decision."""


class AuthError(ProtocolError):
    """401/403 from an agent: the token is wrong or missing."""


class Response:
    """A parsed HTTP answer: status, raw body, JSON (or None), elapsed seconds."""

    __slots__ = ("status", "body", "json", "elapsed", "headers")

    def __init__(self, status, body, elapsed, headers=None):
        self.status = status
        self.body = body
        self.elapsed = elapsed
        self.headers = headers or {}
        try:
            self.json = json.loads(body.decode("utf-8")) if body else None
        except (ValueError, UnicodeDecodeError):
            self.json = None


class TransportError(ProtocolError):
    """The request did not produce an HTTP answer.

    ``sent`` tells whether the request may have reached the agent: False only
    when the connection was refused before anything was written.
    """

    def __init__(self, message, sent=True, kind="error"):
        super().__init__(message)
        self.sent = sent
        self.kind = kind


def _parse_iso(value):
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    dt = datetime.datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


def parse_defer_until(value, now):
    """``defer_until`` as a unix time: ISO-8601 time or seconds from ``now``.

    Returns None when absent or unparsable.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return now + float(value)
    text = str(value).strip()
    try:
        return now + float(text)
    except ValueError:
        pass
    try:
        return _parse_iso(text)
    except ValueError:
        return None


def map_shutdown_answer(status, payload, now):
    """Map an HTTP answer to a shutdown request onto a decision (PROTOCOL.md).

    ``payload`` is the parsed JSON body (or None). Returns a dict with
    ``decision`` and, where given, ``reason``, ``defer_until`` (unix time),
    ``decision_id``. 401/403 map to ``auth_error``.
    """
    data = payload.get("data") if isinstance(payload, dict) else None
    data = data if isinstance(data, dict) else {}
    out = {"decision": None, "reason": None, "defer_until": None, "decision_id": None, "http_status": status}
    if data.get("reason") is not None:
        out["reason"] = str(data.get("reason"))
    if data.get("decision_id") is not None:
        out["decision_id"] = str(data.get("decision_id"))
    if status in (200, 202):
        decision = data.get("decision")
        if decision is None:
            out["decision"] = PENDING
        else:
            decision = str(decision).lower()
            if decision not in (ACCEPT, DEFER, REJECT):
                out["decision"] = REJECT
                out["reason"] = "unknown decision %r%s" % (decision, (": " + out["reason"]) if out["reason"] else "")
            else:
                out["decision"] = decision
        if out["decision"] == DEFER:
            out["defer_until"] = parse_defer_until(data.get("defer_until"), now)
        return out
    if status == 409:
        out["decision"] = DEFER
        retry = None
        if isinstance(payload, dict):
            retry = payload.get("retry_after_ms", data.get("retry_after_ms"))
        try:
            retry = float(retry) / 1000.0 if retry is not None else None
        except (TypeError, ValueError):
            retry = None
        out["defer_until"] = now + retry if retry is not None else parse_defer_until(data.get("defer_until"), now)
        out["reason"] = out["reason"] or "busy (409)"
        return out
    if status in (401, 403):
        out["decision"] = AUTH_ERROR
        out["reason"] = "authentication failed (HTTP %d): check the token" % status
        return out
    out["decision"] = REJECT
    if not out["reason"]:
        detail = payload.get("detail") if isinstance(payload, dict) else None
        out["reason"] = "HTTP %d%s" % (status, (": %s" % detail) if detail else "")
    return out


def evaluate_health(status, payload, expected_states=("work",), target_version=None, error=None):
    """Judge one health probe. Returns ``(healthy, cause, info)``.

    ``info`` holds what the agent said (status, version, cognitive_state,
    occurrence_id, agent_id) where it said it.
    """
    info = {}
    if error is not None:
        return False, error, info
    if status != 200:
        return False, "HTTP %s" % status, info
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        return False, "unparsable body", info
    for key in ("status", "version", "cognitive_state", "occurrence_id", "agent_id", "uptime_seconds", "initialization_complete"):
        if key in data:
            info[key] = data[key]
    missing = [k for k in ("status", "cognitive_state") if k not in data]
    if missing:
        return False, "missing fields: %s" % ", ".join(missing), info
    if data["status"] != "healthy":
        return False, "status %s" % data["status"], info
    if data["cognitive_state"] not in expected_states:
        return False, "cognitive_state %s (expected %s)" % (data["cognitive_state"], "|".join(expected_states)), info
    if target_version is not None and str(data.get("version")) != str(target_version):
        return False, "version %s (expected %s)" % (data.get("version"), target_version), info
    return True, None, info


def classify_liveness(status=None, payload=None, error=None):
    """What one health answer says about the agent's process: ``(state, cause, info)``.

    The one classifier of the collection for "has it stopped?" (updates,
    reverts, shutdown waves, wakeup):

    - :data:`STOPPED`: nothing listens (connection refused or reset, host
      unreachable) or its proxy answers 502/503/504 (backend gone);
    - :data:`DRAINING`: it answers with ``cognitive_state: shutdown`` (still
      finishing its work; not stopped);
    - :data:`WORKING`: it answers anything else (a 500 from the agent itself
      is an answering process too);
    - :data:`NO_ANSWER`: a timeout, a TLS or URL error: no evidence either way.
    """
    if error is not None:
        kind = getattr(error, "kind", None)
        if kind in STOPPED_KINDS:
            return STOPPED, str(error), {}
        return NO_ANSWER, str(error), {}
    if status in GATEWAY_DOWN:
        return STOPPED, "HTTP %d from the gateway (backend gone)" % status, {}
    cause, info = evaluate_health(status, payload, ("work",))[1:]
    if info.get("cognitive_state") == "shutdown":
        return DRAINING, "cognitive_state shutdown (draining)", info
    return WORKING, cause, info


def join_url(base, path):
    return base.rstrip("/") + path


class AgentClient:
    """HTTP(S) client for the agent protocol, shared by a wave's threads."""

    def __init__(
        self,
        token=None,
        connect_timeout=DEFAULT_CONNECT_TIMEOUT,
        read_timeout=DEFAULT_READ_TIMEOUT,
        validate_certs=True,
        ca_path=None,
        max_workers=DEFAULT_MAX_WORKERS,
        connect_retries=2,
        retry_delay=0.2,
        sleep=time.sleep,
    ):
        self._token = token or None
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.max_workers = max(1, int(max_workers))
        self.connect_retries = max(0, int(connect_retries))
        self.retry_delay = float(retry_delay)
        self._sleep = sleep
        self._local = threading.local()
        self._all_conns = set()
        self._lock = threading.Lock()
        self._ssl = None
        self._validate_certs = validate_certs
        self._ca_path = ca_path
        self._executor = None

    # -- plumbing ---------------------------------------------------------
    def _ssl_context(self):
        if self._ssl is None:
            with self._lock:
                if self._ssl is None:
                    if self._validate_certs:
                        ctx = ssl.create_default_context(cafile=self._ca_path)
                    else:
                        ctx = ssl.create_default_context()
                        ctx.check_hostname = False
                        ctx.verify_mode = ssl.CERT_NONE
                    self._ssl = ctx
        return self._ssl

    def _pool(self):
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = OrderedDict()
        return pool

    def _keep(self, pool, key, conn):
        """Pool ``conn`` for ``key``, closing the one it replaces and the least recently used beyond the bound."""
        old = pool.pop(key, None)
        if old is not None and old is not conn:
            self._drop(old)
        pool[key] = conn
        while len(pool) > CONNECTIONS_PER_THREAD:
            self._drop(pool.popitem(last=False)[1])

    def _new_conn(self, scheme, host, port):
        if scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=self.connect_timeout, context=self._ssl_context())
        elif scheme == "http":
            conn = http.client.HTTPConnection(host, port, timeout=self.connect_timeout)
        else:
            raise TransportError("unsupported URL scheme %r" % scheme, sent=False, kind="bad_url")
        with self._lock:
            self._all_conns.add(conn)
        return conn

    def _drop(self, conn):
        conn.close()
        with self._lock:
            self._all_conns.discard(conn)

    def _connect(self, conn):
        try:
            conn.connect()
        except ConnectionRefusedError as exc:
            raise TransportError("connection refused", sent=False, kind="refused") from exc
        except socket.timeout as exc:
            raise TransportError("connect timeout after %.1fs" % self.connect_timeout, sent=False, kind="timeout") from exc
        except ssl.SSLError as exc:
            raise TransportError("TLS error: %s" % exc, sent=False, kind="tls") from exc
        except OSError as exc:
            raise TransportError("connect failed: %s" % (exc.strerror or exc), sent=False, kind="connect") from exc
        conn.sock.settimeout(self.read_timeout)

    def request(self, method, url, body=None, fresh=False, keep=True):
        """One HTTP request. Raises :class:`TransportError` when no answer came.

        ``fresh`` opens a new connection; ``keep=False`` closes it after the answer
        (an agent that accepted a shutdown is about to go away).
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname
        if not host:
            raise TransportError("invalid agent URL %r" % url, sent=False, kind="bad_url")
        port = parts.port or (443 if scheme == "https" else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self._token:
            headers["Authorization"] = "Bearer " + self._token
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        key = (scheme, host, port)
        pool = self._pool()
        conn = None if fresh else pool.get(key)
        reused = conn is not None and conn.sock is not None
        if reused:
            pool.move_to_end(key)
        else:
            conn = self._new_conn(scheme, host, port)
            self._connect(conn)
            self._keep(pool, key, conn)
        start = time.monotonic()
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            result = Response(resp.status, payload, time.monotonic() - start, dict(resp.getheaders()))
            if resp.will_close or not keep:
                self._drop(conn)
                pool.pop(key, None)
            return result
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
            self._drop(conn)
            pool.pop(key, None)
            if reused and method == "GET":
                # a keep-alive connection the server had closed: a read-only request may go again
                return self.request(method, url, body=body, fresh=True)
            raise TransportError("connection lost: %s" % exc.__class__.__name__, sent=True, kind="reset") from exc
        except socket.timeout as exc:
            self._drop(conn)
            pool.pop(key, None)
            raise TransportError("read timeout after %.1fs" % self.read_timeout, sent=True, kind="timeout") from exc
        except (http.client.HTTPException, OSError) as exc:
            self._drop(conn)
            pool.pop(key, None)
            raise TransportError("HTTP failure: %s" % (exc.__class__.__name__), sent=True, kind="error") from exc

    def close(self):
        with self._lock:
            conns, self._all_conns = self._all_conns, set()
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        for conn in conns:
            try:
                conn.close()
            except Exception:  # pragma: no cover - closing is best effort
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- protocol calls ---------------------------------------------------
    def probe(self, agent_url, expected_states=("work",), target_version=None):
        """GET health and judge it: ``{healthy, cause, info, elapsed}``."""
        try:
            resp = self.request("GET", join_url(agent_url, HEALTH_PATH))
        except TransportError as exc:
            return {"healthy": False, "cause": str(exc), "info": {}, "reachable": False}
        healthy, cause, info = evaluate_health(resp.status, resp.json, expected_states, target_version)
        return {"healthy": healthy, "cause": cause, "info": info, "reachable": True, "elapsed": resp.elapsed}

    def shutdown(self, agent_url, body, now=time.time):
        """POST shutdown; returns a decision dict (see :func:`map_shutdown_answer`).

        Retried only where the connection was refused before anything was
        sent, always with the same body (and so the same deployment_id).
        """
        url = join_url(agent_url, SHUTDOWN_PATH)
        attempt = 0
        while True:
            try:
                resp = self.request("POST", url, body=body, fresh=True, keep=False)
            except TransportError as exc:
                if not exc.sent and exc.kind == "refused" and attempt < self.connect_retries:
                    attempt += 1
                    self._sleep(self.retry_delay * attempt)
                    continue
                return {
                    "decision": UNREACHABLE,
                    "reason": str(exc),
                    "defer_until": None,
                    "decision_id": None,
                    "http_status": None,
                }
            if resp.json is None and resp.status in (200, 202) and resp.body.strip():
                return {
                    "decision": UNREACHABLE,
                    "reason": "unparsable answer (HTTP %d)" % resp.status,
                    "defer_until": None,
                    "decision_id": None,
                    "http_status": resp.status,
                }
            return map_shutdown_answer(resp.status, resp.json, now())

    def fan_out(self, fn, items):
        """Run ``fn(item)`` for every item on the bounded pool; results in input order."""
        items = list(items)
        if not items:
            return []
        if self.max_workers == 1 or len(items) == 1:
            return [fn(item) for item in items]
        with self._lock:
            if self._executor is None:
                # one pool for the client's life: its threads keep their keep-alive connections
                self._executor = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="agentfleet")
            executor = self._executor
        return list(executor.map(fn, items))
