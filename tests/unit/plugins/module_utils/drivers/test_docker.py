"""Unit: the docker driver's engine (_docker) with a stubbed Docker API client.

The real engine is exercised by tests/integration/test_docker_driver.py (podman); these pin the
pure parts (what is kept, what is left to the new image, the image history) and the refusals.
"""

from __future__ import annotations

import pytest

docker = pytest.importorskip("docker")

from ansible_collections.agentfleet.rollout.plugins.module_utils import _docker  # noqa: E402
from ansible_collections.agentfleet.rollout.plugins.module_utils import _docker_images  # noqa: E402
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import STOPPED, WORKING  # noqa: E402

OLD_ID = "sha256:" + "a" * 64
NEW_ID = "sha256:" + "b" * 64
CID = "c" * 64


def old_image():
    return {"Id": OLD_ID, "RepoTags": ["ghcr.io/cirisai/ciris-agent:1.0.0"],
            "RepoDigests": ["ghcr.io/cirisai/ciris-agent@sha256:" + "1" * 64],
            "Config": {"Env": ["PATH=/usr/bin", "CIRIS_VERSION=1.0.0"], "Cmd": ["python", "main.py"],
                       "Labels": {"org.opencontainers.image.version": "1.0.0"}}}


def new_image():
    return {"Id": NEW_ID, "RepoTags": ["ghcr.io/cirisai/ciris-agent:2.0.0"],
            "RepoDigests": ["ghcr.io/cirisai/ciris-agent@sha256:" + "2" * 64], "Config": {}}


def container(status="exited", labels=None, cmd=None):
    return {
        "Id": CID, "Name": "/ciris-agent-datum", "Image": OLD_ID, "State": {"Status": status},
        "Config": {"Image": "ghcr.io/cirisai/ciris-agent:1.0.0", "Hostname": CID[:12],
                   "Env": ["PATH=/usr/bin", "CIRIS_VERSION=1.0.0", "CIRIS_AGENT_ID=datum", "HOSTNAME=" + CID[:12]],
                   "Cmd": cmd or ["python", "main.py"],
                   "Labels": dict({"org.opencontainers.image.version": "1.0.0", "ai.ciris.agent": "datum"}, **(labels or {})),
                   "ExposedPorts": {"8080/tcp": {}}},
        "HostConfig": {"Binds": ["/opt/ciris/datum:/app/data:rw"], "PortBindings": {"8080/tcp": [{"HostIp": "", "HostPort": "8081"}]},
                       "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0}, "NetworkMode": "ciris",
                       "Memory": 0, "Ulimits": [{"Name": "RLIMIT_NOFILE", "Soft": 1024, "Hard": 1024}]},
        "NetworkSettings": {"Networks": {"ciris": {"Aliases": ["datum", CID[:12]], "IPAMConfig": None},
                                         "monitoring": {"Aliases": None, "IPAMConfig": {"IPv4Address": "10.9.0.5"}}}},
    }


class StubAPI:
    """Records the calls the driver makes; inspect answers from the dicts given."""

    def __init__(self, cont, images, fail_start=False):
        self.cont = cont
        self.images = images
        self.calls = []
        self.fail_start = fail_start

    def inspect_container(self, ref):
        if ref not in (self.cont["Id"], self.cont["Name"].lstrip("/")):
            raise docker.errors.NotFound("no such container")
        return self.cont

    def inspect_image(self, ref):
        for img in self.images:
            if ref == img["Id"] or ref in img["RepoTags"]:
                return img
        raise docker.errors.ImageNotFound("no such image")

    def pull(self, repo, tag=None):
        self.calls.append(("pull", repo, tag))
        raise docker.errors.APIError("no registry")

    def stop(self, cid, timeout=None):
        self.calls.append(("stop", cid, timeout))
        self.cont = dict(self.cont, State={"Status": "exited"})

    def rename(self, cid, name):
        self.calls.append(("rename", cid, name))

    def create_container(self, **kwargs):
        self.calls.append(("create", kwargs))
        return {"Id": "d" * 64}

    def connect_container_to_network(self, cid, net, **kwargs):
        self.calls.append(("connect", net, kwargs))

    def start(self, cid):
        self.calls.append(("start", cid))
        if self.fail_start is True or (self.fail_start == "new" and cid != CID):
            raise docker.errors.APIError("port is already allocated")

    def remove_container(self, cid, **kwargs):
        self.calls.append(("remove", cid, kwargs))

    def names(self):
        return [c[0] for c in self.calls]

    def created(self):
        return [c[1] for c in self.calls if c[0] == "create"][0]


@pytest.mark.parametrize("template, version, current, expected", [
    ("ghcr.io/cirisai/ciris-agent:{version}", "2.0.0", None, "ghcr.io/cirisai/ciris-agent:2.0.0"),
    (None, "2.0.0", "ghcr.io/cirisai/ciris-agent:1.0.0", "ghcr.io/cirisai/ciris-agent:2.0.0"),
    (None, "2.0.0", "registry:5000/ciris-agent", "registry:5000/ciris-agent:2.0.0"),
    (None, "2.0.0", "ciris-agent:1.0@sha256:" + "f" * 64, "ciris-agent:2.0.0"),
    ("ciris-agent:stable", "2.0.0", None, "ciris-agent:stable"),
])
def test_image_ref(template, version, current, expected):
    assert _docker.image_ref(template, version, current) == expected


def test_image_ref_without_image_or_version_is_a_clear_error():
    with pytest.raises(_docker.DockerDriverError, match="no image to start"):
        _docker.image_ref(None, None, "ciris-agent:1.0.0")


def test_create_spec_keeps_what_the_container_was_given_not_what_the_old_image_gave_it():
    kwargs, more = _docker.create_spec(container(), old_image(), "ghcr.io/cirisai/ciris-agent:2.0.0", {"x": "y"})
    assert kwargs["name"] == "ciris-agent-datum"
    assert kwargs["environment"] == ["CIRIS_AGENT_ID=datum"]
    assert kwargs["labels"] == {"ai.ciris.agent": "datum", "x": "y"}
    assert "command" not in kwargs and "hostname" not in kwargs
    hc = kwargs["host_config"]
    assert hc["Binds"] == ["/opt/ciris/datum:/app/data:rw"]
    assert hc["PortBindings"] == {"8080/tcp": [{"HostIp": "", "HostPort": "8081"}]}
    assert hc["RestartPolicy"] == {"Name": "unless-stopped", "MaximumRetryCount": 0}
    assert hc["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 1024}]
    assert "Memory" not in hc
    assert kwargs["ports"] == [(8080, "tcp")]
    assert kwargs["networking_config"] == {"EndpointsConfig": {"ciris": {"Aliases": ["datum"]}}}
    assert more == [("monitoring", {"IPAMConfig": {"IPv4Address": "10.9.0.5"}})]


def test_create_spec_keeps_an_overridden_command():
    kwargs, dummy = _docker.create_spec(container(cmd=["python", "main.py", "--mock-llm"]), old_image(), "x:2", {})
    assert kwargs["command"] == ["python", "main.py", "--mock-llm"]


def test_history_labels_shift_n1_to_n2():
    old = {_docker.LABEL_PREV: "sha256:n1", _docker.LABEL_PREV_REF: "x:0.9", _docker_images.LABEL_PREV_VERSION: "0.9"}
    labels = _docker.history_labels(old, {"id": OLD_ID, "ref": "x:1.0"}, "1.0", "2.0", "d-1")
    assert _docker.previous_images(labels) == [{"id": OLD_ID, "ref": "x:1.0", "version": "1.0"},
                                               {"id": "sha256:n1", "ref": "x:0.9", "version": "0.9"}]
    assert labels[_docker.LABEL_VERSION] == "2.0" and labels[_docker.LABEL_DEPLOYMENT] == "d-1"


def test_recreate_a_stopped_container_returns_both_images_with_digests():
    api = StubAPI(container(), [old_image(), new_image()])
    out = _docker.recreate(api, "ciris-agent-datum", version="2.0.0", version_before="1.0.0")
    assert api.names() == ["rename", "create", "connect", "start", "remove"]
    assert out["image_before"] == {"ref": "ghcr.io/cirisai/ciris-agent:1.0.0", "id": OLD_ID, "digest": "sha256:" + "1" * 64}
    assert out["image_after"] == {"ref": "ghcr.io/cirisai/ciris-agent:2.0.0", "id": NEW_ID, "digest": "sha256:" + "2" * 64}
    assert api.created()["labels"][_docker.LABEL_PREV] == OLD_ID
    # the old container is removed without its volumes; no image is removed
    assert api.calls[-1] == ("remove", CID, {"v": False})


@pytest.mark.parametrize("state", [WORKING, "draining", "no_answer", None])
def test_a_running_container_whose_agent_has_not_stopped_is_refused(state):
    api = StubAPI(container(status="running"), [old_image(), new_image()])
    with pytest.raises(_docker.AgentStillWorking, match="has not stopped"):
        _docker.recreate(api, "ciris-agent-datum", version="2.0.0",
                         liveness=(lambda: state) if state is not None else None)
    assert api.calls == []


def test_a_running_container_whose_api_has_closed_is_stopped_then_recreated():
    api = StubAPI(container(status="running"), [old_image(), new_image()])
    out = _docker.recreate(api, "ciris-agent-datum", version="2.0.0", liveness=lambda: STOPPED, stop_timeout=5,
                           sleep=lambda s: None)
    assert api.calls[0] == ("stop", CID, 5) and out["stopped_by_driver"] is True


def test_revert_stops_the_failed_container_and_starts_the_recorded_previous_image():
    cont = container(status="running", labels={_docker.LABEL_PREV: OLD_ID,
                                               _docker.LABEL_PREV_REF: "ghcr.io/cirisai/ciris-agent:1.0.0"})
    cont["Image"] = NEW_ID
    cont["Config"]["Image"] = "ghcr.io/cirisai/ciris-agent:2.0.0"
    api = StubAPI(cont, [old_image(), new_image()])
    # the recorded previous image wins over the image template
    out = _docker.recreate(api, "ciris-agent-datum", image="ghcr.io/cirisai/ciris-agent:{version}", version="1.0.0-x",
                           purpose="revert", sleep=lambda s: None)
    assert api.calls[0][0] == "stop"
    assert out["image_after"]["id"] == OLD_ID
    # by its reference, which still names the recorded image
    assert api.created()["image"] == "ghcr.io/cirisai/ciris-agent:1.0.0"
    assert api.created()["labels"][_docker.LABEL_PREV] == NEW_ID
    assert api.created()["labels"][_docker_images.LABEL_PREV2] == OLD_ID


def test_a_failed_start_puts_the_old_container_back_under_its_name_and_starts_it_again():
    # the agent stopped for the update: when the new container will not start, the old one runs again (never
    # left down), on the version it ran before
    api = StubAPI(container(), [old_image(), new_image()], fail_start="new")
    with pytest.raises(_docker.DockerDriverError, match="port is already allocated.*old container is started again"):
        _docker.recreate(api, "ciris-agent-datum", version="2.0.0")
    assert api.calls[-2:] == [("rename", CID, "ciris-agent-datum"), ("start", CID)]
    assert ("remove", "d" * 64, {"force": True}) in api.calls


def test_an_old_container_that_will_not_start_again_is_said_so():
    api = StubAPI(container(), [old_image(), new_image()], fail_start=True)
    with pytest.raises(_docker.DockerDriverError, match="old container is kept, stopped: it would not start again"):
        _docker.recreate(api, "ciris-agent-datum", version="2.0.0")
    assert api.calls[-2:] == [("rename", CID, "ciris-agent-datum"), ("start", CID)]


def test_a_missing_image_that_cannot_be_pulled_is_a_clear_error_and_nothing_changes():
    api = StubAPI(container(), [old_image()])
    with pytest.raises(_docker.DockerDriverError, match="cannot pull image ghcr.io/cirisai/ciris-agent:2.0.0"):
        _docker.recreate(api, "ciris-agent-datum", version="2.0.0")
    assert api.names() == ["pull"]


def test_check_mode_changes_nothing():
    api = StubAPI(container(), [old_image(), new_image()])
    out = _docker.recreate(api, "ciris-agent-datum", version="2.0.0", check_mode=True)
    assert out["changed"] is True and out["container_id"] is None and api.calls == []


def test_an_unknown_container_is_named_in_the_error():
    api = StubAPI(container(), [old_image()])
    with pytest.raises(_docker.DockerDriverError, match="container nope: no such container"):
        _docker.recreate(api, "nope", version="2.0.0")


def test_a_rerun_recreates_the_container_it_started_for_the_same_deployment():
    labels = {_docker.LABEL_DEPLOYMENT: "d-1", _docker.LABEL_VERSION: "2.0.0", _docker.LABEL_PREV: OLD_ID}
    api = StubAPI(container(status="running", labels=labels), [old_image(), new_image()])
    out = _docker.recreate(api, "ciris-agent-datum", version="2.0.0", deployment_id="d-1", liveness=lambda: WORKING,
                           sleep=lambda s: None)
    assert api.calls[0][0] == "stop" and out["stopped_by_driver"] is True
    # another deployment's container, or another version, is still the agent's own: refused
    for dep, ver in (("d-2", "2.0.0"), ("d-1", "3.0.0")):
        api = StubAPI(container(status="running", labels=labels), [old_image(), new_image()])
        with pytest.raises(_docker.AgentStillWorking):
            _docker.recreate(api, "ciris-agent-datum", version=ver, deployment_id=dep, liveness=lambda: WORKING)
        assert api.calls == []


@pytest.mark.parametrize("status", ["exited", "running"])
def test_a_revert_of_a_container_this_deployment_never_replaced_starts_it_as_it_is(status):
    # its update failed before the new container ran (say the pull failed): it still holds 1.0.0, the version to go
    # back to; its own previous image (0.9.0, from an earlier deployment) is not where a revert goes
    cont = container(status=status, labels={_docker.LABEL_PREV: NEW_ID, _docker_images.LABEL_DEPLOYMENT: "deploy-old",
                                            _docker_images.LABEL_VERSION: "1.0.0"})
    api = StubAPI(cont, [old_image(), new_image()])
    out = _docker.recreate(api, "ciris-agent-datum", version="1.0.0", purpose="revert", deployment_id="deploy-new",
                           version_before="2.0.0")
    assert api.names() == (["start"] if status == "exited" else [])
    assert out["changed"] is (status == "exited") and out["container_id"] == CID
    assert out["image_before"] == out["image_after"] and out["image_after"]["id"] == OLD_ID
    full = _docker.recreate(StubAPI(container(), [old_image(), new_image()]), "ciris-agent-datum", version="2.0.0")
    assert sorted(out) == sorted(full)
