"""Pure task-definition functions: render/inject/validate/normalise/compare."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import EcsError
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import normalise as n
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import taskdef as t

SHA = "a" * 64
ENV = {"AGENT_APP_ID": "python-executor", "PACKAGE_URL": "s3://pixell-agent-packages/agent.apkg"}


def template(**over):
    td = {
        "family": "par",
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "cpu": "1024",
        "memory": "2048",
        "containerDefinitions": [{
            "name": "agent-runtime", "image": "repo/par:1", "stopTimeout": 35,
            "portMappings": [{"containerPort": 8080}],
            "secrets": [{"name": "B", "valueFrom": "arn:b"}, {"name": "A", "valueFrom": "arn:a"}],
        }],
    }
    td.update(over)
    return td


def described(td):
    """What ECS returns for ``td``: defaults filled, read-only fields added, lists reordered."""
    d = copy.deepcopy(td)
    d.update(taskDefinitionArn="arn:aws:ecs:us-east-2:1:task-definition/par:3", revision=3, status="ACTIVE",
             compatibilities=["EC2", "FARGATE"], requiresAttributes=[{"name": "ecs.capability.task-eni"}],
             registeredAt="2025-01-01T00:00:00Z", registeredBy="arn:aws:iam::1:root", volumes=[],
             placementConstraints=[])
    for c in d["containerDefinitions"]:
        c.setdefault("essential", True)
        c.setdefault("cpu", 0)
        c.setdefault("mountPoints", [])
        c.setdefault("volumesFrom", [])
        c["environment"] = list(reversed(c.get("environment") or []))
        c["secrets"] = list(reversed(c.get("secrets") or []))
        for pm in c.get("portMappings") or []:
            pm.setdefault("protocol", "tcp")
            pm.setdefault("hostPort", pm["containerPort"])
    return d


# ----------------------------------------------------------------- agent env
def test_agent_environment_defaults_follow_the_seed_table():
    env = t.agent_environment(ENV)
    assert env == {
        "AGENT_APP_ID": "python-executor", "PACKAGE_URL": "s3://pixell-agent-packages/agent.apkg",
        "BASE_PATH": "/agents/python-executor", "REST_PORT": 8080, "A2A_PORT": 50051, "UI_PORT": 3000,
        "MULTIPLEXED": True, "MAX_PACKAGE_SIZE_MB": 100, "BOOT_BUDGET_MS": 5000,
        "BOOT_HARD_LIMIT_MULTIPLIER": 2.0, "GRACEFUL_SHUTDOWN_TIMEOUT_SEC": 30,
    }
    assert "DEPLOYMENT_ID" not in env and "PACKAGE_SHA256" not in env


@pytest.mark.parametrize("value, expected", [(True, "true"), (False, "false"), (2.0, "2.0"), (1.5, "1.5"), (8080, "8080"), ("x", "x")])
def test_env_value(value, expected):
    assert n.env_value(value) == expected


@pytest.mark.parametrize("env, message", [
    ({"PACKAGE_URL": "s3://b/k"}, "AGENT_APP_ID missing or empty"),
    ({"AGENT_APP_ID": "  ", "PACKAGE_URL": "s3://b/k"}, "AGENT_APP_ID missing or empty"),
    ({"AGENT_APP_ID": "a"}, "PACKAGE_URL missing or empty"),
    ({"AGENT_APP_ID": "a", "PACKAGE_URL": "file:///tmp/a.apkg"}, "file:// URLs are not allowed"),
    ({"AGENT_APP_ID": "a", "PACKAGE_URL": "http://example.com/a.apkg"}, "http:// URLs are not allowed"),
    ({"AGENT_APP_ID": "a", "PACKAGE_URL": "ftp://example.com/a.apkg"}, "must be an s3:// or https:// URL"),
    ({"AGENT_APP_ID": "a", "PACKAGE_URL": "pkg.apkg"}, "must be an s3:// or https:// URL"),
    ({"AGENT_APP_ID": "a", "PACKAGE_URL": "s3://bucket-only"}, "needs a bucket and a path"),
    ({"AGENT_APP_ID": "a", "PACKAGE_URL": "s3://b/k", "PACKAGE_SHA256": "abc"}, "PACKAGE_SHA256 must be 64 hexadecimal"),
    ({"AGENT_APP_ID": "a", "PACKAGE_URL": "s3://b/k", "PACKAGE_SHA256": "g" * 64}, "PACKAGE_SHA256 must be 64 hexadecimal"),
    ({"AGENT_APP_ID": "a", "PACKAGE_URL": "s3://b/k", "REST_PORT": 70000}, "REST_PORT must be between 1 and 65535"),
    ({"AGENT_APP_ID": "a", "PACKAGE_URL": "s3://b/k", "BOOT_HARD_LIMIT_MULTIPLIER": -1}, "BOOT_HARD_LIMIT_MULTIPLIER must be >= 0"),
    ({"AGENT_APP_ID": "a", "PACKAGE_URL": "s3://b/k", "BASE_PATH": "agents"}, "BASE_PATH must start with /"),
])
def test_validate_agent_env_errors(env, message):
    errors = t.validate_agent_env(t.agent_environment(env))
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize("url", ["s3://b/k.apkg", "https://packages.example.com/a.apkg", "HTTPS://h/p"])
def test_validate_agent_env_accepts(url):
    assert t.validate_agent_env(t.agent_environment(dict(ENV, PACKAGE_URL=url, PACKAGE_SHA256=SHA.upper()))) == []


def test_unknown_agent_variable_is_refused():
    with pytest.raises(EcsError, match="unknown variable"):
        t.agent_environment(dict(ENV, REST_PROT=1))


# -------------------------------------------------------------------- render
def test_render_injects_env_image_and_keeps_template_variables():
    tpl = template()
    tpl["containerDefinitions"][0]["environment"] = [{"name": "WHEELHOUSE_DIR", "value": "/opt/wheelhouse"},
                                                     {"name": "REST_PORT", "value": "1"}]
    td, env = t.render_task_definition(tpl, image="repo/par:2", agent_env=dict(ENV, DEPLOYMENT_ID="deploy-1"))
    c = td["containerDefinitions"][0]
    values = dict((e["name"], e["value"]) for e in c["environment"])
    assert c["image"] == "repo/par:2"
    assert values["WHEELHOUSE_DIR"] == "/opt/wheelhouse"
    assert values["REST_PORT"] == "8080"
    assert values["MULTIPLEXED"] == "true" and values["BOOT_HARD_LIMIT_MULTIPLIER"] == "2.0"
    assert values["DEPLOYMENT_ID"] == "deploy-1"
    assert tpl["containerDefinitions"][0]["image"] == "repo/par:1", "template must not be mutated"


def test_render_strips_read_only_fields_of_a_described_template():
    td = t.render_task_definition(described(template()), agent_env=ENV)[0]
    assert "taskDefinitionArn" not in td and "revision" not in td and "compatibilities" not in td


@pytest.mark.parametrize("mutate, kwargs, message", [
    (lambda td: td["containerDefinitions"][0].pop("image"), {}, "image is required"),
    (lambda td: td["containerDefinitions"][0].update(image=""), {}, "image is required"),
    (lambda td: td["containerDefinitions"][0].update(stopTimeout=30), {}, "stopTimeout (30) of container agent-runtime must be greater"),
    (lambda td: td["containerDefinitions"][0].pop("stopTimeout"), {}, "has no stopTimeout (ECS default 30 s)"),
    (lambda td: td.pop("family"), {}, "family is required"),
    (lambda td: td.update(family="bad family"), {}, "may contain only letters"),
    (lambda td: td.update(containerDefinitions=[]), {}, "no containerDefinitions"),
    (lambda td: td.update(bogus=1), {}, "unknown top-level field(s) bogus"),
    (lambda td: td["containerDefinitions"].append({"name": "sidecar", "image": "x"}),
     {"container_name": "nope"}, "no container named 'nope'"),
])
def test_render_validation_errors(mutate, kwargs, message):
    tpl = template()
    mutate(tpl)
    with pytest.raises(EcsError) as info:
        t.render_task_definition(tpl, agent_env=ENV, **kwargs)
    assert message in info.value.msg


def test_render_reports_every_problem_at_once():
    tpl = template()
    tpl["containerDefinitions"][0]["image"] = ""
    with pytest.raises(EcsError) as info:
        t.render_task_definition(tpl, agent_env={"AGENT_APP_ID": "", "PACKAGE_URL": "file:///a",
                                                 "GRACEFUL_SHUTDOWN_TIMEOUT_SEC": 40})
    assert len(info.value.result["errors"]) == 4


def test_stop_timeout_absent_is_fine_when_graceful_is_shorter():
    tpl = template()
    tpl["containerDefinitions"][0].pop("stopTimeout")
    t.render_task_definition(tpl, agent_env=dict(ENV, GRACEFUL_SHUTDOWN_TIMEOUT_SEC=20))


def test_single_container_is_used_whatever_its_name():
    tpl = template()
    tpl["containerDefinitions"][0]["name"] = "runtime"
    td = t.render_task_definition(tpl, agent_env=ENV, image="i:2")[0]
    assert td["containerDefinitions"][0]["image"] == "i:2"


# ----------------------------------------------------------------- normalise
@pytest.mark.parametrize("value, kind, expected", [
    ("1 vCPU", "cpu", "1024"), (".5 vcpu", "cpu", "512"), (256, "cpu", "256"), ("2 GB", "memory", "2048"),
    ("0.5GB", "memory", "512"), ("4096", "memory", "4096"), (None, "cpu", None),
])
def test_task_size(value, kind, expected):
    assert n.task_size(value, kind) == expected


def _rendered(tpl=None, env=None):
    return t.render_task_definition(tpl or template(), agent_env=env or ENV)[0]


def test_described_revision_equals_its_template():
    desired = _rendered()
    assert n.compare_task_definitions(desired, described(desired)) == []


@pytest.mark.parametrize("desired_over, current_over", [
    # task size written differently
    ({"cpu": "1 vCPU", "memory": "2 GB"}, {"cpu": "1024", "memory": "2048"}),
    ({"cpu": 1024}, {"cpu": "1024"}),
    # network mode default for FARGATE
    ({"networkMode": None}, {"networkMode": "awsvpc"}),
    # requiresCompatibilities order
    ({"requiresCompatibilities": ["FARGATE", "EC2"]}, {"requiresCompatibilities": ["EC2", "FARGATE"]}),
    # empty lists and tags
    ({"volumes": [], "tags": [{"key": "a", "value": "b"}]}, {}),
])
def test_equivalent_task_level_forms_compare_equal(desired_over, current_over):
    desired = _rendered()
    desired.update(desired_over)
    desired = dict((k, v) for k, v in desired.items() if v is not None)
    current = described(_rendered())
    current.update(current_over)
    assert n.compare_task_definitions(desired, current) == []


def test_bridge_mode_defaults_host_port_zero_and_network_mode():
    tpl = template(requiresCompatibilities=["EC2"])
    tpl.pop("networkMode")
    desired = _rendered(tpl)
    current = copy.deepcopy(desired)
    current["networkMode"] = "bridge"
    current["containerDefinitions"][0]["portMappings"] = [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"}]
    assert n.compare_task_definitions(desired, current) == []


def test_container_defaults_filled():
    tpl = template()
    c = tpl["containerDefinitions"][0]
    c["healthCheck"] = {"command": ["CMD", "true"]}
    c["mountPoints"] = [{"sourceVolume": "w", "containerPath": "/w"}]
    c["logConfiguration"] = {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/par"}, "secretOptions": []}
    desired = _rendered(tpl)
    current = described(desired)
    cc = current["containerDefinitions"][0]
    cc["healthCheck"] = {"command": ["CMD", "true"], "interval": 30, "timeout": 5, "retries": 3}
    cc["mountPoints"] = [{"sourceVolume": "w", "containerPath": "/w", "readOnly": False}]
    cc["logConfiguration"] = {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/par"}}
    assert n.compare_task_definitions(desired, current) == []


@pytest.mark.parametrize("change, path", [
    (lambda td: td.update(cpu="2048"), "cpu"),
    (lambda td: td.update(memory="4096"), "memory"),
    (lambda td: td.update(networkMode="bridge"), "networkMode"),
    (lambda td: td["containerDefinitions"][0]["secrets"].append({"name": "C", "valueFrom": "arn:c"}),
     "containerDefinitions[agent-runtime].secrets"),
    (lambda td: td["containerDefinitions"][0]["secrets"][0].update(valueFrom="arn:other"),
     "containerDefinitions[agent-runtime].secrets[B].valueFrom"),
    (lambda td: td["containerDefinitions"][0]["portMappings"][0].update(protocol="udp"),
     "containerDefinitions[agent-runtime].portMappings[8080].protocol"),
    (lambda td: td["containerDefinitions"][0].update(essential=False), "containerDefinitions[agent-runtime].essential"),
    (lambda td: td["containerDefinitions"][0].update(image="repo/par:9"), "containerDefinitions[agent-runtime].image"),
    (lambda td: td["containerDefinitions"][0].update(stopTimeout=60), "containerDefinitions[agent-runtime].stopTimeout"),
    (lambda td: td.update(executionRoleArn="arn:aws:iam::1:role/x"), "executionRoleArn"),
])
def test_each_difference_is_detected(change, path):
    desired = _rendered()
    current = described(desired)
    change(desired)
    assert path in n.compare_task_definitions(desired, current)


def test_one_env_var_change_is_detected_with_its_name():
    current = described(_rendered())
    desired = _rendered(env=dict(ENV, PACKAGE_URL="s3://pixell-agent-packages/agent-v2.apkg"))
    assert n.compare_task_definitions(desired, current) == [
        "containerDefinitions[agent-runtime].environment[PACKAGE_URL].value"]


def test_no_active_revision_is_a_difference():
    assert n.compare_task_definitions(_rendered(), None) == ["(no ACTIVE revision)"]


@pytest.mark.parametrize("a, b, expected", [
    ({"x": 1}, {"x": 1}, []),
    ({"x": 1}, {"x": 2}, ["x"]),
    ({"x": 1}, {}, ["x"]),
    ({"l": [1, 2]}, {"l": [1]}, ["l"]),
    ({"l": [{"name": "n", "v": 1}]}, {"l": [{"name": "n", "v": 2}]}, ["l[n].v"]),
])
def test_compare(a, b, expected):
    assert n.compare(a, b) == expected


# ----------------------------------------------------------------- redaction
@pytest.mark.parametrize("value, expected", [
    ("https://u:p@h/x", "https://********@h/x"),
    ("https://h/x?X-Amz-Signature=abc&X-Amz-Credential=k", "https://h/x?********"),
    ("https://h/x?version=2", "https://h/x?version=2"),
    ("s3://b/k", "s3://b/k"),
    ("plain", "plain"),
])
def test_redact_value(value, expected):
    assert t.redact_value(value) == expected


def test_diff_view_masks_secret_looking_env_keeps_secret_refs():
    tpl = template()
    tpl["containerDefinitions"][0]["environment"] = [{"name": "API_TOKEN", "value": "s3cr3t"},
                                                     {"name": "DB_PASSWORD", "value": "pw"}]
    view = t.diff_view(_rendered(tpl))
    c = view["containerDefinitions"][0]
    env = dict((e["name"], e["value"]) for e in c["environment"])
    assert env["API_TOKEN"] == "********" and env["DB_PASSWORD"] == "********"
    assert env["AGENT_APP_ID"] == "python-executor"
    assert {"name": "A", "valueFrom": "arn:a"} in c["secrets"]
    assert "s3cr3t" not in repr(view)


def test_register_kwargs_drop_empty():
    kwargs = t.register_kwargs(dict(_rendered(), volumes=[], pidMode=None))
    assert "volumes" not in kwargs and "pidMode" not in kwargs and kwargs["family"] == "par"


@pytest.mark.parametrize("name, secret", [
    ("OPENAI_KEY", True), ("APIKEY", True), ("api-key", True), ("splunk-token", True), ("GITHUB_TOKEN_RO", True),
    ("CLIENT_SECRET", True), ("DB_PASSWORD", True), ("DB_PASSWD", True), ("GCP_CREDENTIALS", True),
    ("PRIVATE_PEM", True), ("BASIC_AUTH", True), ("AWS_ACCESS_KEY_ID", True), ("SSH_KEY", True),
    ("AGENT_APP_ID", False), ("PACKAGE_URL", False), ("KEYCLOAK_REALM", False), ("awslogs-group", False),
    ("REST_PORT", False), ("PACKAGE_SHA256", False),
])
def test_secret_name(name, secret):
    assert t.secret_name(name) is secret


def test_redaction_covers_env_log_options_labels_and_repository_credentials():
    tpl = template()
    c = tpl["containerDefinitions"][0]
    c["environment"] = [{"name": "OPENAI_KEY", "value": "sk-live-1"}, {"name": "MODE", "value": "fast"}]
    c["logConfiguration"] = {"logDriver": "splunk",
                             "options": {"splunk-token": "tok-2", "splunk-url": "https://u:pw-3@splunk.example.com"},
                             "secretOptions": [{"name": "splunk-token2", "valueFrom": "arn:aws:ssm:::parameter/t"}]}
    c["dockerLabels"] = {"auth-header": "Bearer 4", "team": "agents"}
    c["repositoryCredentials"] = {"credentialsParameter": "arn:aws:secretsmanager:us-east-2:1:secret:reg-5"}
    view = t.diff_view(_rendered(tpl))
    vc = view["containerDefinitions"][0]
    env = dict((e["name"], e["value"]) for e in vc["environment"])
    assert env["OPENAI_KEY"] == "********" and env["MODE"] == "fast"
    assert vc["logConfiguration"]["options"] == {"splunk-token": "********", "splunk-url": "https://********@splunk.example.com"}
    assert vc["logConfiguration"]["secretOptions"] == [{"name": "splunk-token2", "valueFrom": "arn:aws:ssm:::parameter/t"}]
    assert vc["dockerLabels"] == {"auth-header": "********", "team": "agents"}
    assert vc["repositoryCredentials"] == {"credentialsParameter": "********"}
    assert {"name": "A", "valueFrom": "arn:a"} in vc["secrets"]
    for leaked in ("sk-live-1", "tok-2", "pw-3", "Bearer 4", "reg-5"):
        assert leaked not in repr(view)


@pytest.mark.parametrize("desired_over, current_over", [
    ({}, {"enableFaultInjection": False}),
    ({"enableFaultInjection": False}, {}),
    ({"taskRoleArn": ""}, {}),
    ({"executionRoleArn": "", "pidMode": ""}, {}),
    ({}, {"containerDefinitions.privileged": False}),
    ({"containerDefinitions.readonlyRootFilesystem": False, "containerDefinitions.user": ""}, {}),
    ({"containerDefinitions.env": ""}, {"containerDefinitions.env": None}),
])
def test_api_default_falsy_and_empty_strings_compare_equal(desired_over, current_over):
    def apply(td, over):
        for key, value in over.items():
            if key == "containerDefinitions.env":
                td["containerDefinitions"][0]["environment"].append({"name": "EMPTY", "value": value} if value is not None
                                                                    else {"name": "EMPTY"})
            elif key.startswith("containerDefinitions."):
                td["containerDefinitions"][0][key.split(".", 1)[1]] = value
            else:
                td[key] = value
        return td

    desired = apply(_rendered(), desired_over)
    current = apply(described(_rendered()), current_over)
    assert n.compare_task_definitions(desired, current) == []


@pytest.mark.parametrize("change, path", [
    (lambda td: td.update(enableFaultInjection=True), "enableFaultInjection"),
    (lambda td: td.update(taskRoleArn="arn:aws:iam::1:role/t"), "taskRoleArn"),
    (lambda td: td["containerDefinitions"][0].update(privileged=True), "containerDefinitions[agent-runtime].privileged"),
])
def test_truthy_values_of_those_fields_still_differ(change, path):
    desired = _rendered()
    current = described(desired)
    change(desired)
    assert path in n.compare_task_definitions(desired, current)


def test_empty_strings_are_not_sent():
    td = _rendered()
    td.update(taskRoleArn="", executionRoleArn="arn:aws:iam::1:role/x")
    td["containerDefinitions"][0]["user"] = ""
    kwargs = t.register_kwargs(td)
    assert "taskRoleArn" not in kwargs and kwargs["executionRoleArn"] == "arn:aws:iam::1:role/x"
    assert "user" not in kwargs["containerDefinitions"][0]


@pytest.mark.parametrize("desired_id, current_id, expected", [
    ("deploy-20250131-100000", "deploy-20250131-100001", []),
    ("deploy-20250131-100000", None, []),
    (None, "deploy-20250131-100000", []),
])
def test_deployment_id_alone_is_no_difference(desired_id, current_id, expected):
    def env(deployment_id):
        return dict(ENV, DEPLOYMENT_ID=deployment_id) if deployment_id else ENV

    assert n.compare_task_definitions(_rendered(env=env(desired_id)), described(_rendered(env=env(current_id)))) == expected


def test_deployment_id_is_compared_when_asked_and_other_changes_still_count():
    current = described(_rendered(env=dict(ENV, DEPLOYMENT_ID="deploy-1")))
    desired = _rendered(env=dict(ENV, DEPLOYMENT_ID="deploy-2", BOOT_BUDGET_MS=7000))
    assert n.compare_task_definitions(desired, current) == [
        "containerDefinitions[agent-runtime].environment[BOOT_BUDGET_MS].value"]
    assert "containerDefinitions[agent-runtime].environment[DEPLOYMENT_ID].value" in n.compare_task_definitions(
        desired, current, ignore_env=())
