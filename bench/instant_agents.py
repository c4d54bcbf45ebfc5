"""Agents that restart themselves at once: the ``rollout_driver=none`` benchmark's fleet.

    python bench/instant_agents.py --count 1000 --ready-file ready.json [--restart-ms 0] [--inventory inv.yml]

One asyncio process on one port (the paths layout: ``agent_url`` =
``http://127.0.0.1:<port>/api/<name>``), HTTP/1.1 with keep-alive. Each agent
answers like a CIRIS agent (PROTOCOL.md): ``GET /v1/system/health`` with its
version and ``cognitive_state: work``; ``POST /v1/system/shutdown`` with 200
``initiated``, then it "exits" and its supervisor starts the requested
``target_version`` after ``--restart-ms`` (default 0: at once; while down it
answers 502 like a proxy with a dead backend). What is left is the
collection's own cost: fleetsim does much more per request (records, SQLite
state, consent deliberation), which would be measured too.

``GET /_versions`` -> ``{version: count}``; ``GET /_timeline`` -> per agent
``{"asked": t, "up": t, "first_probe_up": t, "last_probe": t}`` after it was asked
(``time.monotonic``: one clock for every process of the machine, so the benchmark
compares it with its own).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time


class Fleet:
    def __init__(self, count, restart_ms, version="1.0.0"):
        self.names = ["agent-%04d" % i for i in range(count)]
        self.version = dict((n, version) for n in self.names)
        self.down_until = {}
        self.restart = restart_ms / 1000.0
        self.timeline = dict((n, {}) for n in self.names)

    def health(self, name, now):
        until = self.down_until.get(name)
        if until is not None:
            if now < until:
                return 502, {"detail": "bad gateway"}
            del self.down_until[name]
        t = self.timeline[name]
        if "asked" in t:
            t.setdefault("first_probe_up", now)
            t["last_probe"] = now
        return 200, {"data": {"status": "healthy", "version": self.version[name], "cognitive_state": "work",
                              "initialization_complete": True, "uptime_seconds": 1.0, "occurrence_id": "default",
                              "agent_id": name}}

    def shutdown(self, name, body, now):
        target = body.get("target_version") if isinstance(body, dict) else None
        t = self.timeline[name]
        if "asked" not in t and target:
            t["asked"] = now
            t["up"] = now + self.restart
            self.version[name] = str(target)
            if self.restart > 0:
                self.down_until[name] = now + self.restart
        return 200, {"data": {"status": "initiated", "shutdown_initiated": True,
                              "message": "System shutdown initiated", "timestamp": time.time()}}


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
            parts = path.split("?", 1)[0].split("/")
            if path == "/_versions":
                counts = {}
                for v in fleet.version.values():
                    counts[v] = counts.get(v, 0) + 1
                status, payload = 200, counts
            elif path == "/_timeline":
                status, payload = 200, fleet.timeline
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
    fleet = Fleet(opts.count, opts.restart_ms)
    server = await asyncio.start_server(lambda r, w: handle(fleet, r, w), "127.0.0.1", opts.port, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    base = "http://127.0.0.1:%d" % port
    ready = {"url": base, "pid": os.getpid(),
             "members": [{"name": n, "agent_url": "%s/api/%s" % (base, n), "agent_id": n, "occurrence_id": "default"}
                         for n in fleet.names]}
    if opts.inventory:
        lines = ["all:", "  vars:", '    ansible_python_interpreter: "{{ ansible_playbook_python }}"',
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
    ap.add_argument("--restart-ms", type=float, default=0.0)
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--inventory", help="write an Ansible inventory of the agents here (group agents)")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
