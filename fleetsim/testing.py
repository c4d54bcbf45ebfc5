"""pytest helper: run a fleetsim server as a subprocess for the duration of a test.

    from fleetsim.testing import FleetSim

    with FleetSim(count=5, workdir=tmp_path) as sim:
        run_playbook(..., inventory=sim.inventory_path)
        assert sim.deliberations("agent-003") == 1
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

# the ports layout's agents without a base_port: a random range below the ephemeral range (Linux: 32768+)
LOW_PORTS = (10000, 32000)
ATTEMPTS = 8

REPO = Path(__file__).resolve().parents[1]
TASK_FILES = Path(__file__).resolve().parent / "ansible"


def tasks_driver_vars() -> dict:
    """Extra vars that update fleetsim agents the way users update theirs: the collection's ``tasks`` driver
    with fleetsim's task files (fleetsim/ansible/, kept out of the collection's tarball), which call the
    simulator's control port (``fleetsim_control_url``, set by its inventory):

    * update.yml: ``/_sim/start`` on ``rollout_update_version`` (update, revert, wakeup);
    * candidate.yml and retire.yml: ``/_sim/candidates/{start,promote,discard}`` (blue-green).
    """
    return {
        "rollout_driver": "tasks",
        "rollout_update_tasks": str(TASK_FILES / "update.yml"),
        "rollout_candidate_tasks": str(TASK_FILES / "candidate.yml"),
        "rollout_retire_tasks": str(TASK_FILES / "retire.yml"),
    }


class FleetSimError(RuntimeError):
    pass


def http(method: str, url: str, body=None, headers=None, timeout: float = 10.0):
    """Tiny HTTP helper: returns (status, parsed JSON or raw text)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


class FleetSim:
    """Start ``python -m fleetsim serve`` for a test; a context manager.

    config: the fleet config mapping (docs/fleetsim.md) or None; count: N single-occurrence agents;
    layout: "ports" or "paths"; token: bearer token (passed through FLEETSIM_TOKEN, never argv);
    workdir: where config, inventory, log, state and ready file go (default: a new temp dir);
    consent: "explicit" or "ciris" (--consent: the default of every occurrence; the config wins);
    backlog: listen backlog of the agent listener(s) (--backlog); extra_args: more CLI arguments.
    """

    def __init__(self, config: dict | None = None, count: int | None = None, layout: str = "ports",
                 token: str | None = None, workdir: Path | str | None = None, version: str | None = None,
                 base_port: int = 0, extra_args: list | None = None, startup_timeout: float = 60.0,
                 consent: str | None = None, backlog: int | None = None):
        self.config = config
        self.count = count
        self.layout = layout
        self.token = token
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="fleetsim-"))
        self.version = version
        self.base_port = base_port
        self.extra_args = list(extra_args or [])
        self.consent = consent
        self.backlog = backlog
        self.startup_timeout = startup_timeout
        self.proc = None
        self.ready: dict = {}
        self.inventory_path = self.workdir / "fleetsim-inventory.yml"
        self.log_path = self.workdir / "fleetsim-requests.jsonl"
        self.ready_path = self.workdir / "fleetsim-ready.json"
        self.state_dir = self.workdir / "fleetsim-state"
        self.stderr_path = self.workdir / "fleetsim-stderr.txt"
        self.control_url = None

    # ------------------------------------------------------------------ process

    def start(self, names=None, version=None):
        """Without arguments: start the server. With names: batch-start those occurrences (see start_occurrences).

        With the ``ports`` layout and no ``base_port``, the agents' ports are taken below Linux's ephemeral range
        (32768+): an agent closes its port while it restarts, and in the ephemeral range any client socket on a
        busy machine could take it meanwhile (its restart then fails and the agent refuses connections for good).
        A random base is tried again when a port of its range is taken."""
        if names is not None or self.proc is not None:
            return self.start_occurrences(names, version)
        if self.base_port or self.layout != "ports":
            return self._start(self.base_port)
        size = self._size()
        for dummy in range(ATTEMPTS - 1):
            try:
                return self._start(self._low_base(size))
            except FleetSimError as exc:
                if "address already in use" not in str(exc).lower():
                    raise
                self.proc = None
        return self._start(self._low_base(size))

    @staticmethod
    def _low_base(size):
        """A random first port below the ephemeral range: the occurrences' ports, then as many for candidates."""
        return random.randrange(LOW_PORTS[0] + 1, LOW_PORTS[1] - 2 * size - 64)

    def _size(self):
        """How many occurrences the configuration makes (their ports are consecutive)."""
        if self.count is not None and self.config is None:
            return self.count
        from fleetsim.config import build_fleet

        return len(build_fleet(self.config, count=self.count))

    def _start(self, base_port):
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.ready_path.exists():
            self.ready_path.unlink()
        cmd = [sys.executable, "-m", "fleetsim", "serve", "--layout", self.layout,
               "--base-port", str(base_port), "--inventory", str(self.inventory_path),
               "--log", str(self.log_path), "--state-dir", str(self.state_dir),
               "--ready-file", str(self.ready_path)]
        if base_port == 0:
            cmd += ["--control-port", "0"]
        elif self.base_port == 0:
            # the control port just below the agents' range (the server's default is a fixed port)
            cmd += ["--control-port", str(base_port - 1)]
        if self.config is not None:
            cfg = self.workdir / "fleetsim-config.json"
            cfg.write_text(json.dumps(self.config))
            cmd += ["--config", str(cfg)]
        if self.count is not None:
            cmd += ["--count", str(self.count)]
        if self.version is not None:
            cmd += ["--version", self.version]
        if self.consent is not None:
            cmd += ["--consent", self.consent]
        if self.backlog is not None:
            cmd += ["--backlog", str(self.backlog)]
        cmd += self.extra_args
        env = dict(os.environ)
        env.pop("FLEETSIM_TOKEN", None)
        if self.token:
            env["FLEETSIM_TOKEN"] = self.token
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=str(REPO), env=env, stdout=subprocess.DEVNULL, stderr=self._stderr)
        deadline = time.monotonic() + self.startup_timeout
        while not self.ready_path.exists():
            if self.proc.poll() is not None:
                self._stderr.close()
                raise FleetSimError(f"fleetsim exited with {self.proc.returncode}: "
                                    f"{self.stderr_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                self.close()
                raise FleetSimError("fleetsim did not become ready in time")
            time.sleep(0.02)
        self.ready = json.loads(self.ready_path.read_text())
        self.control_url = self.ready["control_url"]
        return self

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_stderr", None) is not None:
            self._stderr.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ control API

    def control(self, method: str, path: str, body=None):
        status, data = http(method, self.control_url + path, body)
        if status != 200:
            raise FleetSimError(f"{method} {path} -> {status}: {data}")
        return data

    def log(self, since: int = 0, **filters) -> list:
        """Request log entries (optionally seq > since, filtered by occurrence/agent_id/event/path/method)."""
        from urllib.parse import urlencode

        q = {"since": since} if since else {}
        q.update({k: v for k, v in filters.items() if v is not None})
        return self.control("GET", "/_sim/log" + ("?" + urlencode(q) if q else ""))

    def reset_log(self):
        return self.control("POST", "/_sim/log/reset", {})

    def occurrences(self) -> dict:
        """State of every occurrence, keyed by occurrence name."""
        return {o["name"]: o for o in self.control("GET", "/_sim/occurrences")}

    def occurrence(self, name: str) -> dict:
        return self.control("GET", f"/_sim/occurrences/{name}")

    def start_occurrences(self, names=None, version=None) -> dict:
        body = {"occurrences": names if names is not None else "all"}
        if version is not None:
            body["version"] = version
        return self.control("POST", "/_sim/start", body)

    def candidates(self, action=None, names=None, version=None):
        """Blue-green candidates: without ``action`` the list of candidates (GET /_sim/candidates); with
        ``action`` ``start`` (on ``version``), ``promote`` or ``discard`` for ``names``."""
        if action is None:
            return self.control("GET", "/_sim/candidates")
        if isinstance(names, str):
            names = [names]
        body = {"occurrences": names}
        if version is not None:
            body["version"] = version
        return self.control("POST", "/_sim/candidates/" + action, body)

    def stop(self, names=None):
        """stop(names): take those occurrences down (the server keeps running).

        stop() without names terminates the whole simulator (same as close()): every agent goes away."""
        if names is None:
            return self.close()
        if isinstance(names, str):
            names = [names]
        return self.control("POST", "/_sim/stop", {"occurrences": names})

    def configure(self, names, **settings) -> dict:
        if isinstance(names, str):
            names = [names]
        return self.control("POST", "/_sim/configure", {"occurrences": names, "set": settings})

    # ------------------------------------------------------------------ conveniences

    def inventory(self) -> dict:
        import yaml

        return yaml.safe_load(self.inventory_path.read_text())

    def hosts(self) -> dict:
        return self.inventory()["all"]["children"]["agents"]["hosts"]

    def url(self, name: str) -> str:
        return self.occurrence(name)["agent_url"]

    def deliberations(self, agent_id: str | None = None, occurrence: str | None = None) -> int:
        """How many times an agent (or one occurrence) deliberated on a shutdown."""
        return len(self.log(event="deliberation", agent_id=agent_id, occurrence=occurrence))

    def violations(self, occurrence: str | None = None, kind: str | None = None) -> dict:
        """``{"count", "by_kind", "violations": [log entries]}``: /_sim/start on an occurrence that had not stopped."""
        from urllib.parse import urlencode

        q = {k: v for k, v in (("occurrence", occurrence), ("kind", kind)) if v is not None}
        return self.control("GET", "/_sim/violations" + ("?" + urlencode(q) if q else ""))

    def reset_violations(self) -> dict:
        return self.control("POST", "/_sim/violations/reset", {})

    def timeline(self, name: str) -> dict:
        """Latest unix time of shutdown_requested, drain_started, exited, started (None: never)."""
        return self.occurrence(name)["timeline"]

    def phase(self, name: str) -> str:
        """working | deliberating | draining | down."""
        return self.occurrence(name)["phase"]

    def events(self, name: str | None = None, path: str | None = None) -> list:
        return [e["event"] for e in self.log(occurrence=name, path=path)]

    def health(self, name: str, timeout: float = 5.0):
        return http("GET", self.url(name) + "/v1/system/health", timeout=timeout)

    def shutdown(self, name: str, body: dict | None = None, token: str | None = None, timeout: float = 5.0):
        headers = {"Authorization": f"Bearer {token or self.token}"} if (token or self.token) else {}
        return http("POST", self.url(name) + "/v1/system/shutdown", body or {}, headers, timeout=timeout)


class Supervisor:
    """The agents' own supervisor, as the ``none`` update driver expects one (systemd ``Restart=``, a restart
    policy): while in the ``with`` block, starts every agent of ``sim`` that is down on ``version``, checking
    every ``interval`` seconds."""

    def __init__(self, sim, version, interval=0.1):
        self.sim, self.version, self.interval = sim, version, interval
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.done.wait(self.interval):
            try:
                down = [n for n, o in self.sim.occurrences().items() if not o["up"]]
                if down:
                    self.sim.start_occurrences(down, self.version)
            except (OSError, FleetSimError):  # the simulator is going away at the end of the test
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(10)
