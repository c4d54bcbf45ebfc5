"""One version: galaxy.yml's, in the user agents and the reports (plugins/module_utils/_version.py is generated
from it by scripts/sync-version.py, because modules reach their Python through AnsiballZ without MANIFEST.json)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from ansible_collections.agentfleet.rollout.plugins.module_utils import _manager
from ansible_collections.agentfleet.rollout.plugins.module_utils import _report
from ansible_collections.agentfleet.rollout.plugins.module_utils import _version
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import aws
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport import client as transport_client

REPO = Path(__file__).resolve().parents[4]
VERSION = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]


def test_generated_version_is_galaxy_yml_version():
    assert _version.COLLECTION_VERSION == VERSION
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "sync-version.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_user_agents_carry_the_version():
    assert transport_client.USER_AGENT == "agentfleet.rollout/" + VERSION
    assert aws.USER_AGENT == "agentfleet.rollout/" + VERSION


def test_manager_client_user_agent():
    client = _manager.ManagerClient("https://manager.example.org", token="t")
    assert client.session.headers["User-Agent"] == "agentfleet.rollout/%s (manager client)" % VERSION


class _Store:
    def get_deployment(self, deployment_id):
        return {"fleet_key": "agents", "strategy": "canary", "target_version": "2.0.0", "status": "completed",
                "created_at": 0, "params": {}}

    def agents(self, deployment_id):
        return []

    def waves(self, deployment_id):
        return []


def test_report_names_the_collection_version():
    report = _report.build_report(_Store(), "d1", "rollout")
    assert report["collection_version"] == VERSION


def test_check_detects_a_stale_file(tmp_path):
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    (root / "plugins" / "module_utils").mkdir(parents=True)
    (root / "scripts" / "sync-version.py").write_text((REPO / "scripts" / "sync-version.py").read_text())
    (root / "galaxy.yml").write_text("namespace: agentfleet\nname: rollout\nversion: 9.8.7\n")
    (root / "plugins" / "module_utils" / "_version.py").write_text(_version.__doc__ or "")
    script = str(root / "scripts" / "sync-version.py")
    assert subprocess.run([sys.executable, script, "--check"], capture_output=True, check=False).returncode == 1
    assert subprocess.run([sys.executable, script], capture_output=True, check=False).returncode == 0
    assert 'COLLECTION_VERSION = "9.8.7"' in (root / "plugins" / "module_utils" / "_version.py").read_text()
    assert subprocess.run([sys.executable, script, "--check"], capture_output=True, check=False).returncode == 0
