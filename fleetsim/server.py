"""The fleetsim server: many simulated agent occurrences in one asyncio process.

A hand-rolled minimal HTTP/1.1 server (keep-alive, Content-Length bodies only) is
used on purpose: it is several times faster than http.server and needs no
dependency.  See docs/fleetsim.md for the behaviour it simulates.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .config import DEFAULTS, ConfigError, check_settings

REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 422: "Unprocessable Entity", 500: "Internal Server Error",
           502: "Bad Gateway"}
DEFAULT_BACKLOG = 256
# what an occurrence's timeline records (latest unix time of each), also logged as lifecycle events
TIMELINE = ("shutdown_requested", "drain_started", "exited", "started")
SECRET_KEYS = ("token", "password", "secret", "authorization", "api_key", "apikey")
SHARED = "__shared__"
# the warnings a CIRIS agent's health lists with unhealthy_mode critical / wakeup_error (CIRISAgent's SystemWarning)
ADAPTERS_FAILED = {"code": "adapters_failed_to_load", "severity": "error", "action_url": "/settings/adapters",
                   "message": "Configured adapter(s) failed to start: discord (ConnectionError)"}
WAKEUP_REJECTED = {"code": "wakeup_step_rejected", "severity": "error", "action_url": "/system",
                   "message": "The agent rejected a wakeup step (VERIFY_IDENTITY) and will not enter WORK. "
                              "This does not resolve by waiting - a rejected step is terminal."}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def new_decision_id() -> str:
    return "dec-" + uuid.uuid4().hex[:16]


def ciris_body_errors(parsed_ok: bool, body) -> list:
    """FastAPI-like (pydantic v2) validation errors of a CIRIS shutdown request body; [] when valid.

    The body must be a JSON object with a string ``reason`` and ``confirm: true``; ``force`` is
    optional (a bool); every other field is accepted and ignored. Inputs are not echoed back.
    """
    if not parsed_ok:
        return [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error"}]
    if not isinstance(body, dict):
        return [{"type": "model_attributes_type", "loc": ["body"],
                 "msg": "Input should be a valid dictionary or object to extract fields from"}]
    errors = []
    if "reason" not in body:
        errors.append({"type": "missing", "loc": ["body", "reason"], "msg": "Field required"})
    elif not isinstance(body["reason"], str):
        errors.append({"type": "string_type", "loc": ["body", "reason"], "msg": "Input should be a valid string"})
    if "confirm" not in body:
        errors.append({"type": "missing", "loc": ["body", "confirm"], "msg": "Field required"})
    elif not isinstance(body["confirm"], bool):
        errors.append({"type": "bool_type", "loc": ["body", "confirm"], "msg": "Input should be a valid boolean"})
    elif body["confirm"] is not True:
        errors.append({"type": "value_error", "loc": ["body", "confirm"],
                       "msg": "Value error, confirm must be true to shut down"})
    if "force" in body and body["force"] is not None and not isinstance(body["force"], bool):
        errors.append({"type": "bool_type", "loc": ["body", "force"], "msg": "Input should be a valid boolean"})
    return errors


# --------------------------------------------------------------------------- shared state (SQLite)

class AgentDB:
    """The per-agent SQLite database with the FSD's `tasks` table."""

    def __init__(self, path: Path):
        self.path = path
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS tasks ("
            " task_id TEXT PRIMARY KEY,"
            " agent_occurrence_id TEXT NOT NULL,"
            " status TEXT NOT NULL,"
            " outcome TEXT,"
            " created_at TEXT NOT NULL,"
            " updated_at TEXT NOT NULL)"
        )

    def get(self, task_id: str):
        row = self.conn.execute(
            "SELECT task_id, agent_occurrence_id, status, outcome, created_at, updated_at FROM tasks WHERE task_id=?",
            (task_id,)).fetchone()
        return self._row(row) if row else None

    @staticmethod
    def _row(row):
        return {"task_id": row[0], "agent_occurrence_id": row[1], "status": row[2],
                "outcome": json.loads(row[3]) if row[3] else None, "created_at": row[4], "updated_at": row[5]}

    def put(self, task_id: str, occurrence_id: str, status: str, outcome: dict):
        now = iso(time.time())
        self.conn.execute(
            "INSERT INTO tasks (task_id, agent_occurrence_id, status, outcome, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(task_id) DO UPDATE SET"
            " status=excluded.status, outcome=excluded.outcome, updated_at=excluded.updated_at",
            (task_id, occurrence_id, status, json.dumps(outcome), now, now))

    def shared_shutdowns(self):
        rows = self.conn.execute(
            "SELECT task_id, agent_occurrence_id, status, outcome, created_at, updated_at FROM tasks"
            " WHERE agent_occurrence_id=? AND task_id LIKE 'shutdown_%' ORDER BY updated_at DESC",
            (SHARED,)).fetchall()
        return [self._row(r) for r in rows]

    def by_decision_id(self, decision_id: str):
        for row in self.shared_shutdowns():
            if (row["outcome"] or {}).get("decision_id") == decision_id:
                return row
        return None


# --------------------------------------------------------------------------- one occurrence

class Occurrence:
    def __init__(self, spec, index: int):
        self.name = spec.name
        self.agent_id = spec.agent_id
        self.occurrence_id = spec.occurrence_id
        self.multi = spec.multi
        self.index = index
        self.s = dict(spec.settings)
        self.original_version = self.s["version"]
        self.version = self.s["version"]
        self.port = 0
        self.agent_url = ""
        self.server = None
        self.conns: set = set()
        self.up = False
        self.down_reason = "not started"
        self.started_at = time.time()
        self.boot_until = 0.0
        self.updated = False
        self.shutting_down = False
        self.stuck = False
        self.starts = 0
        self.busy_count = 0
        self.decisions: dict = {}
        self.timers: list = []
        self.deliberating = False          # ciris: a shutdown deliberation is under way
        self.last_decision = None          # ciris: the latest decision taken after deliberating / complying
        self.shutdown_reason = None        # ciris: the reason of the request being deliberated / drained
        self.violations = 0
        self.timeline: dict = dict.fromkeys(TIMELINE)

    def cancel_timers(self):
        for t in self.timers:
            t.cancel()
        self.timers = []

    def phase(self) -> str:
        """down | draining | deliberating | working (stuck_on_shutdown counts as working)."""
        if not self.up:
            return "down"
        if self.shutting_down:
            return "draining"
        if self.deliberating:
            return "deliberating"
        return "working"

    def health(self, now: float) -> dict:
        s = self.s
        warnings = list(s["warnings"])
        if self.shutting_down:
            status, cog, done = "healthy", "shutdown", True
        elif now < self.boot_until:
            status, cog, done, warnings = "initializing", "wakeup", False, []
        elif self.updated and s["unhealthy_after_update"]:
            mode = s["unhealthy_mode"]
            if mode == "stuck_wakeup":
                status, cog, done = "initializing", "wakeup", False
            elif mode == "critical":
                # CIRISAgent #1057: no configured communication adapter loaded -> status critical
                status, cog, done = "critical", s["cognitive_state"], True
                warnings.append(ADAPTERS_FAILED)
            elif mode == "wakeup_error":
                # CIRISAgent #1069: a rejected wakeup step -> cognitive_state wakeup_error, never work
                status, cog, done = "healthy", "wakeup_error", True
                warnings.append(WAKEUP_REJECTED)
            else:
                status, cog, done = "degraded", s["cognitive_state"], True
        else:
            status, cog, done = s["status"], s["cognitive_state"], True
        return {"status": status, "version": self.version, "cognitive_state": cog,
                "initialization_complete": done, "uptime_seconds": round(max(0.0, now - self.started_at), 3),
                "occurrence_id": self.occurrence_id, "agent_id": self.agent_id, "warnings": warnings,
                "degraded_mode": cog == "wakeup_error"}

    def work_done(self, now: float) -> dict:
        """What this occurrence has done since it started working (Prometheus counters; they restart from 0
        with the process): tasks, errors, deferrals, and the latency histogram's sum. Deterministic: a share of
        the tasks by the version's error rate."""
        if not self.up or self.shutting_down:
            return None
        busy = max(0.0, now - max(self.started_at, self.boot_until))
        tasks = int(busy * float(self.s["tasks_per_second"]))
        rate = float((self.s.get("error_rates") or {}).get(self.version, self.s["error_rate"]))
        return {"tasks": tasks, "errors": int(tasks * rate), "deferrals": int(tasks * float(self.s["deferral_rate"])),
                "latency_sum": round(tasks * float(self.s["latency_seconds"]), 3)}

    def state(self, now: float) -> dict:
        st = {"name": self.name, "agent_id": self.agent_id, "occurrence_id": self.occurrence_id,
              "agent_url": self.agent_url, "port": self.port, "up": self.up,
              "down_reason": None if self.up else self.down_reason,
              "version": self.version, "original_version": self.original_version, "updated": self.updated,
              "shutting_down": self.shutting_down, "stuck_on_shutdown": self.stuck, "starts": self.starts,
              "busy_count": self.busy_count, "decisions": self.decisions, "settings": self.s,
              "consent": self.s["consent"], "phase": self.phase(), "deliberating": self.deliberating,
              "last_decision": self.last_decision, "timeline": dict(self.timeline),
              "violations": self.violations}
        st["health"] = self.health(now) if self.up else None
        return st


class Request:
    __slots__ = ("method", "path", "query", "headers", "body", "raw_body")

    def __init__(self, method, path, query, headers, raw_body):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.raw_body = raw_body
        self.body = None


class Reply:
    __slots__ = ("status", "payload", "ctype")

    def __init__(self, status, payload, ctype="application/json"):
        self.status = status
        self.payload = payload
        self.ctype = ctype


DROP = object()   # close the connection without answering (a dead process)


# --------------------------------------------------------------------------- the simulator

class FleetSim:
    def __init__(self, specs, layout="ports", host="127.0.0.1", base_port=20001, control_port=None,
                 token=None, log_path=None, state_dir=None, inventory=None, ready_file=None,
                 path_prefix="/api", backlog=None):
        if layout not in ("ports", "paths"):
            raise ConfigError("layout must be ports or paths")
        self.layout = layout
        self.host = host
        self.base_port = base_port
        self._next_candidate_port = None
        if control_port is None:
            control_port = base_port - 1 if base_port > 0 else 0
        self.control_port = control_port
        self.token = token or None
        self.auth_ok = f"Bearer {token}" if token else None
        self.log_path = log_path
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="fleetsim-state-"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.inventory = inventory
        self.ready_file = ready_file
        self.path_prefix = "/" + path_prefix.strip("/")
        self.backlog = DEFAULT_BACKLOG if backlog is None else int(backlog)
        if self.backlog < 1:
            raise ConfigError("backlog must be >= 1")
        self.violations: list = []
        self.occs: dict = {}
        # blue-green: a candidate instance per occurrence, started beside its primary (not primary until promoted)
        self.candidates: dict = {}
        for i, spec in enumerate(specs):
            self.occs[spec.name] = Occurrence(spec, i)
        self.dbs: dict = {}
        self.log: list = []
        self.seq = 0
        self.log_fh = None
        self.paths_server = None
        self.paths_port = 0
        self.control_server = None
        self.stop_event = None
        self.loop = None

    # ------------------------------------------------------------------ logging

    def _scrub(self, obj):
        if isinstance(obj, dict):
            return {k: ("***" if any(x in str(k).lower() for x in SECRET_KEYS) else self._scrub(v))
                    for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._scrub(v) for v in obj]
        if isinstance(obj, str) and self.token and self.token in obj:
            return obj.replace(self.token, "***")
        return obj

    def lifecycle(self, occ, event, **extra):
        """Note a moment of an occurrence's life: its timeline (for TIMELINE events) and the log."""
        ts = time.time()
        if event in occ.timeline:
            occ.timeline[event] = ts
        return self.record(occ, None, None, event=event, ts=ts, **extra)

    def metrics_text(self, now: float) -> bytes:
        """Prometheus text exposition of every occurrence's work (``Occurrence.work_done``) and ``up``."""
        buckets = (0.1, 0.25, 0.5, 1.0, 2.5)
        lines = []
        series = {"tasks": [], "errors": [], "deferrals": [], "latency": [], "up": []}
        for occ in self.occs.values():
            labels = 'agent="%s",occurrence="%s",version="%s"' % (occ.agent_id, occ.name, occ.version)
            series["up"].append("fleetsim_agent_up{%s} %d" % (labels, 1 if occ.up else 0))
            done = occ.work_done(now)
            if done is None:
                continue
            # a labelled counter appears with its first event, as a Prometheus client library's does
            for key in ("tasks", "errors", "deferrals"):
                if done[key]:
                    series[key].append("fleetsim_agent_%s_total{%s} %d" % (key, labels, done[key]))
            latency = float(occ.s["latency_seconds"])
            for le in buckets:
                series["latency"].append('fleetsim_agent_task_latency_seconds_bucket{%s,le="%s"} %d'
                                         % (labels, le, done["tasks"] if latency <= le else 0))
            series["latency"].append('fleetsim_agent_task_latency_seconds_bucket{%s,le="+Inf"} %d' % (labels, done["tasks"]))
            series["latency"].append("fleetsim_agent_task_latency_seconds_sum{%s} %s" % (labels, done["latency_sum"]))
            series["latency"].append("fleetsim_agent_task_latency_seconds_count{%s} %d" % (labels, done["tasks"]))
        for key, name, kind, text in (
                ("up", "fleetsim_agent_up", "gauge", "1 while the occurrence's process runs"),
                ("tasks", "fleetsim_agent_tasks_total", "counter", "tasks handled since the process started working"),
                ("errors", "fleetsim_agent_errors_total", "counter", "tasks that failed"),
                ("deferrals", "fleetsim_agent_deferrals_total", "counter", "tasks deferred to a human"),
                ("latency", "fleetsim_agent_task_latency_seconds", "histogram", "task latency")):
            lines += ["# HELP %s %s" % (name, text), "# TYPE %s %s" % (name, kind)] + series[key]
        return ("\n".join(lines) + "\n").encode()

    def record(self, occ, req, status, auth="none", event=None, decision=None, ts=None, **extra):
        """Log a request (req) or, with req None, a lifecycle event of an occurrence (method/path/status null)."""
        self.seq += 1
        ts = time.time() if ts is None else ts
        if req is not None:
            body = req.body if isinstance(req.body, (dict, list)) else (None if not req.raw_body else "<unparsable>")
            method, path = req.method, req.path
        else:
            body = method = path = status = auth = None
        entry = {"seq": self.seq, "ts": ts, "iso": iso(ts),
                 "occurrence": occ.name if occ else None,
                 "agent_id": occ.agent_id if occ else None,
                 "occurrence_id": occ.occurrence_id if occ else None,
                 "method": method, "path": path, "status": status, "auth": auth,
                 "body": self._scrub(body) if body is not None else None,
                 "decision": decision, "event": event}
        if req is not None:
            # which run of a rollout sent it (agentfleet.rollout's X-Agentfleet-Run header), or null
            entry["run"] = req.headers.get("x-agentfleet-run")
        if extra:
            entry.update(self._scrub(extra))
        self.log.append(entry)
        if self.log_fh:
            self.log_fh.write(json.dumps(entry) + "\n")
            self.log_fh.flush()
        return entry

    # ------------------------------------------------------------------ HTTP plumbing

    async def _serve_conn(self, reader, writer, route, occ=None):
        if occ is not None:
            occ.conns.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                try:
                    method, target, version = lines[0].split(" ", 2)
                except ValueError:
                    return
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                try:
                    n = int(headers.get("content-length") or 0)
                    raw = await reader.readexactly(n) if n > 0 else b""
                except (ValueError, asyncio.IncompleteReadError, ConnectionError):
                    return
                conn_hdr = headers.get("connection", "").lower()
                keep = (conn_hdr != "close") if version == "HTTP/1.1" else (conn_hdr == "keep-alive")
                parts = urlsplit(target)
                req = Request(method.upper(), parts.path, parse_qs(parts.query), headers, raw)
                try:
                    reply = await route(req)
                except Exception as exc:  # a bug must not kill the connection silently
                    import traceback
                    traceback.print_exc()
                    reply = Reply(500, {"detail": f"fleetsim internal error: {exc}"})
                if reply is DROP:
                    writer.transport.abort()
                    return
                payload = reply.payload
                if not isinstance(payload, bytes):
                    payload = json.dumps(payload).encode()
                writer.write(
                    (f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}\r\n"
                     f"Content-Type: {reply.ctype}\r\nContent-Length: {len(payload)}\r\n"
                     f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n").encode() + payload)
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            if occ is not None:
                occ.conns.discard(writer)
            try:
                writer.close()
            except Exception:
                pass

    async def _listen(self, port, route, occ=None, backlog=DEFAULT_BACKLOG):
        async def cb(reader, writer):
            await self._serve_conn(reader, writer, route, occ)

        server = await asyncio.start_server(cb, self.host, port, reuse_address=True, backlog=backlog)
        return server, server.sockets[0].getsockname()[1]

    # ------------------------------------------------------------------ lifecycle of an occurrence

    def go_down(self, occ, reason):
        occ.cancel_timers()
        was_up = occ.up
        occ.up = False
        occ.down_reason = reason
        occ.shutting_down = False
        occ.deliberating = False
        if reason == "exited" and was_up:
            self.lifecycle(occ, "exited")
        if self.layout == "ports":
            if occ.server is not None:
                occ.server.close()
                occ.server = None
            for w in list(occ.conns):
                try:
                    w.transport.abort()
                except Exception:
                    pass
            occ.conns.clear()

    async def bring_up(self, occ, version=None, restart=True):
        occ.cancel_timers()
        if version is not None:
            occ.version = str(version)
        if self.layout == "ports" and occ.server is None:
            occ.server = (await self._listen(occ.port, self._port_route(occ), occ, self.backlog))[0]
        now = time.time()
        occ.up = True
        occ.down_reason = None
        occ.shutting_down = False
        occ.deliberating = False
        occ.stuck = False
        if restart:
            occ.starts += 1
            occ.started_at = now
            occ.boot_until = now + float(occ.s["boot_seconds"])
            occ.busy_count = 0
            occ.updated = occ.version != occ.original_version
            if occ.updated and occ.s["crash_after_update"]:
                occ.timers.append(self.loop.call_later(float(occ.s["crash_seconds"]), self.go_down, occ, "crashed"))

    async def start_occurrence(self, occ, version=None, via="control"):
        """``/_sim/start``: (re)start an occurrence as a container recreate would.

        Recreating one that has not stopped (still working, deliberating or draining) is done, but
        recorded as a violation: nothing may replace an agent that has not stopped (PROTOCOL.md).
        """
        phase = occ.phase()
        if phase != "down":
            kind = "start_while_draining" if phase == "draining" else "start_while_running"
            occ.violations += 1
            entry = self.lifecycle(occ, "violation", kind=kind, phase=phase, via=via,
                                   version=str(version) if version is not None else occ.version)
            self.violations.append(entry)
        await self.bring_up(occ, version)
        self.lifecycle(occ, "started", version=occ.version, via=via)

    def begin_shutdown(self, occ, force=False):
        if occ.s["stuck_on_shutdown"]:
            occ.stuck = True
            return
        if occ.shutting_down:
            return
        occ.shutting_down = True
        occ.deliberating = False
        if occ.s["consent"] == "ciris":
            seconds = float(occ.s["force_drain_seconds"] if force else occ.s["drain_seconds"])
        else:
            seconds = float(occ.s["shutdown_exit_seconds"])
        self.lifecycle(occ, "drain_started", drain_seconds=seconds, force=bool(force))
        occ.timers.append(self.loop.call_later(seconds, self.go_down, occ, "exited"))

    # ------------------------------------------------------------------ blue-green candidates

    async def start_candidate(self, occ, version):
        """Start a candidate instance of ``occ`` on ``version`` beside it (ports layout: a port of its own).

        The candidate answers health and shutdown like an occurrence (named ``<name>@candidate`` in the log)
        and behaves like an updated one (``unhealthy_after_update``, ``boot_seconds``, ...); it is not
        primary: the occurrence's agent_url keeps serving the old version until the candidate is promoted.
        """
        old = self.candidates.pop(occ.name, None)
        if old is not None:
            self._close_candidate(old)
        cand = Occurrence.__new__(Occurrence)
        cand.__dict__.update(occ.__dict__)
        cand.name = occ.name + "@candidate"
        cand.s = dict(occ.s)
        cand.s["down"] = False
        cand.server, cand.conns, cand.timers, cand.decisions = None, set(), [], {}
        cand.timeline = dict.fromkeys(TIMELINE)
        cand.starts = cand.violations = cand.busy_count = 0
        cand.shutting_down = cand.deliberating = cand.stuck = False
        cand.last_decision = None
        cand.server, cand.port = await self._listen_candidate(cand)
        cand.agent_url = f"http://{self.host}:{cand.port}"
        await self.bring_up(cand, version)
        self.candidates[occ.name] = cand
        self.lifecycle(occ, "candidate_started", version=cand.version, candidate_url=cand.agent_url)
        return cand

    async def _listen_candidate(self, cand):
        """A candidate's listener: with a base port, on the next free port after the occurrences' range (below
        the ephemeral range when they are: a port the kernel hands out may carry another process's forwarding
        rule, e.g. a container's published port, which would take the candidate's connections); else a free port."""
        if not self.base_port:
            return await self._listen(0, self._port_route(cand), cand, self.backlog)
        if self._next_candidate_port is None:
            self._next_candidate_port = self.base_port + max(o.index for o in self.occs.values()) + 1
        for dummy in range(256):
            port, self._next_candidate_port = self._next_candidate_port, self._next_candidate_port + 1
            try:
                return await self._listen(port, self._port_route(cand), cand, self.backlog)
            except OSError:
                continue
        return await self._listen(0, self._port_route(cand), cand, self.backlog)

    def _close_candidate(self, cand):
        cand.cancel_timers()
        cand.up = False
        if cand.server is not None:
            cand.server.close()
            cand.server = None
        for w in list(cand.conns):
            try:
                w.transport.abort()
            except Exception:
                pass
        cand.conns.clear()

    async def promote_candidate(self, occ):
        """The candidate becomes the primary: the occurrence's agent_url serves it from now on (its version,
        uptime and behaviour), and the candidate's own address closes. Promoting over a primary that has not
        stopped is done, but recorded as a violation (the old primary must retire first)."""
        cand = self.candidates.pop(occ.name)
        phase = occ.phase()
        if phase != "down":
            kind = "start_while_draining" if phase == "draining" else "start_while_running"
            occ.violations += 1
            self.violations.append(self.lifecycle(occ, "violation", kind=kind, phase=phase, via="promotion",
                                                  version=cand.version))
        self._close_candidate(cand)
        await self.bring_up(occ, cand.version, restart=False)
        occ.started_at, occ.boot_until, occ.updated = cand.started_at, cand.boot_until, cand.updated
        occ.starts += 1
        self.lifecycle(occ, "candidate_promoted", version=occ.version)
        self.lifecycle(occ, "started", version=occ.version, via="promotion")

    def discard_candidate(self, occ):
        cand = self.candidates.pop(occ.name)
        self._close_candidate(cand)
        self.lifecycle(occ, "candidate_discarded", version=cand.version)

    def candidate_state(self, occ, now):
        cand = self.candidates.get(occ.name)
        if cand is None:
            return {"name": occ.name, "candidate": None}
        st = cand.state(now)
        st["primary"] = occ.name
        return {"name": occ.name, "candidate": st}

    # ------------------------------------------------------------------ routes

    def _port_route(self, occ):
        async def route(req):
            if not occ.up:
                return DROP
            return await self.occ_request(occ, req, req.path)
        return route

    async def _paths_route(self, req):
        prefix = self.path_prefix + "/"
        if not req.path.startswith(prefix):
            self.record(None, req, 404, event="no_route")
            return Reply(404, {"detail": f"no route for {req.path}"})
        rest = req.path[len(prefix):]
        name, dummy, sub = rest.partition("/")
        occ = self.occs.get(name)
        if occ is None:
            self.record(None, req, 404, event="no_route")
            return Reply(404, {"detail": f"no such agent {name!r}"})
        sub = "/" + sub
        if not occ.up and not sub.startswith("/_sim/"):
            self.record(occ, req, 502, event="down")
            return Reply(502, {"detail": "bad gateway: agent backend is down"})
        return await self.occ_request(occ, req, sub)

    def _auth(self, req):
        h = req.headers.get("authorization")
        if h is None:
            return "none"
        if self.auth_ok is None:
            return "ok"
        return "ok" if h == self.auth_ok else "bad"

    @staticmethod
    def _parse_body(req):
        if not req.raw_body:
            req.body = {}
            return True
        try:
            req.body = json.loads(req.raw_body)
            return True
        except ValueError:
            req.body = None
            return False

    async def occ_request(self, occ, req, sub):
        if sub.startswith("/_sim/"):
            return await self.occ_sim(occ, req, sub)
        ms = occ.s["slow_ms"]
        if ms:
            await asyncio.sleep(float(ms) / 1000.0)
            if not occ.up:
                self.record(occ, req, 0, event="down")
                return DROP if self.layout == "ports" else Reply(502, {"detail": "bad gateway: agent backend is down"})
        auth = self._auth(req)
        if sub == "/v1/system/health":
            if req.method != "GET":
                self.record(occ, req, 405, auth=auth, event="bad_method")
                return Reply(405, {"detail": "method not allowed"})
            if occ.s["garbage"]:
                self.record(occ, req, 200, auth=auth, event="health_garbage")
                return Reply(200, b"<html><body>definitely not json", "text/html")
            data = occ.health(time.time())
            self.record(occ, req, 200, auth=auth, event="health", cognitive_state=data["cognitive_state"],
                        health_status=data["status"])
            return Reply(200, {"data": data})
        if sub == "/v1/telemetry/overview":
            # CIRIS's SystemOverview (routes/telemetry_models.py), the fields a rollout reads; observer auth
            if auth != "ok":
                self.record(occ, req, 401, auth=auth, event="unauthorized")
                return Reply(401, {"detail": "invalid or missing bearer token"})
            now = time.time()
            done = occ.work_done(now) or {"tasks": 0, "errors": 0, "deferrals": 0}
            incidents = (occ.s.get("incidents_by_version") or {}).get(occ.version, occ.s["incidents"])
            data = {"uptime_seconds": round(max(0.0, now - occ.started_at), 3),
                    "cognitive_state": occ.health(now)["cognitive_state"], "tasks_completed_24h": done["tasks"],
                    "errors_24h": done["errors"], "active_deferrals": done["deferrals"], "recent_incidents": int(incidents),
                    "error_rate_percent": round(100.0 * done["errors"] / done["tasks"], 3) if done["tasks"] else 0.0}
            self.record(occ, req, 200, auth=auth, event="telemetry_overview")
            return Reply(200, {"data": data})
        if sub == "/v1/system/shutdown":
            if req.method != "POST":
                self.record(occ, req, 405, auth=auth, event="bad_method")
                return Reply(405, {"detail": "method not allowed"})
            ok = self._parse_body(req)
            if occ.s["reject_token"]:
                auth = "bad" if auth != "none" else auth
            if (self.auth_ok is not None and auth != "ok") or occ.s["reject_token"]:
                self.record(occ, req, 401, auth=auth, event="unauthorized")
                return Reply(401, {"detail": "invalid or missing bearer token"})
            if occ.s["consent"] == "ciris":
                errors = ciris_body_errors(ok, req.body)
                if errors:
                    self.record(occ, req, 422, auth=auth, event="bad_request",
                                errors=[".".join(str(x) for x in e["loc"]) for e in errors])
                    return Reply(422, {"detail": errors})
                self._requested(occ, req)
                return self.ciris_shutdown(occ, req, auth)
            if not ok or not isinstance(req.body, dict):
                self.record(occ, req, 400, auth=auth, event="bad_request")
                return Reply(400, {"detail": "request body is not a JSON object"})
            self._requested(occ, req)
            return self.shutdown(occ, req, auth)
        self.record(occ, req, 404, auth=auth, event="no_route")
        return Reply(404, {"detail": f"no route for {sub}"})

    # ------------------------------------------------------------------ shutdown decisions

    def _requested(self, occ, req):
        body = req.body
        self.lifecycle(occ, "shutdown_requested", consent=occ.s["consent"], deployment_id=body.get("deployment_id"),
                       scope=body.get("scope"), decision_ref=body.get("decision_ref"), force=body.get("force") is True)

    # ciris consent: answer "initiated" at once, show the decision only in behaviour

    @staticmethod
    def _initiated(req):
        return Reply(200, {"data": {"status": "initiated", "shutdown_initiated": True,
                                    "message": f"System shutdown initiated: {req.body.get('reason')}",
                                    "timestamp": iso(time.time())}})

    def ciris_shutdown(self, occ, req, auth):
        body = req.body
        s = occ.s
        dep = body.get("deployment_id")
        dep = str(dep) if dep not in (None, "") else None
        scope = body.get("scope") or "occurrence"
        ref = body.get("decision_ref")
        force = body.get("force") is True
        common = {"consent": "ciris", "deployment_id": dep, "scope": body.get("scope"), "decision_ref": ref,
                  "force": force}
        phase = occ.phase()
        if phase in ("deliberating", "draining") or occ.stuck:
            # already on it: ciris-agent's check_shutdown_already_requested answers 409, no second deliberation
            self.record(occ, req, 409, auth=auth, event="already_requested", phase=phase, **common)
            return Reply(409, {"detail": f"Shutdown already requested: {occ.shutdown_reason}"})
        occ.shutdown_reason = body.get("reason")
        if ref not in (None, "") and not s["old_version_agent"]:
            # a decision already made for all occurrences: comply without deliberating
            occ.last_decision = {"decision": "accept", "via": "decision_ref", "decision_ref": ref,
                                 "deployment_id": dep, "decided_at": iso(time.time())}
            self.record(occ, req, 200, auth=auth, event="complied", decision="accept", complied_via="decision_ref",
                        **common)
            self.begin_shutdown(occ, force)
            return self._initiated(req)
        agent_level = scope == "all_occurrences" and not s["old_version_agent"]
        choice = (s["deliberation"] or s["decision"]) if agent_level else s["decision"]
        if choice == "error":
            self.record(occ, req, 500, auth=auth, event="error", decision="reject", **common)
            return Reply(500, {"detail": "simulated internal error"})
        deliberation_id = new_decision_id()
        seconds = float(s["decide_seconds"])
        occ.deliberating = True
        self.record(occ, req, 200, auth=auth, event="deliberation",
                    deliberated_by="agent" if agent_level else "occurrence", deliberation_id=deliberation_id,
                    decide_seconds=seconds, **common)
        occ.timers.append(self.loop.call_later(seconds, self._ciris_decided, occ, choice, agent_level, dep, force,
                                               deliberation_id, body.get("target_version")))
        return self._initiated(req)

    def _ciris_decided(self, occ, choice, agent_level, dep, force, deliberation_id, target_version):
        """The end of a ciris deliberation: accept -> drain then exit; anything else -> go on working."""
        if not occ.up or not occ.deliberating:
            return
        occ.deliberating = False
        decision = "accept" if choice in ("accept", "noanswer") else choice
        now = time.time()
        occ.last_decision = {"decision": decision, "via": "deliberation", "deliberation_id": deliberation_id,
                             "deployment_id": dep, "decided_at": iso(now),
                             "deliberated_by": "agent" if agent_level else "occurrence"}
        if agent_level:
            outcome = {"decision": decision, "reason": occ.s["deliberation_reason"] or occ.s["decision_reason"],
                       "decision_id": deliberation_id, "decided_by": occ.name, "decided_at": iso(now),
                       "defer_until": None, "defer_until_ts": None, "answer": "initiated",
                       "deployment_id": dep, "scope": "all_occurrences", "target_version": target_version,
                       "consent": "ciris"}
            try:
                self.db(occ).put(f"shutdown_{dep or deliberation_id}", SHARED, "COMPLETED", outcome)
            except sqlite3.Error:
                pass
        self.lifecycle(occ, "decided", decision=decision, deliberation_id=deliberation_id, deployment_id=dep,
                       outcome="stops" if decision == "accept" else "keeps_working")
        if decision == "accept":
            self.begin_shutdown(occ, force)

    def db(self, occ) -> AgentDB:
        db = self.dbs.get(occ.agent_id)
        if db is None:
            db = self.dbs[occ.agent_id] = AgentDB(self.state_dir / f"{occ.agent_id}.db")
        return db

    def _answer(self, occ, req, auth, rec, event, **extra):
        """Reply with a recorded decision (rec: decision, reason, decision_id, defer_until[_ts], answer)."""
        d = rec["decision"]
        if rec.get("answer") == "noanswer":
            payload = {"data": {"status": "accepted", "message": "Shutdown initiated",
                                "shutdown_initiated": True, "timestamp": iso(time.time())}}
        else:
            payload = {"data": {"decision": d, "reason": rec.get("reason"),
                                "defer_until": rec.get("defer_until"), "decision_id": rec.get("decision_id")}}
        self.record(occ, req, 200, auth=auth, event=event, decision=d, decision_id=rec.get("decision_id"),
                    deployment_id=req.body.get("deployment_id"), scope=req.body.get("scope"),
                    decision_ref=req.body.get("decision_ref"), **extra)
        return Reply(200, payload)

    def _decide(self, occ, req, auth, choice, reason, defer_seconds, event_extra):
        """Turn a behaviour choice into a decision record, or an immediate busy/error reply."""
        s = occ.s
        if choice == "busy":
            if s["busy_times"] is None or occ.busy_count < int(s["busy_times"]):
                occ.busy_count += 1
                ms = int(s["busy_retry_after_ms"])
                self.record(occ, req, 409, auth=auth, event="busy", decision="defer",
                            deployment_id=req.body.get("deployment_id"), **event_extra)
                return Reply(409, {"detail": "agent is busy", "retry_after_ms": ms,
                                   "data": {"retry_after_ms": ms}})
            choice = s["decision_after_busy"]
        if choice == "error":
            self.record(occ, req, 500, auth=auth, event="error", decision="reject",
                        deployment_id=req.body.get("deployment_id"), **event_extra)
            return Reply(500, {"detail": "simulated internal error"})
        if choice == "busy":  # decision_after_busy: busy again -> answer busy
            ms = int(s["busy_retry_after_ms"])
            self.record(occ, req, 409, auth=auth, event="busy", decision="defer", **event_extra)
            return Reply(409, {"detail": "agent is busy", "retry_after_ms": ms})
        now = time.time()
        rec = {"decision": "accept" if choice == "noanswer" else choice, "answer": choice,
               "decision_id": new_decision_id(), "decided_by": occ.name, "decided_at": iso(now),
               "reason": reason, "defer_until": None, "defer_until_ts": None}
        if choice == "defer":
            rec["defer_until_ts"] = now + float(defer_seconds)
            rec["defer_until"] = iso(rec["defer_until_ts"])
        rec["final"] = choice != "defer"
        if rec["reason"] is None:
            rec["reason"] = {"accept": "shutdown accepted", "reject": "shutdown rejected: work in progress",
                             "defer": "shutdown deferred: finishing current task"}[rec["decision"]]
        return rec

    def _own_task(self, occ, dep, rec):
        if occ.multi and dep:
            try:
                self.db(occ).put(f"shutdown_{dep}_{occ.occurrence_id}", occ.occurrence_id,
                                 "COMPLETED" if rec.get("final") else "PENDING",
                                 {k: rec.get(k) for k in ("decision", "reason", "decision_id", "decided_by",
                                                          "decided_at", "defer_until")})
            except sqlite3.Error:
                pass

    def shutdown(self, occ, req, auth):
        body = req.body
        dep = body.get("deployment_id")
        dep = str(dep) if dep not in (None, "") else None
        scope = body.get("scope") or "occurrence"
        ref = body.get("decision_ref")
        s = occ.s
        now = time.time()
        after_defer = False
        prev = occ.decisions.get(dep) if dep else None
        if prev:
            if prev["final"] or now < (prev["defer_until_ts"] or 0):
                return self._answer(occ, req, auth, prev, "repeat")
            after_defer = True

        if not s["old_version_agent"]:
            if ref:
                row = self.db(occ).by_decision_id(str(ref))
                if row is not None:
                    return self._comply(occ, req, auth, dep, row, "decision_ref")
                # unknown decision id: fall back to deliberating itself (FSD: graceful degradation)
            elif scope == "all_occurrences":
                return self._shared_deliberation(occ, req, auth, dep)
            elif occ.multi:
                row = self._recent_shared(occ, dep)
                if row is not None:
                    return self._comply(occ, req, auth, dep, row, "shared_task")

        choice = s["decision_after_defer"] if after_defer else s["decision"]
        rec = self._decide(occ, req, auth, choice, s["decision_reason"], s["defer_seconds"],
                           {"scope": scope})
        if isinstance(rec, Reply):
            return rec
        if dep:
            occ.decisions[dep] = rec
        self._own_task(occ, dep, rec)
        if rec["decision"] == "accept":
            self.begin_shutdown(occ)
        return self._answer(occ, req, auth, rec, "deliberation", deliberated_by="occurrence",
                            after_defer=after_defer, answer=rec["answer"])

    def _recent_shared(self, occ, dep):
        db = self.db(occ)
        if dep:
            row = db.get(f"shutdown_{dep}")
            if row and row["agent_occurrence_id"] == SHARED and row["status"] == "COMPLETED":
                return row
        limit = iso(time.time() - float(occ.s["shared_decision_max_age"]))
        for row in db.shared_shutdowns():
            out = row["outcome"] or {}
            if row["status"] == "COMPLETED" and out.get("decision") == "accept" and row["created_at"] >= limit:
                return row
        return None

    def _comply(self, occ, req, auth, dep, row, via):
        out = row["outcome"] or {}
        d = out.get("decision", "accept")
        rec = {"decision": d, "decision_id": out.get("decision_id"), "reason":
               f"complying with the shared decision {out.get('decision_id')} made by {out.get('decided_by')}"
               + (f": {out.get('reason')}" if out.get("reason") else ""),
               "defer_until": out.get("defer_until") if d == "defer" else None,
               "defer_until_ts": out.get("defer_until_ts") if d == "defer" else None,
               "final": d != "defer", "answer": d, "decided_by": out.get("decided_by"),
               "decided_at": out.get("decided_at")}
        if dep and rec["final"]:
            occ.decisions[dep] = rec
        self._own_task(occ, dep, rec)
        if d == "accept":
            self.begin_shutdown(occ)
        return self._answer(occ, req, auth, rec, "complied", complied_via=via, shared_task=row["task_id"])

    def _shared_deliberation(self, occ, req, auth, dep):
        s = occ.s
        db = self.db(occ)
        now = time.time()
        task_id = f"shutdown_{dep}" if dep else None
        row = db.get(task_id) if task_id else None
        after_defer = False
        if row is not None:
            out = row["outcome"] or {}
            if row["status"] == "COMPLETED" or now < float(out.get("defer_until_ts") or 0):
                rec = dict(out)
                rec["final"] = row["status"] == "COMPLETED"
                if dep and rec["final"]:
                    occ.decisions[dep] = rec
                if rec["decision"] == "accept":
                    # first time this occurrence hears of it (else occ.decisions answered): comply
                    self.begin_shutdown(occ)
                return self._answer(occ, req, auth, rec, "repeat", shared_task=task_id)
            after_defer = True
        choice = s["deliberation_after_defer"] if after_defer else (s["deliberation"] or s["decision"])
        defer_seconds = s["deliberation_defer_seconds"]
        if defer_seconds is None:
            defer_seconds = s["defer_seconds"]
        rec = self._decide(occ, req, auth, choice, s["deliberation_reason"] or s["decision_reason"],
                           defer_seconds, {"scope": "all_occurrences"})
        if isinstance(rec, Reply):
            return rec
        if task_id is None:
            task_id = f"shutdown_{rec['decision_id']}"
        outcome = {k: rec[k] for k in ("decision", "reason", "decision_id", "decided_by", "decided_at",
                                       "defer_until", "defer_until_ts", "answer")}
        outcome["deployment_id"] = dep
        outcome["scope"] = "all_occurrences"
        outcome["target_version"] = req.body.get("target_version")
        db.put(task_id, SHARED, "COMPLETED" if rec["final"] else "PENDING", outcome)
        if dep:
            occ.decisions[dep] = rec
        if rec["decision"] == "accept":
            self.begin_shutdown(occ)
        return self._answer(occ, req, auth, rec, "deliberation", deliberated_by="agent",
                            shared_task=task_id, after_defer=after_defer, answer=rec["answer"])

    # ------------------------------------------------------------------ simulator endpoints

    async def occ_sim(self, occ, req, sub):
        self._parse_body(req)
        body = req.body if isinstance(req.body, dict) else {}
        now = time.time()
        if sub == "/_sim/status" and req.method == "GET":
            self.record(occ, req, 200, event="sim_status")
            return Reply(200, occ.state(now))
        if sub == "/_sim/start" and req.method == "POST":
            await self.start_occurrence(occ, body.get("version"), via="occurrence")
            self.record(occ, req, 200, event="sim_start", version=occ.version)
            return Reply(200, occ.state(time.time()))
        if sub == "/_sim/stop" and req.method == "POST":
            st = occ.state(now)
            st["up"] = False
            self.record(occ, req, 200, event="sim_stop")
            reply = Reply(200, st)
            if self.layout == "ports":
                # answer first, then take the listener down
                self.loop.call_soon(self.go_down, occ, "stopped")
            else:
                self.go_down(occ, "stopped")
            return reply
        if sub == "/_sim/configure" and req.method == "POST":
            try:
                await self.configure([occ], body.get("set") or body)
            except ConfigError as exc:
                self.record(occ, req, 400, event="sim_configure")
                return Reply(400, {"detail": str(exc)})
            self.record(occ, req, 200, event="sim_configure")
            return Reply(200, occ.state(time.time()))
        self.record(occ, req, 404, event="no_route")
        return Reply(404, {"detail": f"no sim route for {req.method} {sub}"})

    async def configure(self, occs, settings):
        settings = check_settings(dict(settings), "set")
        for occ in occs:
            for k, v in settings.items():
                if k == "version":
                    occ.version = v
                elif k != "down":
                    occ.s[k] = v
            if "down" in settings:
                occ.s["down"] = settings["down"]
                if settings["down"] and occ.up:
                    self.go_down(occ, "configured down")
                elif not settings["down"] and not occ.up:
                    await self.bring_up(occ)

    def _names(self, body):
        names = body.get("occurrences")
        if names in (None, "all"):
            return list(self.occs.values()), []
        if isinstance(names, str):
            names = [names]
        found, missing = [], []
        for n in names:
            o = self.occs.get(str(n))
            (found.append(o) if o else missing.append(n))
        return found, missing

    async def control_route(self, req):
        path = req.path.rstrip("/") or "/"
        now = time.time()
        if req.method == "GET":
            if path == "/_sim/healthz":
                return Reply(200, {"ok": True, "pid": os.getpid(), "occurrences": len(self.occs),
                                   "layout": self.layout, "seq": self.seq, "backlog": self.backlog,
                                   "violations": len(self.violations)})
            if path == "/_sim/violations":
                entries = self.violations
                for key in ("occurrence", "agent_id", "kind"):
                    if key in req.query:
                        wanted = set(req.query[key])
                        entries = [e for e in entries if str(e.get(key)) in wanted]
                by_kind = {"start_while_running": 0, "start_while_draining": 0}
                for e in entries:
                    by_kind[e["kind"]] = by_kind.get(e["kind"], 0) + 1
                return Reply(200, {"count": len(entries), "by_kind": by_kind, "violations": entries})
            if path == "/_sim/log":
                since = int((req.query.get("since") or ["0"])[0])
                entries = self.log
                if since:
                    # seq is monotonic: bisect would do, a scan from the end is enough
                    i = len(entries)
                    while i > 0 and entries[i - 1]["seq"] > since:
                        i -= 1
                    entries = entries[i:]
                for key in ("occurrence", "agent_id", "event", "path", "method", "run"):
                    if key in req.query:
                        wanted = set(req.query[key])
                        entries = [e for e in entries if str(e.get(key)) in wanted]
                return Reply(200, entries)
            if path in ("/metrics", "/_sim/metrics"):
                return Reply(200, self.metrics_text(now), ctype="text/plain; version=0.0.4")
            if path == "/_sim/candidates":
                return Reply(200, [self.candidate_state(o, now) for o in self.occs.values() if o.name in self.candidates])
            if path == "/_sim/occurrences":
                occs = self.occs.values()
                if "names" in req.query:
                    wanted = set(",".join(req.query["names"]).split(","))
                    occs = [o for o in occs if o.name in wanted]
                return Reply(200, [o.state(now) for o in occs])
            if path.startswith("/_sim/occurrences/"):
                occ = self.occs.get(path.rsplit("/", 1)[1])
                if occ is None:
                    return Reply(404, {"detail": "no such occurrence"})
                return Reply(200, occ.state(now))
            return Reply(404, {"detail": f"no route for GET {path}"})
        if req.method != "POST":
            return Reply(405, {"detail": "method not allowed"})
        if not self._parse_body(req) or not isinstance(req.body, dict):
            return Reply(400, {"detail": "body must be a JSON object"})
        body = req.body
        if path == "/_sim/log/reset":
            self.log = []
            self.record(None, req, 200, event="log_reset")
            return Reply(200, {"ok": True, "seq": self.seq})
        if path == "/_sim/violations/reset":
            dropped = len(self.violations)
            self.violations = []
            for occ in self.occs.values():
                occ.violations = 0
            self.record(None, req, 200, event="violations_reset", count=dropped)
            return Reply(200, {"ok": True, "count": dropped})
        if path in ("/_sim/candidates/start", "/_sim/candidates/promote", "/_sim/candidates/discard"):
            return await self._candidates_route(req, path.rsplit("/", 1)[1])
        if path in ("/_sim/start", "/_sim/stop", "/_sim/configure"):
            occs, missing = self._names(body)
            if missing:
                self.record(None, req, 404, event="sim_" + path.rsplit("/", 1)[1])
                return Reply(404, {"detail": f"unknown occurrences: {missing[:20]}"})
            if path == "/_sim/start":
                version = body.get("version")
                for occ in occs:
                    await self.start_occurrence(occ, version, via="control")
            elif path == "/_sim/stop":
                for occ in occs:
                    self.go_down(occ, "stopped")
            else:
                try:
                    await self.configure(occs, body.get("set") or {})
                except ConfigError as exc:
                    self.record(None, req, 400, event="sim_configure")
                    return Reply(400, {"detail": str(exc)})
            names = [o.name for o in occs]
            self.record(None, req, 200, event="sim_" + path.rsplit("/", 1)[1], occurrences=names[:50],
                        count=len(names))
            return Reply(200, {"ok": True, "count": len(names), "occurrences": [o.state(time.time()) for o in occs]})
        return Reply(404, {"detail": f"no route for POST {path}"})

    async def _candidates_route(self, req, action):
        event = "sim_candidates_" + action
        if self.layout != "ports":
            self.record(None, req, 400, event=event)
            return Reply(400, {"detail": "candidates need the ports layout"})
        occs, missing = self._names(req.body)
        if missing:
            self.record(None, req, 404, event=event)
            return Reply(404, {"detail": f"unknown occurrences: {missing[:20]}"})
        if action != "start":
            without = [o.name for o in occs if o.name not in self.candidates]
            if without:
                self.record(None, req, 409, event=event)
                return Reply(409, {"detail": f"no candidate for: {without[:20]}"})
        out = {}
        for occ in occs:
            if action == "start":
                cand = await self.start_candidate(occ, req.body.get("version"))
                out[occ.name] = {"agent_url": cand.agent_url, "version": cand.version}
            elif action == "promote":
                await self.promote_candidate(occ)
                out[occ.name] = {"agent_url": occ.agent_url, "version": occ.version}
            else:
                self.discard_candidate(occ)
                out[occ.name] = {"agent_url": None, "version": None}
        self.record(None, req, 200, event=event, occurrences=[o.name for o in occs][:50], count=len(occs))
        return Reply(200, {"ok": True, "count": len(occs), "candidates": out})

    # ------------------------------------------------------------------ startup

    def agent_url(self, occ) -> str:
        if self.layout == "ports":
            return f"http://{self.host}:{occ.port}"
        return f"http://{self.host}:{self.paths_port}{self.path_prefix}/{occ.name}"

    def write_inventory(self, path):
        q = json.dumps
        lines = ["all:", "  vars:", f"    fleetsim_control_url: {q(self.control_url)}",
                 '    ansible_python_interpreter: "{{ ansible_playbook_python }}"',
                 "  children:", "    agents:", "      hosts:"]
        for occ in self.occs.values():
            lines.append(f"        {q(occ.name)}: {{agent_url: {q(occ.agent_url)}, agent_id: {q(occ.agent_id)},"
                         f" occurrence_id: {q(occ.occurrence_id)}, ansible_connection: local}}")
        tmp = Path(str(path) + ".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, path)

    async def run(self):
        self.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        if self.log_path:
            self.log_fh = open(self.log_path, "a", buffering=1)
        self.control_server, self.control_port = await self._listen(self.control_port, self.control_route)
        self.control_url = f"http://{self.host}:{self.control_port}"
        if self.layout == "paths":
            self.paths_server, self.paths_port = await self._listen(self.base_port, self._paths_route,
                                                                    backlog=self.backlog)
            for occ in self.occs.values():
                occ.port = self.paths_port
                occ.agent_url = self.agent_url(occ)
                await self.bring_up(occ, restart=True)
                occ.starts = 0
        else:
            for occ in self.occs.values():
                port = self.base_port + occ.index if self.base_port else 0
                occ.server, occ.port = await self._listen(port, self._port_route(occ), occ, self.backlog)
                occ.agent_url = self.agent_url(occ)
                await self.bring_up(occ, restart=True)
                occ.starts = 0
        for occ in self.occs.values():
            if occ.s["down"]:
                self.go_down(occ, "configured down")
        if self.inventory:
            self.write_inventory(self.inventory)
        if self.ready_file:
            info = {"control_url": self.control_url, "inventory": str(self.inventory) if self.inventory else None,
                    "pid": os.getpid(), "occurrences": len(self.occs), "layout": self.layout,
                    "paths_url": (f"http://{self.host}:{self.paths_port}{self.path_prefix}"
                                  if self.layout == "paths" else None),
                    "log": str(self.log_path) if self.log_path else None, "state_dir": str(self.state_dir),
                    "backlog": self.backlog}
            tmp = Path(str(self.ready_file) + ".tmp")
            tmp.write_text(json.dumps(info))
            os.replace(tmp, self.ready_file)
        print(f"fleetsim: serving {len(self.occs)} occurrences ({self.layout}), control {self.control_url}",
              file=sys.stderr, flush=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self.loop.add_signal_handler(sig, self.stop_event.set)
            except (NotImplementedError, RuntimeError):
                pass
        await self.stop_event.wait()
        self.close()

    def close(self):
        for occ in list(self.occs.values()) + list(self.candidates.values()):
            occ.cancel_timers()
            if occ.server is not None:
                occ.server.close()
        for srv in (self.paths_server, self.control_server):
            if srv is not None:
                srv.close()
        if self.log_fh:
            self.log_fh.close()
        for db in self.dbs.values():
            db.conn.close()


__all__ = ["FleetSim", "DEFAULTS"]
