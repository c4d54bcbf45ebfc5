"""The modules' faces: argspec, validation before any AWS call, no secrets in output."""

from __future__ import annotations

import json

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import aws
from ansible_collections.agentfleet.rollout.plugins.modules import ecs_service_rollout, ecs_taskdef
from helpers import patch_module_args

TEMPLATE = {"family": "par", "containerDefinitions": [{"name": "agent-runtime", "stopTimeout": 35}]}


def run_module(module, args, capsys, monkeypatch):
    def no_client(*a, **k):
        raise AssertionError("no AWS client may be created before validation passes")

    monkeypatch.setattr(aws, "boto3_client", no_client)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("agent_env, image, message", [
    ({"AGENT_APP_ID": "", "PACKAGE_URL": "s3://b/k"}, "i:1", "AGENT_APP_ID missing or empty"),
    ({"AGENT_APP_ID": "a", "PACKAGE_URL": "file:///a.apkg"}, "i:1", "file:// URLs are not allowed"),
    ({"AGENT_APP_ID": "a", "PACKAGE_URL": "http://h/a.apkg"}, "i:1", "http:// URLs are not allowed"),
    ({"AGENT_APP_ID": "a", "PACKAGE_URL": "s3://b/k", "PACKAGE_SHA256": "xyz"}, "i:1", "PACKAGE_SHA256 must be 64"),
    ({"AGENT_APP_ID": "a", "PACKAGE_URL": "s3://b/k", "GRACEFUL_SHUTDOWN_TIMEOUT_SEC": 35}, "i:1", "must be greater than GRACEFUL"),
    ({"AGENT_APP_ID": "a", "PACKAGE_URL": "s3://b/k"}, None, "image is required"),
])
def test_taskdef_validation_fails_before_any_api_call(agent_env, image, message, capsys, monkeypatch, tmp_path):
    args = {"task_definition": TEMPLATE, "agent_env": agent_env, "access_key": "AKIDTEST", "secret_key": "very-secret-value",
            "report_path": str(tmp_path / "r.json")}
    if image:
        args["image"] = image
    out = run_module(ecs_taskdef, args, capsys, monkeypatch)
    assert out["failed"] is True and message in out["msg"]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["result"] == "failed" and "very-secret-value" not in json.dumps(report)


def test_taskdef_unknown_env_variable_is_an_argspec_error(capsys, monkeypatch):
    out = run_module(ecs_taskdef, {"task_definition": TEMPLATE, "agent_env": {"AGENT_APP_ID": "a", "REST_PROT": 1}},
                     capsys, monkeypatch)
    assert out["failed"] is True and "REST_PROT" in out["msg"]


def test_taskdef_template_and_dict_are_exclusive(capsys, monkeypatch, tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(TEMPLATE))
    out = run_module(ecs_taskdef, {"task_definition": TEMPLATE, "template": str(path),
                                   "agent_env": {"AGENT_APP_ID": "a", "PACKAGE_URL": "s3://b/k"}}, capsys, monkeypatch)
    assert "mutually exclusive" in out["msg"]


def test_taskdef_yaml_template_is_read(capsys, monkeypatch, tmp_path):
    path = tmp_path / "t.yml"
    path.write_text("family: par\ncontainerDefinitions:\n  - name: agent-runtime\n    stopTimeout: 20\n")
    out = run_module(ecs_taskdef, {"template": str(path), "image": "i:1",
                                   "agent_env": {"AGENT_APP_ID": "a", "PACKAGE_URL": "s3://b/k"}}, capsys, monkeypatch)
    assert "stopTimeout (20)" in out["msg"]


def test_service_rollout_requires_its_arguments(capsys, monkeypatch):
    out = run_module(ecs_service_rollout, {"cluster": "c"}, capsys, monkeypatch)
    assert out["failed"] is True and "service" in out["msg"] and "task_definition" in out["msg"]


def test_aws_secret_options_are_no_log():
    assert aws.AWS_ARGUMENT_SPEC["secret_key"]["no_log"] is True
    assert aws.AWS_ARGUMENT_SPEC["session_token"]["no_log"] is True


def test_client_factory_uses_retry_mode_and_endpoint():
    client = aws.boto3_client("ecs", {"region": "us-east-2", "endpoint_url": "http://127.0.0.1:1", "access_key": "AKID",
                                      "secret_key": "s", "retry_mode": "adaptive", "retry_max_attempts": 4,
                                      "validate_certs": True})
    assert client.meta.endpoint_url == "http://127.0.0.1:1"
    assert client.meta.region_name == "us-east-2"
    assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 4}


@pytest.mark.parametrize("module", [ecs_taskdef, ecs_service_rollout])
@pytest.mark.parametrize("given", [{"access_key": "AKIDONLY"}, {"secret_key": "only-the-secret"},
                                   {"ec2_access_key": "AKIDONLY"}, {"aws_secret_access_key": "only-the-secret"}])
def test_access_and_secret_key_are_required_together(module, given, capsys, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "EC2_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY",
                 "EC2_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    args = dict(given, task_definition=TEMPLATE, image="i:1", agent_env={"AGENT_APP_ID": "a", "PACKAGE_URL": "s3://b/k"})
    if module is ecs_service_rollout:
        args = dict(given, cluster="c", service="s", task_definition="par:1")
    out = run_module(module, args, capsys, monkeypatch)
    assert out["failed"] is True and out["msg"] == "parameters are required together: access_key, secret_key"
    assert "only-the-secret" not in json.dumps(out)


@pytest.mark.parametrize("option, aliases, envs", [
    ("region", ["aws_region", "ec2_region"], ["AWS_REGION", "AWS_DEFAULT_REGION", "EC2_REGION"]),
    ("endpoint_url", ["aws_endpoint_url", "ec2_url"], ["AWS_ENDPOINT_URL", "AWS_URL", "EC2_URL"]),
    ("access_key", ["aws_access_key_id", "aws_access_key", "ec2_access_key"],
     ["AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "EC2_ACCESS_KEY"]),
    ("secret_key", ["aws_secret_access_key", "aws_secret_key", "ec2_secret_key"],
     ["AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "EC2_SECRET_KEY"]),
    ("session_token", ["aws_session_token", "security_token", "aws_security_token", "access_token"],
     ["AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "EC2_SECURITY_TOKEN"]),
])
def test_amazon_aws_aliases_and_env_fallbacks(option, aliases, envs):
    spec = aws.AWS_ARGUMENT_SPEC[option]
    assert spec["aliases"] == aliases
    assert list(spec["fallback"][1]) == envs


def test_ec2_env_fallback_is_used_after_the_aws_ones(capsys, monkeypatch):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EC2_REGION", "eu-west-3")
    seen = {}

    def fake_client(service, params):
        seen.update(params)
        raise RuntimeError("stop here")

    monkeypatch.setattr(aws, "boto3_client", fake_client)
    with patch_module_args({"cluster": "c", "service": "s", "task_definition": "par:1"}):
        with pytest.raises((SystemExit, RuntimeError)):
            ecs_service_rollout.main()
    capsys.readouterr()
    assert seen["region"] == "eu-west-3"
