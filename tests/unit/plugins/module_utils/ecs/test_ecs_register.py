"""ecs_taskdef's engine (register.ensure_task_definition / run) driven by botocore's Stubber."""

from __future__ import annotations

import copy

import boto3
import pytest
from botocore.stub import ANY, Stubber

from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import register

ARN = "arn:aws:ecs:us-east-2:123456789012:task-definition/par:%d"
ENV = {"AGENT_APP_ID": "python-executor", "PACKAGE_URL": "s3://pixell-agent-packages/agent.apkg"}
TEMPLATE = {"family": "par", "containerDefinitions": [
    {"name": "agent-runtime", "image": "repo/par:1", "stopTimeout": 35, "memory": 512,
     "environment": [{"name": "WHEELHOUSE_DIR", "value": "/opt/wheelhouse"}]}]}


@pytest.fixture
def ecs():
    client = boto3.client("ecs", region_name="us-east-2", aws_access_key_id="AKIDTEST", aws_secret_access_key="fake")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def described(revision, env, image="repo/par:1"):
    """A described revision of TEMPLATE with ``env`` injected (as ECS returns it)."""
    td = copy.deepcopy(TEMPLATE)
    c = td["containerDefinitions"][0]
    c.update(image=image, essential=True, cpu=0, portMappings=[], mountPoints=[], volumesFrom=[])
    c["environment"] = [{"name": n, "value": v} for n, v in env.items()]
    td.update(taskDefinitionArn=ARN % revision, revision=revision, status="ACTIVE", networkMode="bridge",
              volumes=[], placementConstraints=[], compatibilities=["EC2"], enableFaultInjection=False)
    return {"taskDefinition": td}


def full_env(**over):
    env = {"WHEELHOUSE_DIR": "/opt/wheelhouse", "AGENT_APP_ID": "python-executor",
           "PACKAGE_URL": "s3://pixell-agent-packages/agent.apkg", "BASE_PATH": "/agents/python-executor",
           "REST_PORT": "8080", "A2A_PORT": "50051", "UI_PORT": "3000", "MULTIPLEXED": "true",
           "MAX_PACKAGE_SIZE_MB": "100", "BOOT_BUDGET_MS": "5000", "BOOT_HARD_LIMIT_MULTIPLIER": "2.0",
           "GRACEFUL_SHUTDOWN_TIMEOUT_SEC": "30"}
    env.update(over)
    return env


def test_new_deployment_id_alone_keeps_the_latest_revision(ecs):
    client, stub = ecs
    stub.add_response("describe_task_definition", described(4, full_env(DEPLOYMENT_ID="deploy-20250131-100000")),
                      {"taskDefinition": "par"})
    params = {"task_definition": TEMPLATE, "agent_env": dict(ENV, DEPLOYMENT_ID="deploy-20250131-100501")}
    result = register.ensure_task_definition(lambda: client, params)  # no register_task_definition stubbed
    assert result["changed"] is False and result["revision"] == 4 and result["arn"] == ARN % 4
    assert result["differences"] == []


def test_new_deployment_id_is_written_when_something_else_changed(ecs):
    client, stub = ecs
    stub.add_response("describe_task_definition", described(4, full_env(DEPLOYMENT_ID="deploy-1")),
                      {"taskDefinition": "par"})
    stub.add_response("register_task_definition", described(5, full_env(DEPLOYMENT_ID="deploy-2"), image="repo/par:2"),
                      {"family": "par", "containerDefinitions": ANY})
    params = {"task_definition": TEMPLATE, "image": "repo/par:2", "agent_env": dict(ENV, DEPLOYMENT_ID="deploy-2")}
    result = register.ensure_task_definition(lambda: client, params)
    assert result["changed"] is True and result["revision"] == 5
    assert result["differences"] == ["containerDefinitions[agent-runtime].image"]


@pytest.mark.parametrize("agent_env", [dict(ENV, BOOT_BUDGET_MS=7000), dict(ENV, PACKAGE_URL="file:///a.apkg")])
def test_check_mode_writes_no_report_or_audit(ecs, tmp_path, agent_env):
    client, stub = ecs
    if not agent_env["PACKAGE_URL"].startswith("file"):
        stub.add_response("describe_task_definition", described(4, full_env()), {"taskDefinition": "par"})
    params = {"task_definition": TEMPLATE, "agent_env": agent_env, "deployment_id": "deploy-1",
              "report_path": str(tmp_path / "r.json"), "audit_path": str(tmp_path / "a.jsonl")}
    try:
        result = register.run(lambda: client, params, check_mode=True)
    except register.EcsError:
        result = None
    if result is not None:
        assert result["changed"] is True and result["revision"] is None and "report_path" not in result
    assert list(tmp_path.iterdir()) == []


def expect_service(stub, revision, env, image="repo/par:1"):
    stub.add_response("describe_services", {"services": [{"serviceName": "par", "status": "ACTIVE",
                                                          "taskDefinition": ARN % revision}]},
                      {"cluster": "c1", "services": ["par"]})
    stub.add_response("describe_task_definition", described(revision, env, image=image), {"taskDefinition": ARN % revision})


SERVICE_PARAMS = {"base": "service", "cluster": "c1", "service": "par", "container_name": "agent-runtime"}


def test_base_service_swaps_the_image_and_keeps_the_environment(ecs):
    client, stub = ecs
    expect_service(stub, 4, full_env(DEPLOYMENT_ID="deploy-1"))
    stub.add_response("describe_task_definition", described(5, full_env(BOOT_BUDGET_MS="7000")), {"taskDefinition": "par"})
    registered = described(6, full_env(DEPLOYMENT_ID="deploy-1"), image="repo/par:2")
    stub.add_response("register_task_definition", registered, {
        "family": "par", "networkMode": "bridge", "enableFaultInjection": False, "containerDefinitions": ANY})
    sent = {}
    client.meta.events.register("provide-client-params.ecs.RegisterTaskDefinition",
                                lambda params, **kwargs: sent.update(params))
    result = register.ensure_task_definition(lambda: client, dict(SERVICE_PARAMS, image="repo/par:2"))
    assert result["changed"] is True and result["revision"] == 6 and result["image"] == "repo/par:2"
    assert result["differences"] == ["containerDefinitions[agent-runtime].image"]
    container = sent["containerDefinitions"][0]
    assert container["image"] == "repo/par:2" and container["memory"] == 512 and container["stopTimeout"] == 35
    assert {"name": "DEPLOYMENT_ID", "value": "deploy-1"} in container["environment"]
    assert {"name": "WHEELHOUSE_DIR", "value": "/opt/wheelhouse"} in container["environment"]


def test_base_service_same_image_registers_nothing(ecs):
    client, stub = ecs
    expect_service(stub, 4, full_env(), image="repo/par:2")
    result = register.ensure_task_definition(lambda: client, dict(SERVICE_PARAMS, image="repo/par:2"))
    assert result["changed"] is False and result["revision"] == 4


def test_base_service_reuses_an_equal_latest_revision(ecs):
    client, stub = ecs
    expect_service(stub, 4, full_env())
    stub.add_response("describe_task_definition", described(5, full_env(), image="repo/par:2"), {"taskDefinition": "par"})
    result = register.ensure_task_definition(lambda: client, dict(SERVICE_PARAMS, image="repo/par:2"))
    assert result["changed"] is False and result["revision"] == 5


@pytest.mark.parametrize("over, message", [
    ({"agent_env": ENV}, "agent_env cannot be used with base=service"),
    ({"task_definition": TEMPLATE}, "task_definition cannot be used with base=service"),
    ({"image": ""}, "image is required with base=service"),
])
def test_base_service_refuses_before_any_call(over, message):
    def no_client():
        raise AssertionError("no AWS client before validation")

    with pytest.raises(register.EcsError, match=message):
        register.ensure_task_definition(no_client, dict(dict(SERVICE_PARAMS, image="repo/par:2"), **over))


def test_base_template_needs_agent_env():
    with pytest.raises(register.EcsError, match="agent_env is required"):
        register.ensure_task_definition(lambda: None, {"task_definition": TEMPLATE})
