"""Integration: the docker update driver against a real container engine (podman's Docker API).

scripts/podman-service.sh starts a private rootful podman service and builds the test agent's
images (busybox + a CGI agent, tests/docker-agent/) with `podman import`. Where podman cannot
be used the tests are skipped with the reason; in CI (CI=true, root, Linux) they must run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from conftest import REPO, run_playbook
from helpers import published_port, wait_for

docker = pytest.importorskip("docker", reason="the Docker SDK for Python (docker) is not installed")

IMAGE = "localhost/agentfleet-test-agent"
SCRIPT = REPO / "scripts" / "podman-service.sh"


def _must_run():
    return os.environ.get("CI") == "true" and sys.platform.startswith("linux") and os.geteuid() == 0


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """DOCKER_HOST of a podman service with the images 1.0.0, 2.0.0 and 3.0.0 (never healthy)."""
    check = subprocess.run(["bash", str(SCRIPT), "check"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        reason = "docker driver tests need podman here: %s" % (check.stdout + check.stderr).strip()
        if _must_run():
            pytest.fail(reason + " (CI=true as root on Linux: .ci/run installs podman, runc and busybox-static)")
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("podman")
    started = subprocess.run(["bash", str(SCRIPT), "start", str(workdir), "1.0.0", "2.0.0", "3.0.0:degraded"],
                             capture_output=True, text=True, timeout=180, check=False)
    try:
        if started.returncode != 0:
            reason = "podman system service did not start: %s" % (started.stdout + started.stderr)[-2000:]
            if _must_run():
                pytest.fail(reason)
            pytest.skip(reason)
        host = [line for line in started.stdout.splitlines() if line.startswith("DOCKER_HOST=")][0].split("=", 1)[1]
        yield host
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(workdir)], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def client(engine):
    c = docker.DockerClient(base_url=engine, version="auto", timeout=60)
    yield c
    c.close()


def health(url, timeout=1.0):
    try:
        with urllib.request.urlopen(url + "/v1/system/health", timeout=timeout) as resp:
            return json.loads(resp.read())["data"]
    except (OSError, urllib.error.URLError, ValueError):
        return None


def start_agents(client, tmp_path, prefix, count, decline=()):
    """Containers ``prefix-0..`` on 1.0.0 with env, labels, a port binding and a restart policy; the inventory."""
    hosts = {}
    for i in range(count):
        name = "%s-%d" % (prefix, i)
        port = published_port()
        env = {"AGENT_ID": name, "CIRIS_SETTING": "kept-%d" % i}
        if name in decline:
            env["AGENT_CONSENT"] = "decline"
        client.containers.run("%s:1.0.0" % IMAGE, name=name, detach=True, environment=env,
                              labels={"ciris.agent": name, "team": "fleet"},
                              ports={"8080/tcp": ("127.0.0.1", port)},
                              restart_policy={"Name": "on-failure", "MaximumRetryCount": 2})
        hosts[name] = {"agent_url": "http://127.0.0.1:%d/cgi-bin/agent" % port, "agent_container": name}
    for h in hosts.values():
        wait_for(lambda h=h: health(h["agent_url"]), 30.0, "agent %s healthy" % h["agent_container"], interval=0.1)
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"agents": {"hosts": hosts, "vars": {"ansible_connection": "local"}}}))
    return hosts, inventory


def snapshot(client, name):
    attrs = client.api.inspect_container(name)
    env = dict(e.split("=", 1) for e in attrs["Config"]["Env"] or [])
    return {"id": attrs["Id"], "image": attrs["Image"], "env": env, "labels": attrs["Config"]["Labels"] or {},
            "ports": attrs["HostConfig"]["PortBindings"], "restart": attrs["HostConfig"]["RestartPolicy"],
            "networks": sorted((attrs["NetworkSettings"]["Networks"] or {})), "status": attrs["State"]["Status"]}


def rollout(engine, tmp_path, inventory, target, **extra):
    v = {
        "rollout_target_version": target, "rollout_driver": "docker",
        "rollout_docker_image": IMAGE + ":{version}", "docker_host": engine,
        "rollout_cohorts": "all", "rollout_min_healthy_time": 0, "rollout_poll_interval": 0.1,
        "rollout_healthy_deadline": 15, "rollout_stop_timeout": 6,
        "rollout_state_path": str(tmp_path / "state.db"), "rollout_report_path": str(tmp_path / "report.json"),
        "rollout_audit_path": str(tmp_path / "audit.jsonl"),
    }
    v.update(extra)
    return run_playbook("agentfleet.rollout.canary", tmp_path, inventory=inventory, extra_vars=v,
                        report_path=tmp_path / "report.json", timeout=300, args=["--forks", "4"])


def image_id(client, version):
    return client.api.inspect_image("%s:%s" % (IMAGE, version))["Id"]


def image_digest(client, version):
    return client.api.inspect_image("%s:%s" % (IMAGE, version))["RepoDigests"][0].split("@", 1)[1]


def test_docker_driver_recreates_the_stopped_agents_and_keeps_their_config(engine, client, tmp_path):
    hosts, inventory = start_agents(client, tmp_path, "upd", 4, decline=("upd-3",))
    before = {name: snapshot(client, name) for name in hosts}
    res = rollout(engine, tmp_path, inventory, "2.0.0")
    assert res.rc == 0, res.output
    new_id = image_id(client, "2.0.0")
    report = {a["host"]: a for a in res.report()["agents"]}
    for name in ("upd-0", "upd-1", "upd-2"):
        after = snapshot(client, name)
        old = before[name]
        assert after["id"] != old["id"] and after["image"] == new_id and after["status"] == "running"
        # what the container was given is kept; what the old image gave it (AGENT_VERSION) is not
        assert after["env"]["AGENT_ID"] == name and after["env"]["CIRIS_SETTING"] == old["env"]["CIRIS_SETTING"]
        assert after["env"]["AGENT_VERSION"] == "2.0.0"
        assert {k: after["labels"][k] for k in ("ciris.agent", "team")} == {"ciris.agent": name, "team": "fleet"}
        assert after["ports"] == old["ports"] and after["restart"] == old["restart"]
        assert after["networks"] == old["networks"]
        # the previous image is recorded (n-1) and kept
        assert after["labels"]["agentfleet.rollout.previous_image"] == old["image"]
        assert after["labels"]["agentfleet.rollout.previous_version"] == "1.0.0"
        assert client.api.inspect_image(old["image"])["Id"] == old["image"]
        assert health(hosts[name]["agent_url"])["version"] == "2.0.0"
        agent = report[name]
        assert agent["result"] == "updated", agent
        update = agent["driver"]["update"]
        assert update["image_before"]["id"] == old["image"]
        assert update["image_before"]["digest"] == image_digest(client, "1.0.0")
        assert update["image_after"]["id"] == new_id
        assert update["image_after"]["digest"] == image_digest(client, "2.0.0")
    # the agent that declined (kept working) was never recreated
    assert report["upd-3"]["result"] == "declined"
    assert report["upd-3"]["driver"] is None
    kept = snapshot(client, "upd-3")
    assert kept["id"] == before["upd-3"]["id"] and kept["status"] == "running" and kept["image"] == before["upd-3"]["image"]
    assert health(hosts["upd-3"]["agent_url"])["version"] == "1.0.0"
    # each agent's recreate was a task of its own host, delegated to the controller, in the round after it
    # stopped (the per-agent pipeline: one round or several, each agent once)
    sections = [part.split("TASK [")[0] for part in res.output.split("Recreate the agent's container (update, 2.0.0)")[1:]]
    recreated = [line.split("[")[1].split(" ")[0] for section in sections for line in section.splitlines()
                 if line.startswith("changed: [")]
    assert sorted(recreated) == ["upd-0", "upd-1", "upd-2"]


def test_a_never_healthy_image_is_reverted_to_the_previous_image(engine, client, tmp_path):
    hosts, inventory = start_agents(client, tmp_path, "rev", 3)
    before = {name: snapshot(client, name) for name in hosts}
    res = rollout(engine, tmp_path, inventory, "3.0.0", rollout_auto_revert=True, rollout_healthy_deadline=3,
                  rollout_docker_stop_timeout=5)
    assert res.rc != 0, res.output
    old_id = image_id(client, "1.0.0")
    report = res.report()
    assert report["status"] == "failed"
    for name, agent in ((a["host"], a) for a in report["agents"]):
        assert agent["result"] == "reverted", agent
        assert "update" in agent["driver"], (agent, res.output[-6000:])
        assert agent["driver"]["update"]["image_after"]["id"] == image_id(client, "3.0.0")
        assert agent["driver"]["revert"]["image_after"]["id"] == old_id
        after = snapshot(client, name)
        assert after["image"] == old_id and after["status"] == "running"
        assert client.api.inspect_container(name)["Config"]["Image"] == IMAGE + ":1.0.0"
        assert after["env"]["CIRIS_SETTING"] == before[name]["env"]["CIRIS_SETTING"]
        assert after["ports"] == before[name]["ports"] and after["restart"] == before[name]["restart"]
        # both images stay: the one reverted to, and the failed one, recorded as n-1
        assert after["labels"]["agentfleet.rollout.previous_image"] == image_id(client, "3.0.0")
        assert after["labels"]["agentfleet.rollout.previous_image_2"] == old_id
        h = wait_for(lambda name=name: health(hosts[name]["agent_url"]), 30.0, "reverted agent %s answering" % name,
                     interval=0.1)
        assert h["version"] == "1.0.0" and h["status"] == "healthy"


def test_a_running_agent_is_never_recreated_by_the_module(engine, client, tmp_path):
    hosts, inventory = start_agents(client, tmp_path, "run", 1)
    before = snapshot(client, "run-0")
    playbook = tmp_path / "direct.yml"
    playbook.write_text(json.dumps([{
        "hosts": "agents", "gather_facts": False, "tasks": [{
            "agentfleet.rollout.docker_agent_update": {
                "name": "{{ agent_container }}", "image": IMAGE + ":{version}", "version": "2.0.0",
                "agent_url": "{{ agent_url }}", "docker_host": engine}}]}]))
    res = run_playbook(str(playbook), tmp_path, inventory=inventory)
    assert res.rc != 0
    assert "has not stopped" in res.output and "run-0" in res.output
    after = snapshot(client, "run-0")
    assert after["id"] == before["id"] and after["status"] == "running"
    assert health(hosts["run-0"]["agent_url"])["version"] == "1.0.0"
