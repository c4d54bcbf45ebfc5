"""Bench agents that answer like CIRIS agents: the ``rollout_driver=none`` (and ``tasks``) benchmarks' fleet.

    python bench/instant_agents.py --count 1000 --ready-file ready.json [--inventory inv.yml]
        [--drain-ms 0] [--restart-ms 0] [--boot-ms 0] [--no-supervisor]

One asyncio process on one port (the paths layout: ``agent_url`` =
``http://127.0.0.1:<port>/api/<name>``), HTTP/1.1 with keep-alive. Each agent
answers like a CIRIS agent (PROTOCOL.md): ``GET /v1/system/health`` with its
version and ``cognitive_state``; ``POST /v1/system/shutdown`` with 200
``initiated``, and then it lives through what a CIRIS agent under a supervisor
does:

1. **drains** ``--drain-ms`` (``cognitive_state: shutdown``, old version, still answering);
2. **is down** (its process exited: 502, like a proxy with a dead backend) until its supervisor
   starts it again ``--restart-ms`` later, on the requested ``target_version``;
3. **boots** ``--boot-ms`` (``status: initializing``, ``cognitive_state: wakeup``,
   ``initialization_complete: false``, new version);
4. **works** on the new version.

All of them 0 (the defaults): the agent is back on the new version at once.
``--no-supervisor``: nothing restarts an agent that exited; it stays down until
``GET /_start/<name>?version=V`` (the ``tasks`` driver's update task calls it;
the inventory's ``bench_control_url`` is the base). What is left is the
collection's own cost: fleetsim does much more per request (records, SQLite
state, consent deliberation), which would be measured too.

``GET /_versions`` -> ``{version: count}``; ``GET /_timeline`` -> per agent
``{"asked": t, "drained": t, "up": t, "first_probe_up": t, "last_probe": t}`` after it was asked
(``up``: boot done; ``time.monotonic``: one clock for every process of the machine, so the
benchmark compares it with its own); ``GET /_violations`` -> starts of agents that had not stopped.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from urllib.parse import parse_qs


class Fleet:
    def __init__(self, count, restart_ms=0.0, drain_ms=0.0, boot_ms=0.0, supervisor=True, version="1.0.0"):
        self.names = ["agent-%04d" % i for i in range(count)]
        self.version = dict((n, version) for n in self.names)
        self.restart = restart_ms / 1000.0
        self.drain = drain_ms / 1000.0
        self.boot = boot_ms / 1000.0
        self.supervisor = supervisor
        # name -> {"target", "drained" (end of the drain), "back" (process started; None: not yet), "ready"}
        self.life = {}
        self.timeline = dict((n, {}) for n in self.names)
        self.violations = 0

    def _working(self, name, now):
        t = self.timeline[name]
        if "asked" in t:
            t.setdefault("first_probe_up", now)
            t["last_probe"] = now
        return 200, {"data": {"status": "healthy", "version": self.version[name], "cognitive_state": "work",
                              "initialization_complete": True, "uptime_seconds": 1.0, "occurrence_id": "default",
                              "agent_id": name}}

    def health(self, name, now):
        life = self.life.get(name)
        if life is None:
            return self._working(name, now)
        if now < life["drained"]:
            return 200, {"data": {"status": "healthy", "version": self.version[name], "cognitive_state": "shutdown",
                                  "initialization_complete": True, "uptime_seconds": 1.0,
                                  "occurrence_id": "default", "agent_id": name}}
        if life["back"] is None or now < life["back"]:
            return 502, {"detail": "bad gateway"}
        self.version[name] = life["target"]
        if now < life["ready"]:
            return 200, {"data": {"status": "initializing", "version": self.version[name],
                                  "cognitive_state": "wakeup", "initialization_complete": False,
                                  "uptime_seconds": round(now - life["back"], 3), "occurrence_id": "default",
                                  "agent_id": name}}
        del self.life[name]
        return self._working(name, now)

    def shutdown(self, name, body, now):
        target = body.get("target_version") if isinstance(body, dict) else None
        if name not in self.life:
            # a working agent accepts: drain, exit, (its supervisor) start it on the requested version
            t = self.timeline[name]
            life = {"target": str(target) if target else self.version[name], "drained": now + self.drain}
            if self.supervisor:
                life["back"] = life["drained"] + self.restart
                life["ready"] = life["back"] + self.boot
                t.setdefault("up", life["ready"])
            else:
                life["back"] = life["ready"] = None
            t.setdefault("asked", now)
            t.setdefault("drained", life["drained"])
            self.life[name] = life
            if self.drain == 0 and self.restart == 0 and self.boot == 0 and self.supervisor:
                self.version[name] = life["target"]
                del self.life[name]
        return 200, {"data": {"status": "initiated", "shutdown_initiated": True,
                              "message": "System shutdown initiated", "timestamp": time.time()}}

    def version_now(self, name, now):
        life = self.life.get(name)
        if life is not None and life["back"] is not None and now >= life["back"]:
            return life["target"]
        return self.version[name]

    def start(self, name, version, now):
        """The update of an agent whose supervisor does not restart it (``--no-supervisor``)."""
        life = self.life.get(name)
        if life is None or now < life["drained"] or (life["back"] is not None and now >= life["back"]):
            self.violations += 1   # started while it had not stopped: what nothing may do
            life = {"drained": now}
            self.life[name] = life
        life["target"] = str(version or self.version[name])
        life["back"] = now
        life["ready"] = now + self.boot
        self.timeline[name]["up"] = life["ready"]
        return 200, {"started": name, "version": life["target"]}


async def handle(fleet, reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            method, path, dummy = line.decode("latin-1").split(" ", 2)
            length = 0
            while True:
                h = await reader.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                k, dummy, v = h.decode("latin-1").partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            raw = await reader.readexactly(length) if length else b""
            now = time.monotonic()
            status, payload = 404, {"detail": "not found"}
            path, dummy, query = path.partition("?")
            parts = path.split("/")
            if path == "/_versions":
                counts = {}
                for n in fleet.names:
                    v = fleet.version_now(n, now)
                    counts[v] = counts.get(v, 0) + 1
                status, payload = 200, counts
            elif path == "/_timeline":
                status, payload = 200, fleet.timeline
            elif path == "/_violations":
                status, payload = 200, {"violations": fleet.violations}
            elif len(parts) == 3 and parts[1] == "_start" and parts[2] in fleet.version:
                status, payload = fleet.start(parts[2], parse_qs(query).get("version", [None])[0], now)
            elif len(parts) >= 5 and parts[1] == "api" and parts[2] in fleet.version:
                name, rest = parts[2], "/" + "/".join(parts[3:])
                if method == "GET" and rest == "/v1/system/health":
                    status, payload = fleet.health(name, now)
                elif method == "POST" and rest == "/v1/system/shutdown":
                    try:
                        body = json.loads(raw or b"{}")
                    except ValueError:
                        body = None
                    status, payload = fleet.shutdown(name, body, now)
            data = json.dumps(payload).encode()
            writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                         % (status, len(data)) + data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError, ValueError):
        pass
    finally:
        writer.close()


async def main_async(opts):
    fleet = Fleet(opts.count, opts.restart_ms, opts.drain_ms, opts.boot_ms, supervisor=not opts.no_supervisor)
    server = await asyncio.start_server(lambda r, w: handle(fleet, r, w), "127.0.0.1", opts.port, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    base = "http://127.0.0.1:%d" % port
    ready = {"url": base, "pid": os.getpid(),
             "members": [{"name": n, "agent_url": "%s/api/%s" % (base, n), "agent_id": n, "occurrence_id": "default"}
                         for n in fleet.names]}
    if opts.inventory:
        lines = ["all:", "  vars:", '    ansible_python_interpreter: "{{ ansible_playbook_python }}"',
                 "    bench_control_url: %s" % json.dumps(base),
                 "  children:", "    agents:", "      hosts:"]
        for m in ready["members"]:
            lines.append("        %s: {agent_url: %s, agent_id: %s, occurrence_id: default, ansible_connection: local}"
                         % (json.dumps(m["name"]), json.dumps(m["agent_url"]), json.dumps(m["agent_id"])))
        with open(opts.inventory, "w") as f:
            f.write("\n".join(lines) + "\n")
        ready["inventory"] = opts.inventory
    tmp = opts.ready_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(ready, f)
    os.replace(tmp, opts.ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--drain-ms", type=float, default=0.0, help="cognitive_state shutdown this long after the ask")
    ap.add_argument("--restart-ms", type=float, default=0.0,
                    help="down (502) this long before its supervisor starts it")
    ap.add_argument("--boot-ms", type=float, default=0.0, help="wakeup, initialization_complete false this long")
    ap.add_argument("--no-supervisor", action="store_true",
                    help="an agent that exited stays down until GET /_start/<name>?version=V")
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--inventory", help="write an Ansible inventory of the agents here (group agents)")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
