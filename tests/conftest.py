"""Shared pytest setup for agentfleet.rollout.

* Makes ``ansible_collections.agentfleet.rollout`` importable for unit tests:
  by default a symlink tree under tests/output points at this checkout; with
  ``AGENTFLEET_COLLECTIONS_PATH`` set (``make test`` sets it to the collection
  built and installed from the tarball) that installed copy is used instead.
* ``run_playbook`` runs a real ``ansible-playbook`` against that collection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "tests" / "output"


def _collections_path() -> Path:
    env = os.environ.get("AGENTFLEET_COLLECTIONS_PATH")
    if env:
        return Path(env).resolve()
    base = OUTPUT / "dev-collections"
    link = base / "ansible_collections" / "agentfleet" / "rollout"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        try:
            link.symlink_to(REPO, target_is_directory=True)
        except FileExistsError:
            pass
    return base


COLLECTIONS_PATH = _collections_path()
if str(COLLECTIONS_PATH) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_PATH))
if str(REPO) not in sys.path:
    # fleetsim is a package at the repository root (not part of the collection)
    sys.path.insert(0, str(REPO))


def ansible_env(tmp_path: Path, **extra) -> dict:
    """Environment for a subprocess ansible-playbook run, isolated per test."""
    env = dict(os.environ)
    home = tmp_path / "ansible-home"
    home.mkdir(parents=True, exist_ok=True)
    bindir = str(Path(sys.executable).parent)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH),
            "ANSIBLE_HOME": str(home),
            "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "ANSIBLE_HOST_KEY_CHECKING": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_DEPRECATION_WARNINGS": "false",
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "PATH": bindir + os.pathsep + env.get("PATH", ""),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


class PlaybookResult:
    def __init__(self, proc: subprocess.CompletedProcess, report_path: Path | None):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.report_path = report_path

    @property
    def output(self) -> str:
        return self.stdout + "\n" + self.stderr

    def report(self) -> dict:
        assert self.report_path is not None and self.report_path.exists(), self.output
        return json.loads(self.report_path.read_text())

    def __repr__(self):  # pragma: no cover - debugging aid
        return f"<PlaybookResult rc={self.rc}>\n{self.output[-6000:]}"


def run_playbook(
    playbook: str,
    tmp_path: Path,
    inventory: Path | str | None = None,
    extra_vars: dict | None = None,
    check: bool = False,
    diff: bool = False,
    env: dict | None = None,
    timeout: int = 600,
    args: list | None = None,
    report_path: Path | None = None,
) -> PlaybookResult:
    """Run ``ansible-playbook`` on a playbook FQCN (``agentfleet.rollout.canary``) or path."""
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), playbook]
    if inventory is not None:
        cmd += ["-i", str(inventory)]
    else:
        cmd += ["-i", "localhost,", "-c", "local"]
    if extra_vars:
        varfile = tmp_path / f"extra-vars-{abs(hash(json.dumps(extra_vars, sort_keys=True, default=str)))}.json"
        varfile.write_text(json.dumps(extra_vars, default=str))
        cmd += ["-e", f"@{varfile}"]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    cmd += list(args or [])
    proc = subprocess.run(
        cmd,
        cwd=str(tmp_path),
        env=env or ansible_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return PlaybookResult(proc, report_path)


def parse_recap(output: str) -> dict:
    """PLAY RECAP rows: {host: {ok, changed, unreachable, failed, skipped, rescued, ignored}}."""
    import re

    rows = {}
    for line in output.splitlines():
        m = re.match(r"^(\S+)\s+: (ok=.*)$", line)
        if m:
            rows[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    assert rows, "no PLAY RECAP in output:\n" + output[-3000:]
    return rows


def task_results(output: str, task: str) -> dict:
    """{host: [ok|changed|failed, ...]}: what the task named ``task`` (role prefix included) printed per host."""
    import re

    found = {}
    for part in output.split("TASK [%s]" % task)[1:]:
        for line in part.split("TASK [")[0].splitlines():
            m = re.match(r"^(ok|changed|fatal): \[(\S+?)\]", line)
            if m:
                found.setdefault(m.group(2), []).append("failed" if m.group(1) == "fatal" else m.group(1))
    return found


@pytest.fixture
def playbook_runner(tmp_path):
    def _run(playbook, **kwargs):
        return run_playbook(playbook, tmp_path, **kwargs)

    return _run


# The integration modules with the longest tests (the `--durations` of make test) start first, each module's tests
# in their own order (module-scoped fixtures such as the podman engine are set up once): with two xdist workers, a
# long test that starts last keeps one worker busy while the other has nothing left to do.
LONG_FIRST = ("test_crash.py", "test_s3_state.py", "test_user_path.py", "test_kill.py", "test_matrix.py",
              "test_analysis.py", "test_canary.py")


def _playbooks_of(tmp: str) -> list:
    """Pids of the ansible-playbook processes whose command line names ``tmp`` (a test's own directory)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                cmdline = handle.read().decode("utf-8", "replace")
        except OSError:
            continue
        if "ansible-playbook" in cmdline and tmp in cmdline:
            pids.append(int(entry))
    return pids


@pytest.fixture(autouse=True)
def _reap_killed_runs(request):
    """After a test, no ansible-playbook of its own is left: ansible-core's workers start sessions of their own
    (setsid), so a kill -9 of a playbook's process group leaves its forked workers behind, blocked on a result
    pipe nobody reads. They are killed here, by the test directory their command line names."""
    tmp = str(request.getfixturevalue("tmp_path")) if "tmp_path" in request.fixturenames else None
    yield
    if tmp is None:
        return
    for pid in _playbooks_of(tmp):
        try:
            os.kill(pid, 9)
        except OSError:
            pass


def pytest_configure(config):
    config.addinivalue_line("markers", "timing: bounds an agent's downtime in seconds; `make integration-timing` "
                                       "runs these alone, one at a time, after the parallel integration tests")


def pytest_collection_modifyitems(session, config, items):
    del session, config
    items.sort(key=lambda item: 0 if item.nodeid.split("::", 1)[0].endswith(LONG_FIRST) else 1)
