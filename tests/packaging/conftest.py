"""Fixtures for the packaging tests (`make packaging-tests`).

The packaging tools (ansible-builder, ...) live in their own venv (`make tools-venv`, .venv-tools): they pull
ansible-core versions of their own. AGENTFLEET_TOOLS_BIN names its bin directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tools_bin() -> Path:
    path = Path(os.environ.get("AGENTFLEET_TOOLS_BIN", REPO / ".venv-tools" / "bin"))
    if not (path / "ansible-builder").exists():
        message = f"no packaging tools venv at {path} (make tools-venv)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def built_tarball(tmp_path_factory) -> Path:
    """A tarball built from this checkout with the test venv's ansible-galaxy."""
    out = tmp_path_factory.mktemp("tarball")
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    proc = subprocess.run([str(galaxy), "collection", "build", "--force", "--output-path", str(out), str(REPO)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tarball,) = out.glob("agentfleet-rollout-*.tar.gz")
    return tarball


@pytest.fixture(scope="session")
def tarball_names(built_tarball) -> list[str]:
    with tarfile.open(built_tarball) as tar:
        return [m.name for m in tar.getmembers()]
