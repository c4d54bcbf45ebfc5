"""ECS modules and the agentfleet.rollout.ecs_deploy playbook against a real moto server.

One moto server (real HTTP, real boto3) for the module; each test uses its own
cluster/service/family. moto does not advance deployments, so these runs use
``ecs_wait: false``; the waiting and rollback logic is covered with botocore's
Stubber in tests/unit/ecs/test_ecs_service.py.
"""

from __future__ import annotations

import json
import re

import boto3
import pytest

from conftest import ansible_env, run_playbook
from motoserver import MotoServer

REGION = "us-east-2"
ACCESS_KEY = "AKIDMOTOTESTING"
SECRET_KEY = "moto-secret-do-not-print-1234"
PACKAGE_URL = "s3://pixell-agent-packages/python-executor/v1.apkg"
SHA = "ab" * 32


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory):
    with MotoServer(tmp_path_factory.mktemp("moto")) as moto:
        yield moto.url


@pytest.fixture
def ecs(moto_url):
    return boto3.client("ecs", region_name=REGION, endpoint_url=moto_url, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY)


def make_service(ecs, name):
    """A cluster and a service running a bootstrap revision, as infrastructure code would create them."""
    ecs.create_cluster(clusterName=name)
    boot = ecs.register_task_definition(
        family=name + "-bootstrap",
        containerDefinitions=[{"name": "agent-runtime", "image": "bootstrap:0", "memory": 128}])["taskDefinition"]
    ecs.create_service(cluster=name, serviceName=name, taskDefinition=boot["taskDefinitionArn"], desiredCount=0)
    return boot["taskDefinitionArn"]


def service_td(ecs, name):
    ref = ecs.describe_services(cluster=name, services=[name])["services"][0]["taskDefinition"]
    return ecs.describe_task_definition(taskDefinition=ref)["taskDefinition"]["taskDefinitionArn"]


def revisions(ecs, family):
    return ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]


def env_for(tmp_path, moto_url):
    return ansible_env(tmp_path, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                       AWS_DEFAULT_REGION=REGION, AWS_ENDPOINT_URL=moto_url)


def deploy_vars(name, tmp_path, **over):
    extra = {
        "ecs_cluster": name, "ecs_service": name, "ecs_family": name,
        "ecs_image_repository": "123456789012.dkr.ecr.us-east-2.amazonaws.com/pixell-agent-runtime",
        "ecs_image_tag": "abc123",
        "ecs_agent_env": {"AGENT_APP_ID": "python-executor", "PACKAGE_URL": PACKAGE_URL, "PACKAGE_SHA256": SHA},
        "ecs_wait": False,
        "rollout_deployment_id": "deploy-20250131-100000",
        "rollout_report_path": str(tmp_path / "report.json"),
    }
    extra.update(over)
    return extra


def recap_changed(result):
    line = [x for x in result.stdout.splitlines() if x.startswith("localhost") and "ok=" in x][-1]
    return int(line.split("changed=")[1].split()[0])


def test_full_deploy_check_then_real_then_unchanged(ecs, moto_url, tmp_path):
    name = "full"
    boot = make_service(ecs, name)
    env = env_for(tmp_path, moto_url)
    # explicit options (no_log) instead of the environment's
    extra = deploy_vars(name, tmp_path, aws_access_key=ACCESS_KEY, aws_secret_key=SECRET_KEY,
                        aws_region=REGION, aws_endpoint_url=moto_url)

    check = run_playbook("agentfleet.rollout.ecs_deploy", tmp_path, extra_vars=extra, check=True, diff=True, env=env)
    assert check.rc == 0, check
    assert revisions(ecs, name) == [], "check mode registered a revision"
    assert service_td(ecs, name) == boot
    assert '+                    "value": "%s"' % PACKAGE_URL in check.stdout
    assert not (tmp_path / "report.json").exists(), "check mode wrote the report"
    assert not (tmp_path / "report.audit.jsonl").exists(), "check mode wrote audit lines"

    real = run_playbook("agentfleet.rollout.ecs_deploy", tmp_path, extra_vars=extra, env=env)
    assert real.rc == 0, real
    assert recap_changed(real) == 2
    arn = "arn:aws:ecs:%s:123456789012:task-definition/%s:1" % (REGION, name)
    assert service_td(ecs, name) == arn
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["deployment_id"] == "deploy-20250131-100000" and report["strategy"] == "ecs"
    assert report["mode"] == "full" and report["result"] == "started"
    assert report["target"] == {"family": name, "revision": 1,
                                "image": extra["ecs_image_repository"] + ":abc123"}
    assert report["previous_task_definition"] == boot and report["task_definition"] == arn
    assert [e["event"] for e in report["events"]] == ["taskdef_registered", "service_updated"]
    for key in ("started_at", "finished_at", "rollout_state"):
        assert key in report
    audit = (tmp_path / "report.audit.jsonl").read_text().splitlines()
    assert [json.loads(x)["event"] for x in audit][-2:] == ["taskdef_registered", "service_updated"]

    td = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    container = td["containerDefinitions"][0]
    values = dict((e["name"], e["value"]) for e in container["environment"])
    assert values["DEPLOYMENT_ID"] == "deploy-20250131-100000"
    assert values["BASE_PATH"] == "/agents/python-executor" and values["REST_PORT"] == "8080"
    assert values["WHEELHOUSE_DIR"] == "/opt/wheelhouse"
    assert container["image"].endswith(":abc123")

    again = run_playbook("agentfleet.rollout.ecs_deploy", tmp_path, extra_vars=extra, env=env)
    assert again.rc == 0, again
    assert recap_changed(again) == 0
    assert len(revisions(ecs, name)) == 1
    # a plain rerun: the default deployment id (UTC, to the second) differs, nothing else does
    plain = dict(extra)
    plain.pop("rollout_deployment_id")
    rerun = run_playbook("agentfleet.rollout.ecs_deploy", tmp_path, extra_vars=plain, env=env)
    assert rerun.rc == 0, rerun
    assert recap_changed(rerun) == 0
    assert len(revisions(ecs, name)) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert re.match(r"^deploy-\d{8}-\d{6}$", report["deployment_id"]) and report["deployment_id"] != "deploy-20250131-100000"
    for run in (check, real, again, rerun):
        assert SECRET_KEY not in run.output
    assert SECRET_KEY not in (tmp_path / "report.json").read_text()


def test_new_package_then_update_only_back(ecs, moto_url, tmp_path):
    name = "pkg"
    make_service(ecs, name)
    env = env_for(tmp_path, moto_url)
    first = run_playbook("agentfleet.rollout.ecs_deploy", tmp_path, extra_vars=deploy_vars(name, tmp_path), env=env)
    assert first.rc == 0, first

    v2 = deploy_vars(name, tmp_path)
    v2["ecs_agent_env"] = dict(v2["ecs_agent_env"], PACKAGE_URL=PACKAGE_URL.replace("v1", "v2"))
    second = run_playbook("agentfleet.rollout.ecs_deploy", tmp_path, extra_vars=v2, env=env, diff=True)
    assert second.rc == 0, second
    assert '-                    "value": "%s"' % PACKAGE_URL in second.stdout
    assert '+                    "value": "%s"' % PACKAGE_URL.replace("v1", "v2") in second.stdout
    assert service_td(ecs, name).endswith("%s:2" % name)

    back = run_playbook("agentfleet.rollout.ecs_deploy", tmp_path, env=env, extra_vars=deploy_vars(
        name, tmp_path, ecs_mode="update_only", ecs_task_definition="%s:1" % name))
    assert back.rc == 0, back
    assert service_td(ecs, name).endswith("%s:1" % name)
    assert len(revisions(ecs, name)) == 2
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["mode"] == "update_only" and report["previous_task_definition"].endswith("%s:2" % name)
    assert report["target"]["revision"] == 1


def test_register_only_touches_no_service(ecs, moto_url, tmp_path):
    name = "regonly"
    boot = make_service(ecs, name)
    env = env_for(tmp_path, moto_url)
    result = run_playbook("agentfleet.rollout.ecs_deploy", tmp_path, env=env,
                          extra_vars=deploy_vars(name, tmp_path, ecs_mode="register_only"))
    assert result.rc == 0, result
    assert len(revisions(ecs, name)) == 1 and service_td(ecs, name) == boot
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["mode"] == "register_only" and report["result"] == "succeeded"
    assert report["target"]["revision"] == 1


def test_playbook_refuses_bad_package_url_before_any_call(ecs, moto_url, tmp_path):
    name = "badurl"
    make_service(ecs, name)
    extra = deploy_vars(name, tmp_path)
    extra["ecs_agent_env"]["PACKAGE_URL"] = "file:///tmp/agent.apkg"
    result = run_playbook("agentfleet.rollout.ecs_deploy", tmp_path, extra_vars=extra, env=env_for(tmp_path, moto_url))
    assert result.rc != 0
    assert "file:// URLs are not allowed" in result.output
    assert revisions(ecs, name) == []
    assert json.loads((tmp_path / "report.json").read_text())["result"] == "failed"


MODULES_PLAYBOOK = r"""
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    env: {AGENT_APP_ID: mod-agent, PACKAGE_URL: "https://packages.example.com/a.apkg"}
    td:
      family: mods
      requiresCompatibilities: [FARGATE]
      networkMode: awsvpc
      cpu: 1 vCPU
      memory: 2 GB
      containerDefinitions:
        - name: agent-runtime
          image: repo/agent:1
          stopTimeout: 35
          portMappings: [{containerPort: 8080}, {containerPort: 50051}]
          secrets: [{name: DB_PASSWORD, valueFrom: "arn:aws:secretsmanager:us-east-2:123456789012:secret:db"}]
          environment: [{name: API_TOKEN, value: tok-very-secret}]
    ports_ecs_style:
      - {containerPort: 50051, hostPort: 50051, protocol: tcp}
      - {containerPort: 8080, hostPort: 8080, protocol: tcp}
    c_ecs_style: "{{ td.containerDefinitions[0] | combine({'essential': true, 'cpu': 0, 'portMappings': ports_ecs_style}) }}"
    td_ecs_style: "{{ td | combine({'cpu': '1024', 'memory': '2048', 'containerDefinitions': [c_ecs_style]}) }}"
    db2: [{name: DB_PASSWORD, valueFrom: "arn:aws:secretsmanager:us-east-2:123456789012:secret:db2"}]
    td_db2: "{{ td | combine({'memory': '4096', 'containerDefinitions': [td.containerDefinitions[0] | combine({'secrets': db2})]}) }}"
    td_noenv: "{{ td | combine({'containerDefinitions': [td.containerDefinitions[0] | combine({'environment': []})]}) }}"
    env7: "{{ env | combine({'BOOT_BUDGET_MS': 7000}) }}"
  tasks:
    - name: register in check mode
      agentfleet.rollout.ecs_taskdef: {task_definition: "{{ td }}", agent_env: "{{ env }}"}
      check_mode: true
      register: c0
    - name: register
      agentfleet.rollout.ecs_taskdef: {task_definition: "{{ td }}", agent_env: "{{ env }}"}
      register: r1
    - name: register again, unchanged (cpu/memory units, network mode, secrets, port protocol defaults)
      agentfleet.rollout.ecs_taskdef: {task_definition: "{{ td }}", agent_env: "{{ env }}"}
      register: r2
    - name: same thing written the way ECS describes it
      agentfleet.rollout.ecs_taskdef:
        task_definition: "{{ td_ecs_style }}"
        agent_env: "{{ env }}"
      register: r3
    - name: change one env var, check mode, diff
      agentfleet.rollout.ecs_taskdef: {task_definition: "{{ td }}", agent_env: "{{ env7 }}"}
      check_mode: true
      diff: true
      register: c4
    - name: change one env var
      agentfleet.rollout.ecs_taskdef: {task_definition: "{{ td }}", agent_env: "{{ env7 }}"}
      register: r4
    - name: change task memory
      agentfleet.rollout.ecs_taskdef: {task_definition: "{{ td | combine({'memory': '4096'}) }}", agent_env: "{{ env7 }}"}
      register: r5
    - name: change a secret reference
      agentfleet.rollout.ecs_taskdef:
        task_definition: "{{ td_db2 }}"
        agent_env: "{{ env7 }}"
      register: r6
    - name: force_create
      agentfleet.rollout.ecs_taskdef:
        task_definition: "{{ td_db2 }}"
        agent_env: "{{ env7 }}"
        force_create: true
      register: r7
    - name: service in check mode
      agentfleet.rollout.ecs_service_rollout: {cluster: mods, service: mods, task_definition: "{{ r1.arn }}", wait: false}
      check_mode: true
      register: s0
    - name: service update
      agentfleet.rollout.ecs_service_rollout: {cluster: mods, service: mods, task_definition: "{{ r1.arn }}", wait: false}
      register: s1
    - name: service again
      agentfleet.rollout.ecs_service_rollout: {cluster: mods, service: mods, task_definition: "mods:1", wait: false}
      register: s2
    - name: validation errors
      agentfleet.rollout.ecs_taskdef:
        family: mods
        task_definition: "{{ item.td | default(td_noenv) }}"
        agent_env: "{{ item.env }}"
      loop:
        - {env: {AGENT_APP_ID: "", PACKAGE_URL: "s3://b/k"}, msg: "AGENT_APP_ID missing or empty"}
        - {env: {AGENT_APP_ID: a, PACKAGE_URL: "file:///a.apkg"}, msg: "file:// URLs are not allowed"}
        - {env: {AGENT_APP_ID: a, PACKAGE_URL: "http://h/a.apkg"}, msg: "http:// URLs are not allowed"}
        - {env: {AGENT_APP_ID: a, PACKAGE_URL: "s3://b/k", PACKAGE_SHA256: "abc"}, msg: "PACKAGE_SHA256 must be 64 hexadecimal"}
        - env: {AGENT_APP_ID: a, PACKAGE_URL: "s3://b/k", GRACEFUL_SHUTDOWN_TIMEOUT_SEC: 40}
          msg: "must be greater than GRACEFUL_SHUTDOWN_TIMEOUT_SEC (40)"
        - env: {AGENT_APP_ID: a, PACKAGE_URL: "s3://b/k"}
          td: {containerDefinitions: [{name: agent-runtime, stopTimeout: 35}]}
          msg: "image is required"
      ignore_errors: true
      register: bad
    - name: check everything
      ansible.builtin.assert:
        that:
          - c0 is changed and c0.revision is none
          - r1 is changed and r1.revision == 1
          - r2 is not changed and r2.revision == 1 and r2.arn == r1.arn
          - r3 is not changed and r3.revision == 1
          - c4 is changed and c4.revision is none
          - c4.differences == ['containerDefinitions[agent-runtime].environment[BOOT_BUDGET_MS].value']
          - >-
            c4.diff.before.containerDefinitions[0].environment
            | selectattr('name', 'equalto', 'API_TOKEN') | map(attribute='value') | first == '********'
          - r4 is changed and r4.revision == 2
          - r5 is changed and r5.revision == 3 and r5.differences == ['memory']
          - r6 is changed and r6.revision == 4
          - r7 is changed and r7.revision == 5
          - s0 is changed and s0.previous_task_definition is search('mods-bootstrap:1')
          - s1 is changed and s1.task_definition == r1.arn and s1.result == 'started'
          - s2 is not changed and s2.previous_task_definition == r1.arn
          - bad.results | map(attribute='failed') | unique == [true]
          - bad.results | length == 6
    - name: each validation message is the expected one
      ansible.builtin.assert:
        that: item.item.msg in item.msg
      loop: "{{ bad.results }}"
      loop_control: {label: "{{ item.item.msg }}"}
"""


def test_modules_check_real_again_and_validation(ecs, moto_url, tmp_path):
    make_service(ecs, "mods")
    playbook = tmp_path / "modules.yml"
    playbook.write_text(MODULES_PLAYBOOK)
    result = run_playbook(str(playbook), tmp_path, env=env_for(tmp_path, moto_url))
    assert result.rc == 0, result
    assert len(revisions(ecs, "mods")) == 5
    # the diff (--diff not given, but the registered result) and results never show the secret-looking value
    assert "tok-very-secret" not in result.output
    assert service_td(ecs, "mods").endswith("mods:1")


def test_update_only_with_an_image_tag_takes_the_service_task_definition(ecs, moto_url, tmp_path):
    name = "imgtag"
    make_service(ecs, name)
    env = env_for(tmp_path, moto_url)
    first = run_playbook("agentfleet.rollout.ecs_deploy", tmp_path, extra_vars=deploy_vars(name, tmp_path), env=env)
    assert first.rc == 0, first
    # CI feeds only the new tag: no template, no ecs_agent_env
    extra = deploy_vars(name, tmp_path, ecs_mode="update_only", ecs_image_tag="def456", ecs_agent_env={},
                        rollout_deployment_id="deploy-20250201-080000")
    second = run_playbook("agentfleet.rollout.ecs_deploy", tmp_path, extra_vars=extra, env=env)
    assert second.rc == 0, second
    assert len(revisions(ecs, name)) == 2 and service_td(ecs, name).endswith("%s:2" % name)
    td = ecs.describe_task_definition(taskDefinition="%s:2" % name)["taskDefinition"]
    container = td["containerDefinitions"][0]
    values = dict((e["name"], e["value"]) for e in container["environment"])
    assert container["image"].endswith(":def456")
    assert values["PACKAGE_URL"] == PACKAGE_URL and values["WHEELHOUSE_DIR"] == "/opt/wheelhouse"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["mode"] == "update_only" and report["target"]["revision"] == 2
    again = run_playbook("agentfleet.rollout.ecs_deploy", tmp_path, extra_vars=extra, env=env)
    assert again.rc == 0, again
    assert recap_changed(again) == 0 and len(revisions(ecs, name)) == 2


@pytest.mark.parametrize("over, message", [
    ({"ecs_agent_env": {"AGENT_APP_ID": "python-executor"}}, "needs ecs_agent_env with AGENT_APP_ID and PACKAGE_URL"),
    ({"ecs_mode": "register_only", "ecs_agent_env": {}}, "needs ecs_agent_env with AGENT_APP_ID and PACKAGE_URL"),
    ({"ecs_mode": "update_only", "ecs_image_tag": None}, "update_only needs ecs_task_definition"),
    ({"ecs_service": ""}, "needs ecs_cluster and ecs_service"),
])
def test_playbook_preflight_per_mode(ecs, moto_url, tmp_path, over, message):
    extra = deploy_vars("preflight", tmp_path, **over)
    if extra.get("ecs_image_tag") is None:
        extra.pop("ecs_image_tag")
    env = env_for(tmp_path, moto_url)
    env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # any AWS call would fail differently
    result = run_playbook("agentfleet.rollout.ecs_deploy", tmp_path, extra_vars=extra, env=env)
    assert result.rc != 0
    assert message in result.output
    assert not (tmp_path / "report.json").exists()
