"""The execution environment definition: `ansible-builder create` makes a complete build context, and
ansible-builder's introspection finds the collection's Python and system requirements once it is installed.

ansible-builder writes the build instruction file of a container runtime: `Containerfile` for podman,
`Dockerfile` for docker (its docs, "CLI Usage"). Unless told (`build --container-runtime`, `create
--output-filename`) it picks podman when `podman` is on PATH and docker otherwise (ansible_builder/constants.py),
so every `create` here names the file: the tests pass whichever runtime the machine has, or none.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _requirement_lines(path: Path) -> list[str]:
    return [line.split("#")[0].strip() for line in path.read_text().splitlines() if line.split("#")[0].strip()]


# container runtime -> the build instruction file ansible-builder writes for it
INSTRUCTION_FILES = {"podman": "Containerfile", "docker": "Dockerfile"}


@pytest.mark.parametrize("runtime", sorted(INSTRUCTION_FILES))
def test_builder_create_makes_the_context(tmp_path, tools_bin, built_tarball, runtime):
    src = tmp_path / "src"
    (src / "build").mkdir(parents=True)
    for name in ("execution-environment.yml", "requirements.txt", "bindep.txt"):
        shutil.copy(REPO / name, src / name)
    shutil.copy(built_tarball, src / "build" / built_tarball.name)
    context = tmp_path / "context"
    proc = subprocess.run([str(tools_bin / "ansible-builder"), "create", "-f", "execution-environment.yml",
                           "--context", str(context), "--output-filename", INSTRUCTION_FILES[runtime]],
                          cwd=src, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    build = context / "_build"
    name = INSTRUCTION_FILES[runtime]
    # exactly the runtime's file, not the other one
    assert sorted(p.name for p in context.iterdir() if p.is_file()) == [name]
    containerfile = (context / name).read_text()
    # the collection tarball, installed by ansible-galaxy from the galaxy requirements
    assert (build / "agentfleet-collection" / built_tarball.name).is_file()
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())
    (collection,) = galaxy["collections"]
    assert collection == {"name": "/tmp/agentfleet-collection/agentfleet-rollout.tar.gz", "type": "file"}
    assert "COPY _build/agentfleet-collection/ /tmp/agentfleet-collection/" in containerfile
    assert "ansible-galaxy collection install" in containerfile
    # the Python and system requirements
    assert _requirement_lines(build / "requirements.txt") == _requirement_lines(REPO / "requirements.txt")
    assert _requirement_lines(build / "bindep.txt") == _requirement_lines(REPO / "bindep.txt")
    assert "--user-pip=requirements.txt --user-bindep=bindep.txt" in containerfile
    # ansible-core within what meta/runtime.yml allows, and ansible-runner (AWX runs jobs through it)
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    lowest = runtime["requires_ansible"].lstrip(">=").rsplit(".", 1)[0]
    assert f"ansible-core>={lowest}" in containerfile
    assert "ansible-runner" in containerfile
    assert containerfile.startswith('ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"')


def test_introspection_finds_the_collection_requirements(tmp_path, tools_bin, built_tarball):
    """What an EE that installs the collection (e.g. from Galaxy) gets: meta/execution-environment.yml."""
    collections = tmp_path / "collections"
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    subprocess.run([str(galaxy), "collection", "install", "-p", str(collections), str(built_tarball)],
                   capture_output=True, text=True, check=True)
    context = tmp_path / "context"
    subprocess.run([str(tools_bin / "ansible-builder"), "create", "-f", str(REPO / "execution-environment.yml"),
                    "--context", str(context), "--output-filename", "Containerfile"],
                   cwd=tmp_path, capture_output=True, text=True, check=False)
    introspect = context / "_build" / "scripts" / "introspect.py"
    assert introspect.is_file()
    proc = subprocess.run([str(tools_bin / "python"), str(introspect), "introspect", str(collections)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = yaml.safe_load(proc.stdout[proc.stdout.index("---"):])
    python = [line.split("#")[0].strip() for line in found["python"]]
    system = [line.split("#")[0].strip() for line in found["system"]]
    # ansible-builder leaves out what ansible-core itself brings (PyYAML)
    expected = [req for req in _requirement_lines(REPO / "requirements.txt") if not req.lower().startswith("pyyaml")]
    assert python == expected
    assert system == _requirement_lines(REPO / "bindep.txt")
