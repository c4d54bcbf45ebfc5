"""What the built collection tarball ships (galaxy.yml build_ignore), and its Galaxy metadata."""

from __future__ import annotations

import fnmatch
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())

# Top-level entries of the tarball: the collection itself. Development machinery (the
# simulated fleet and all that needs it: demos, unit/integration tests, molecule, bench,
# the AWX project) stays out.
SHIPPED_TOP = {
    "MANIFEST.json", "FILES.json", "README.md", "LICENSE", "requirements.txt", "bindep.txt",
    "execution-environment.yml", "meta", "plugins", "roles", "playbooks", "docs", "changelogs",
    "inventory-example", "tests",
}
# build_ignore entries for files that only exist after a build or a test run, never in git
GENERATED = {".venv", ".venv-*", ".git", ".ansible", ".pytest_cache", "**/__pycache__", "*.tar.gz",
             "build", "tests/output"}


def test_tarball_ships_the_collection_only(tarball_names):
    top = {name.split("/", 1)[0] for name in tarball_names}
    assert top <= SHIPPED_TOP, sorted(top - SHIPPED_TOP)
    assert {"LICENSE", "README.md", "meta", "plugins", "roles", "playbooks"} <= top
    tests = {name for name in tarball_names if name.startswith("tests/") and name != "tests/"}
    assert tests and all(name.startswith("tests/sanity") for name in tests), sorted(tests)
    assert not [name for name in tarball_names if "fleetsim/" in name.split("/", 1)[0] + "/"]


def test_no_fleetsim_code_in_the_tarball(built_tarball, tarball_names):
    """The simulator is a test tool: no fleetsim file, no fleetsim_* plugin, no fleetsim driver or control port in
    anything the collection ships (issue 19: tests update fleetsim agents through the tasks driver, as users do)."""
    import tarfile

    # the docs (docs/fleetsim.md) and changelog fragments may name it; no other file may
    named = [n for n in tarball_names if "fleetsim" in n.lower() and not n.startswith(("docs/", "changelogs/"))]
    assert not named, named
    code = [n for n in tarball_names if n.startswith(("plugins/", "roles/", "playbooks/", "meta/"))
            and n.endswith((".py", ".yml", ".yaml"))]
    assert code
    found = []
    with tarfile.open(built_tarball) as tar:
        for name in code:
            text = tar.extractfile(name).read().decode("utf-8", "replace")
            for needle in ("fleetsim", "/_sim/"):
                if needle in text:
                    found.append("%s: %s" % (name, needle))
    assert not found, found


def test_every_role_has_a_readme(tarball_names):
    roles = {name.split("/")[1] for name in tarball_names if name.startswith("roles/") and name.count("/") >= 2}
    assert roles
    for role in roles:
        assert f"roles/{role}/README.md" in tarball_names


def test_license_is_the_gpl3_full_text():
    text = (REPO / "LICENSE").read_text()
    assert text.lstrip().startswith("GNU GENERAL PUBLIC LICENSE")
    assert "Version 3, 29 June 2007" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert GALAXY["license"] == ["GPL-3.0-or-later"]


def test_no_placeholder_urls():
    for key in ("repository", "documentation", "homepage", "issues"):
        value = GALAXY.get(key)
        if value is not None:
            assert value.startswith("https://"), key
            assert not any(bad in value for bad in ("example.", ".invalid", "localhost")), key


def test_build_ignore_has_no_dead_entries():
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    for pattern in GALAXY["build_ignore"]:
        if pattern in GENERATED:
            continue
        hits = [p for p in tracked if fnmatch.fnmatch(p, pattern) or p.startswith(pattern.rstrip("/") + "/")]
        assert hits, f"build_ignore entry {pattern!r} matches no file in the repository"


def test_oldest_core_venv_matches_requires_ansible():
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    lowest = runtime["requires_ansible"].lstrip(">=").rsplit(".", 1)[0]
    oldest = (REPO / "tests" / "packaging" / "requirements-oldest.txt").read_text()
    assert f"ansible-core>={lowest},<" in oldest
