# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real CIRIS agents (ciris-agent from PyPI) for the test suite, each in a network namespace of its own.

Library (the pytest fixtures) and command line (the update tasks of a rollout run it on each agent's
host: ``python ciris_harness.py restart AGENT_DIR``). Standard library only, Python >= 3.11.

* :func:`install` runs scripts/ciris-agent-env.sh (agent, Python 3.12 virtualenv, trixie's glibc) and
  returns its paths, or raises :class:`Unavailable` with the reason.
* :class:`Agent` starts one agent inside its namespace (only ``lo``: its embedded node dials public
  addresses and binds fixed ports; nothing leaves the machine), claims it for its owner, and stops it
  (SIGTERM; the process may hang after a graceful shutdown, so SIGTERM again, then SIGKILL).
* :class:`Forwarder` exposes the agent's API port on the host's loopback: each connection is relayed to
  a socket created inside the namespace; when nothing listens there it answers 502, like the reverse
  proxy in front of a real agent.
* ``restart``: what an update driver does to a real agent's process, recording in ``events.jsonl``
  whether the agent's API was still open when it was ended (it must not be: the rollout runs the
  update only once the agent has stopped).
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INSTALLER = REPO / "scripts" / "ciris-agent-env.sh"
CLONE_NEWNET = 0x40000000
API_PORT = 8080
NS_PREFIX = "afc"


class Unavailable(Exception):
    """The agent cannot run here (platform, privileges, no network for the install): the reason."""


def platform_problem():
    """Why this platform cannot run the agent at all (then the suite is skipped, even in CI), or None."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return "ciris-server ships a Linux x86_64 wheel only (this is %s %s)" % (sys.platform, platform.machine())
    return None


def environment_problem():
    """Why this Linux machine cannot run the suite (privileges, tools), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns)"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is missing"
    if not Path("/proc/self/ns/net").exists():
        return "no network namespace support (/proc/self/ns/net)"
    return None


def install(cache: Path, log: Path) -> dict:
    """Install (or reuse) the agent under ``cache``; its paths (CIRIS_* keys). Output goes to ``log``."""
    with open(log, "ab") as out:
        proc = subprocess.run(["bash", str(INSTALLER), str(cache)], stdout=subprocess.PIPE, stderr=out,
                              stdin=subprocess.DEVNULL, timeout=1200, check=False)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise Unavailable("ciris-agent could not be installed: %s" % " / ".join(tail))
    env_file = Path(proc.stdout.decode().strip().splitlines()[-1])
    return read_env(env_file)


def read_env(path: Path) -> dict:
    values = {}
    for line in Path(path).read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


# ---------------------------------------------------------------- namespaces
_libc = None


def setns(fd: int):
    """Move the calling thread into the network namespace ``fd`` (os.setns on Python >= 3.12)."""
    if hasattr(os, "setns"):
        os.setns(fd, CLONE_NEWNET)
        return
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


_NS_LOCK = threading.Lock()


def socket_in(netns: str) -> socket.socket:
    """A TCP socket created inside ``netns`` (the calling thread returns to its own namespace)."""
    with _NS_LOCK:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open("/run/netns/%s" % netns, os.O_RDONLY)
        try:
            setns(target)
            try:
                return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            finally:
                setns(own)
        finally:
            os.close(target)
            os.close(own)


def api_open(netns: str, port: int = API_PORT, timeout: float = 2.0) -> bool:
    """Does anything accept connections on the agent's API port inside its namespace?"""
    sock = socket_in(netns)
    sock.settimeout(timeout)
    try:
        sock.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def netns_add(name: str):
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)


def netns_pids(name: str) -> list:
    proc = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def netns_delete(name: str):
    """End every process inside ``name`` (TERM, TERM, KILL) and delete it."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        pids = netns_pids(name)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.1)
    subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


def delete_stale_namespaces():
    """Namespaces a killed earlier run left behind (named afc-<pid>-..., that pid gone)."""
    proc = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        parts = name.split("-")
        if len(parts) >= 3 and parts[0] == NS_PREFIX and parts[1].isdigit() and not alive(int(parts[1])):
            netns_delete(name)


def alive(pid: int) -> bool:
    """Is ``pid`` a running process (a zombie counts as gone)?"""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


# ---------------------------------------------------------------- forwarder
class Forwarder:
    """127.0.0.1:<free port> on the host -> 127.0.0.1:``port`` inside ``netns``."""

    BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n" \
                  b"Connection: close\r\n\r\nbad gateway"

    def __init__(self, netns: str, port: int = API_PORT):
        self.netns = netns
        self.port = port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.host_port = self.listener.getsockname()[1]
        self.closed = False
        self.thread = threading.Thread(target=self._accept, name="fwd-" + netns, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.host_port

    def _accept(self):
        while not self.closed:
            try:
                client, dummy = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket):
        try:
            backend = socket_in(self.netns)
            backend.settimeout(5)
            try:
                backend.connect(("127.0.0.1", self.port))
            except OSError:
                backend.close()
                try:
                    client.sendall(self.BAD_GATEWAY)
                finally:
                    client.close()
                return
            backend.settimeout(None)
        except OSError:
            client.close()
            return
        threading.Thread(target=self._pipe, args=(backend, client), daemon=True).start()
        self._pipe(client, backend)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
                try:
                    sock.shutdown(how)
                except OSError:
                    pass

    def close(self):
        self.closed = True
        try:
            self.listener.close()
        except OSError:
            pass


# ---------------------------------------------------------------- agents
def record(agent_dir: Path, event: str, **fields):
    line = dict(fields, event=event, at=time.time())
    with open(Path(agent_dir) / "events.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")


def events(agent_dir: Path) -> list:
    path = Path(agent_dir) / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Agent:
    """One real agent: its directory holds ``agent.json`` (how to start it), ``home/`` (CIRIS_HOME, with
    the ``.env`` that holds its service token: the agent's own file), ``wd/``, ``agent.log``, ``pid``,
    ``events.jsonl``."""

    def __init__(self, agent_dir: Path):
        self.dir = Path(agent_dir)
        self.spec = json.loads((self.dir / "agent.json").read_text())
        self.name = self.spec["name"]
        self.netns = self.spec["netns"]

    @classmethod
    def create(cls, agent_dir: Path, name: str, netns: str, token: str, paths: dict) -> "Agent":
        agent_dir = Path(agent_dir)
        home, wd = agent_dir / "home", agent_dir / "wd"
        home.mkdir(parents=True, exist_ok=True)
        wd.mkdir(parents=True, exist_ok=True)
        link = wd / "ciris_adapters"
        if not link.exists():
            link.symlink_to(paths["CIRIS_ADAPTERS"], target_is_directory=True)
        env_file = home / ".env"
        env_file.write_text('CIRIS_CONFIGURED="true"\nCIRIS_MOCK_LLM=true\nCIRIS_SERVICE_TOKEN=%s\n' % token)
        env_file.chmod(0o600)
        spec = {"name": name, "netns": netns, "port": API_PORT, "home": str(home), "wd": str(wd),
                "command": [paths["CIRIS_LOADER"], "--library-path", paths["CIRIS_LIBDIR"], paths["CIRIS_PYTHON"],
                            paths["CIRIS_AGENT"], "--adapter", "api", "--mock-llm", "--host", "127.0.0.1",
                            "--port", str(API_PORT)]}
        (agent_dir / "agent.json").write_text(json.dumps(spec, indent=1))
        return cls(agent_dir)

    @property
    def pid(self):
        try:
            return int((self.dir / "pid").read_text())
        except (OSError, ValueError):
            return None

    def start(self):
        """Start the process inside the namespace, detached (it outlives whoever started it)."""
        # nothing of ours leaks in: PYTEST_CURRENT_TEST, for one, makes the agent skip its edge runtime
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CIRIS_", "PYTHON", "VIRTUAL_ENV", "PYTEST", "ANSIBLE_", "AGENTFLEET_"))}
        env.update(CIRIS_HOME=self.spec["home"], CIRIS_MOCK_LLM="true", PYTHONUNBUFFERED="1")
        with open(self.dir / "agent.log", "ab") as log:
            proc = subprocess.Popen(["ip", "netns", "exec", self.netns] + self.spec["command"], cwd=self.spec["wd"],
                                    env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        (self.dir / "pid").write_text(str(proc.pid))
        record(self.dir, "started", pid=proc.pid)
        return proc

    def stop(self, first_wait: float = 5.0, second_wait: float = 15.0):
        """SIGTERM; if it is still there, SIGTERM again (it may hang after a graceful shutdown); then SIGKILL.
        Returns the signals sent."""
        pid = self.pid
        sent = []
        for sig, wait in ((signal.SIGTERM, first_wait), (signal.SIGTERM, second_wait), (signal.SIGKILL, 5.0)):
            if pid is None or not alive(pid):
                break
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            sent.append(signal.Signals(sig).name)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and alive(pid):
                time.sleep(0.1)
        record(self.dir, "stopped", pid=pid, signals=sent)
        return sent

    def restart(self):
        """An update driver's restart: note whether the API was still open, end the process, start it again."""
        was_open = api_open(self.netns, self.spec["port"])
        record(self.dir, "restart", api_open=was_open, pid=self.pid)
        self.stop()
        self.start()
        return was_open


# ---------------------------------------------------------------- HTTP (owner side)
def http(method: str, url: str, body=None, token=None, timeout: float = 10.0):
    """(status, parsed JSON or None); an error without an answer raises OSError."""
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer service:" + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def health(url: str, timeout: float = 5.0):
    """The agent's health ``data`` (dict), or None when it does not answer with JSON."""
    try:
        status, payload = http("GET", url + "/v1/system/health", timeout=timeout)
    except OSError:
        return None
    if status != 200 or not isinstance(payload, dict):
        return None
    return payload.get("data")


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError("%s: not within %.0fs" % (what, timeout))


def claim(agent: Agent, url: str, token: str, timeout: float = 120.0):
    """Claim a fresh agent for its owner (node code, software identity, the PIN in its data directory)."""
    def answering():
        if not alive(agent.pid or 0):
            raise RuntimeError("%s exited while starting (see %s)" % (agent.name, agent.dir / "agent.log"))
        data = health(url)
        return data if data and data.get("initialization_complete") else None

    data = wait_for(answering, timeout, "%s answering its health" % agent.name)
    if not any(w.get("code") == "node_unclaimed" for w in data.get("warnings") or []):
        return False
    status, code = http("GET", url + "/v1/federation/node-code", token=token)
    if status != 200:
        raise RuntimeError("%s: node-code answered %s" % (agent.name, status))
    status, dummy = http("POST", url + "/v1/self/identity", {"backend": "software", "label": agent.name}, token=token)
    if status != 200:
        raise RuntimeError("%s: identity answered %s" % (agent.name, status))
    pin = wait_for(lambda: _read(Path(agent.spec["home"]) / "claim_pin"), 30, "%s claim PIN" % agent.name)
    status, answer = http("POST", url + "/v1/setup/claim-remote",
                          {"node_code": code["code"], "claim_pin": pin, "cohort_scope": "self"}, token=token)
    if status != 200:
        reason = (answer or {}).get("reason_id") if isinstance(answer, dict) else None
        raise RuntimeError("%s: claim-remote answered %s (%s)" % (agent.name, status, reason))
    return True


def _read(path: Path):
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def in_work(url: str):
    data = health(url)
    return data if data and data.get("cognitive_state") == "work" else None


def main(argv):
    if len(argv) == 2 and argv[0] == "restart":
        was_open = Agent(Path(argv[1])).restart()
        print(json.dumps({"restarted": True, "api_was_open": was_open}))
        return 0
    print("usage: ciris_harness.py restart AGENT_DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
