"""AWX as code: awx/configure.yml against a stub AWX API on loopback that records the calls, and the thin
playbooks AWX job templates run (syntax). awx.awx comes from `make awx-collection` (AGENTFLEET_AWX_COLLECTIONS)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from awxstub import AwxStub

REPO = Path(__file__).resolve().parents[2]
TOKEN = "agent-token-not-to-be-printed"


@pytest.fixture(scope="module")
def collections_path(tmp_path_factory, built_tarball) -> str:
    awx = os.environ.get("AGENTFLEET_AWX_COLLECTIONS", str(REPO / "build" / "awx" / "collections"))
    if not (Path(awx) / "ansible_collections" / "awx" / "awx" / "MANIFEST.json").exists():
        message = f"awx.awx is not at {awx} (make awx-collection)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    ours = tmp_path_factory.mktemp("collections")
    subprocess.run([str(Path(sys.executable).parent / "ansible-galaxy"), "collection", "install", "-p", str(ours),
                    str(built_tarball)], capture_output=True, text=True, check=True)
    return os.pathsep.join([str(ours), awx])


def _env(tmp_path: Path, collections_path: str, **extra) -> dict:
    env = dict(os.environ)
    for key in [k for k in env if k.startswith(("CONTROLLER_", "TOWER_", "AWX_"))]:
        del env[key]
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": collections_path,
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_DEPRECATION_WARNINGS": "false",
        "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
    })
    env.update(extra)
    return env


def _playbook(args, env):
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("playbook", ["configure.yml", "playbooks/rollout.yml", "playbooks/stage.yml",
                                      "playbooks/promote.yml", "playbooks/summary.yml"])
def test_syntax(tmp_path, collections_path, playbook):
    proc = _playbook(["--syntax-check", "-i", "localhost,", f"awx/{playbook}"], _env(tmp_path, collections_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rollout_playbook_imports_the_chosen_strategy(tmp_path, collections_path):
    env = _env(tmp_path, collections_path)
    for strategy in ("canary", "immediate", "manual"):
        proc = _playbook(["--list-tasks", "-i", "localhost,", "-e", f"rollout_strategy={strategy}",
                          "awx/playbooks/rollout.yml"], env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"Plan the rollout: {strategy}" in proc.stdout or f"Plan and stage the rollout ({strategy})" in proc.stdout


def _seed():
    return {
        "organizations": [{"id": 1, "name": "Default"}],
        "projects": [{"id": 2, "name": "agentfleet", "organization": 1}],
        "inventories": [{"id": 3, "name": "agents", "organization": 1}],
        "credential_types": [{"id": 4, "name": "Machine", "kind": "ssh", "managed": True}],
    }


def test_configure_defines_the_workflow(tmp_path, collections_path):
    with AwxStub(_seed()) as awx:
        env = _env(tmp_path, collections_path, CONTROLLER_HOST=awx.url, CONTROLLER_OAUTH_TOKEN="controller-token",
                   CONTROLLER_VERIFY_SSL="false")
        args = ["-i", "localhost,", "awx/configure.yml", "-e", f"agentfleet_awx_agent_token={TOKEN}",
                "-e", "agentfleet_awx_notification_url=https://hooks.example.org/rollouts"]
        proc = _playbook(args, env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert TOKEN not in proc.stdout + proc.stderr
        assert all(body is None or TOKEN not in str(body) for method, path, body in awx.calls
                   if not path.startswith("/api/v2/credentials/"))

        # the credential type injects the token as AGENTFLEET_TOKEN; the credential carries it
        ctype = awx.find("credential_types", name="agentfleet agent token")
        assert ctype["kind"] == "cloud"
        assert ctype["injectors"] == {"env": {"AGENTFLEET_TOKEN": "{{ token }}"}}
        assert ctype["inputs"]["fields"][0]["secret"] is True
        cred = awx.find("credentials", name="agentfleet agents")
        assert cred["credential_type"] == ctype["id"] and cred["inputs"] == {"token": TOKEN}

        # job templates on the thin playbooks, with the agents' credential; the survey on "rollout"
        templates = {jt["name"]: jt for jt in awx.objects("job_templates")}
        assert set(templates) == {"agentfleet rollout", "agentfleet stage", "agentfleet promote", "agentfleet summary"}
        for name, playbook in (("rollout", "rollout.yml"), ("stage", "stage.yml"), ("promote", "promote.yml"),
                               ("summary", "summary.yml")):
            jt = templates["agentfleet " + name]
            assert jt["playbook"] == "awx/playbooks/" + playbook
            assert (REPO / jt["playbook"]).is_file()
            assert jt["project"] == 2 and jt["inventory"] == 3
            assert awx.linked("job_templates", jt["id"], "credentials") == ([] if name == "summary" else [cred["id"]])
        assert templates["agentfleet promote"]["ask_limit_on_launch"] is True
        survey = awx.survey("job_templates", templates["agentfleet rollout"]["id"])
        assert templates["agentfleet rollout"]["survey_enabled"] is True
        assert [q["variable"] for q in survey["spec"]] == ["rollout_target_version", "rollout_message",
                                                           "rollout_strategy"]
        assert survey["spec"][2]["choices"] == ["canary", "immediate", "manual"]

        # the workflow: stage -> canary (limited) -> approval -> rest -> notify, notify also after failures
        wf = awx.find("workflow_job_templates", name="agentfleet canary rollout")
        assert wf["survey_enabled"] is True
        assert [q["variable"] for q in awx.survey("workflow_job_templates", wf["id"])["spec"]] == [
            "rollout_target_version", "rollout_message"]
        nodes = {n["identifier"]: n for n in awx.objects("workflow_job_template_nodes")}
        assert set(nodes) == {"stage", "canary", "approval", "rest", "notify"}
        assert all(n["workflow_job_template"] == wf["id"] for n in nodes.values())
        ids = {ident: n["id"] for ident, n in nodes.items()}

        def follow(ident, kind):
            return [k for k, v in ids.items() if v in awx.linked("workflow_job_template_nodes", ids[ident], kind)]

        assert follow("stage", "success_nodes") == ["canary"]
        assert follow("canary", "success_nodes") == ["approval"]
        assert follow("approval", "success_nodes") == ["rest"]
        assert follow("rest", "always_nodes") == ["notify"]
        for ident in ("stage", "canary", "approval"):
            assert follow(ident, "failure_nodes") == ["notify"]
        assert nodes["canary"]["limit"] == "canary"
        assert nodes["stage"]["unified_job_template"] == templates["agentfleet stage"]["id"]
        assert nodes["canary"]["unified_job_template"] == templates["agentfleet promote"]["id"]
        assert nodes["rest"]["unified_job_template"] == templates["agentfleet promote"]["id"]
        assert nodes["notify"]["unified_job_template"] == templates["agentfleet summary"]["id"]
        (approval,) = awx.objects("workflow_approval_templates")
        assert approval["name"] == "agentfleet approve the rest" and approval["timeout"] == 86400
        assert nodes["approval"]["unified_job_template"] == approval["id"]

        # the notification webhook, told on success, error and approval
        notif = awx.find("notification_templates", name="agentfleet rollout")
        assert notif["notification_type"] == "webhook"
        for event in ("success", "error", "approvals"):
            assert awx.linked("workflow_job_templates", wf["id"], "notification_templates_" + event) == [notif["id"]]

        # a rerun changes nothing: no call but lookups
        before = len(awx.calls)
        proc = _playbook(args, env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "changed=0" in proc.stdout
        assert [(method, path) for method, path, dummy in awx.calls[before:] if method != "GET"] == []


class _TaggedLoader(yaml.SafeLoader):
    """YAML with Ansible's tags (!unsafe, !vault) read as plain values."""


def _untagged(loader, suffix, node):
    return loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None


_TaggedLoader.add_multi_constructor("!", _untagged)


def _awx_modules(node):
    """The awx.awx modules named as task keys (or module_defaults keys) anywhere in a loaded playbook."""
    if isinstance(node, dict):
        names = {key for key in node if isinstance(key, str) and key.startswith(("awx.awx.", "group/awx.awx."))}
        return names.union(*(_awx_modules(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_awx_modules(item) for item in node))
    return set()


def test_lint_mocks_every_awx_module_the_playbooks_use():
    """A plain `ansible-lint` at the root (no awx.awx installed) resolves awx/ through .ansible-lint's mock_modules:
    each awx.awx module used needs its stub, and a module_defaults group of awx.awx cannot be stubbed at all
    (ansible-playbook --syntax-check must resolve the group from the collection's meta/runtime.yml)."""
    used = set()
    for path in sorted((REPO / "awx").rglob("*.yml")):
        used |= _awx_modules(yaml.load(path.read_text(), Loader=_TaggedLoader))
    assert not {name for name in used if name.startswith("group/")}, "a module_defaults group of awx.awx: ansible-lint cannot stub one"
    mocked = {name for name in yaml.safe_load((REPO / ".ansible-lint").read_text())["mock_modules"] if name.startswith("awx.awx.")}
    assert used == mocked
