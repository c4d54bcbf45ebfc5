# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``docker`` update driver: recreate a stopped agent's container from another image.

Observed consent (PROTOCOL.md): the rollout hands an agent to a driver only once it has
stopped. This engine checks that again on the container itself and refuses a container whose
agent still answers; a container whose agent's API has closed but whose process hangs (a known
CIRIS shutdown hang) is stopped first. The new container keeps what the old one was given
(env, binds and mounts, port bindings, labels, restart policy, networks, ...) but nothing that
came from the old *image* (its env, labels, command), so the new image's own defaults apply.
Images are never removed: the container's labels record the previous two images (n-1, n-2),
which is what a revert (and a later rollback) starts again (:mod:`._docker_images`).

Works against the Docker Engine API and podman's Docker-compatible API alike, through the
Docker SDK for Python (``docker``).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING
from typing import Any
from typing import Callable
from typing import Dict
from typing import Iterable
from typing import List
from typing import Mapping
from typing import Optional
from typing import Tuple
from typing import Union

from ansible_collections.agentfleet.rollout.plugins.module_utils._docker_images import HISTORY_LABELS
from ansible_collections.agentfleet.rollout.plugins.module_utils._docker_images import LABEL_DEPLOYMENT
from ansible_collections.agentfleet.rollout.plugins.module_utils._docker_images import LABEL_PREV
from ansible_collections.agentfleet.rollout.plugins.module_utils._docker_images import LABEL_PREV_REF
from ansible_collections.agentfleet.rollout.plugins.module_utils._docker_images import LABEL_VERSION
from ansible_collections.agentfleet.rollout.plugins.module_utils._docker_images import history_labels
from ansible_collections.agentfleet.rollout.plugins.module_utils._docker_images import ImageInfo
from ansible_collections.agentfleet.rollout.plugins.module_utils._docker_images import image_info
from ansible_collections.agentfleet.rollout.plugins.module_utils._docker_images import previous_images
from ansible_collections.agentfleet.rollout.plugins.module_utils._docker_images import split_ref
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import Deadline
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import poll

DOCKER_IMPORT_ERROR: Optional[ImportError]
try:
    import docker
    from docker import errors as docker_errors
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the controller
    docker = None
    docker_errors = None
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = exc

if TYPE_CHECKING:
    from typing import Protocol

    class DockerAPI(Protocol):
        """The calls the driver makes on a ``docker.APIClient`` (inspect results are JSON-like dicts)."""

        def inspect_container(self, container: str) -> Dict[str, Any]: ...

        def inspect_image(self, image: str) -> Dict[str, Any]: ...

        def pull(self, repository: str, tag: Optional[str] = None) -> Any: ...

        def stop(self, container: str, timeout: Optional[int] = None) -> None: ...

        def rename(self, container: str, name: str) -> None: ...

        def create_container(self, **kwargs: Any) -> Dict[str, Any]: ...

        def connect_container_to_network(self, container: str, net_id: str, **kwargs: Any) -> None: ...

        def start(self, container: str) -> None: ...

        def remove_container(self, container: str, v: bool = False, force: bool = False) -> None: ...

    class DockerClient(Protocol):
        """A ``docker.DockerClient``: its low-level ``api``, and ``close``."""

        api: DockerAPI

        def close(self) -> None: ...

# a liveness check of the container's agent: no argument, a ``_protocol.classify_liveness`` state
Liveness = Callable[[], Optional[str]]


PURPOSES = ("update", "revert", "wakeup")
PULL = ("missing", "always", "never")

RUNNING_STATES = ("running", "restarting", "paused")

# HostConfig settings carried over to the new container (what the container was given; the
# runtime's read-only and derived fields are left out)
HOST_CONFIG_KEYS = (
    "Binds", "Mounts", "PortBindings", "PublishAllPorts", "RestartPolicy", "NetworkMode", "ExtraHosts", "Links",
    "Dns", "DnsOptions", "DnsSearch", "CapAdd", "CapDrop", "Privileged", "LogConfig", "Memory", "MemoryReservation",
    "MemorySwap", "NanoCpus", "CpuShares", "CpuQuota", "CpuPeriod", "CpusetCpus", "ShmSize", "Tmpfs", "VolumesFrom",
    "Devices", "SecurityOpt", "Init", "ReadonlyRootfs", "Ulimits", "Sysctls", "GroupAdd", "IpcMode", "PidMode",
    "UsernsMode", "OomScoreAdj", "PidsLimit", "Runtime", "VolumeDriver", "StorageOpt",
)
# network modes without endpoints of their own
SPECIAL_NETWORK_MODES = ("host", "none")


class DockerDriverError(Exception):
    """The container cannot be recreated; the message names the container and why."""


class AgentStillWorking(DockerDriverError):
    """The container's agent has not stopped: nothing may recreate it."""


# ---------------------------------------------------------------- pure helpers

def image_ref(template: Optional[str], version: object, current_ref: Optional[str]) -> str:
    """The image to start: ``template`` with ``{version}`` replaced, else the current image's
    repository tagged ``version`` (``ghcr.io/cirisai/ciris-agent:1.0`` -> ``...:2.0``)."""
    if template:
        return template.replace("{version}", str(version)) if version is not None else template
    if version is None or not current_ref:
        raise DockerDriverError("no image to start: give image (e.g. 'ghcr.io/cirisai/ciris-agent:{version}') or version")
    repo = split_ref(current_ref)[0]
    return "%s:%s" % (repo, version)


def _env_dict(env_list: Optional[Iterable[str]]) -> Dict[str, Optional[str]]:
    out: Dict[str, Optional[str]] = {}
    for item in env_list or []:
        key, sep, value = item.partition("=")
        out[key] = value if sep else None
    return out


def own_env(container_config: Mapping[str, Any], image_config: Mapping[str, Any],
            old_hostname: Optional[str] = None) -> List[str]:
    """The env the container was given: its env minus what it inherited from the old image
    (an entry equal to the image's), minus the runtime's ``HOSTNAME`` of the old container."""
    image_env = _env_dict(image_config.get("Env"))
    out: List[str] = []
    for item in container_config.get("Env") or []:
        key, sep, value = item.partition("=")
        if key in image_env and image_env[key] == (value if sep else None):
            continue
        if key == "HOSTNAME" and old_hostname and value == old_hostname:
            continue
        out.append(item)
    return out


def own_labels(container_config: Mapping[str, Any], image_config: Mapping[str, Any]) -> Dict[str, str]:
    """The labels the container was given (minus the old image's labels and the driver's history labels)."""
    image_labels: Dict[str, str] = image_config.get("Labels") or {}
    return dict((k, v) for k, v in (container_config.get("Labels") or {}).items()
                if image_labels.get(k) != v and k not in HISTORY_LABELS)


def _differs(container_value: object, image_value: object) -> bool:
    return bool(container_value) and container_value != image_value


def create_spec(container: Mapping[str, Any], old_image: Mapping[str, Any], new_image_ref: str,
                extra_labels: Optional[Mapping[str, str]] = None) -> Tuple[Dict[str, Any], List[Tuple[str, Dict[str, Any]]]]:
    """Keyword arguments of ``APIClient.create_container`` for the new container, plus the
    networks to connect after creating it: ``(kwargs, more_networks)``.

    ``container`` and ``old_image`` are inspect results (``docker inspect``). Settings the
    container got from its old image are left to the new image.
    """
    config: Dict[str, Any] = container.get("Config") or {}
    image_config: Dict[str, Any] = old_image.get("Config") or {}
    host_config: Dict[str, Any] = container.get("HostConfig") or {}
    old_hostname: Optional[str] = config.get("Hostname")
    default_hostname: str = (container.get("Id") or "")[:12]
    kwargs: Dict[str, Any] = {
        "image": new_image_ref,
        "name": container["Name"].lstrip("/"),
        "environment": own_env(config, image_config, old_hostname),
        "labels": dict(own_labels(config, image_config), **(extra_labels or {})),
        "host_config": dict((k, host_config[k]) for k in HOST_CONFIG_KEYS if host_config.get(k) not in (None, "", [], {}, 0)),
        "detach": True,
    }
    if kwargs["host_config"].get("Ulimits"):
        # podman's inspect names them RLIMIT_NOFILE, its create (like docker's) wants nofile
        kwargs["host_config"]["Ulimits"] = [
            dict(u, Name=u["Name"][len("RLIMIT_"):].lower() if u.get("Name", "").upper().startswith("RLIMIT_") else u.get("Name"))
            for u in kwargs["host_config"]["Ulimits"]]
    for key, arg in (("Cmd", "command"), ("Entrypoint", "entrypoint"), ("WorkingDir", "working_dir"), ("User", "user"),
                     ("StopSignal", "stop_signal"), ("Healthcheck", "healthcheck")):
        if _differs(config.get(key), image_config.get(key)):
            kwargs[arg] = config[key]
    if old_hostname and not default_hostname.startswith(old_hostname) and old_hostname != default_hostname:
        kwargs["hostname"] = old_hostname
    if config.get("Domainname"):
        kwargs["domainname"] = config["Domainname"]
    if config.get("Tty"):
        kwargs["tty"] = True
    if config.get("OpenStdin"):
        kwargs["stdin_open"] = True
    ports: List[Union[Tuple[int, str], str]] = []
    for spec in (config.get("ExposedPorts") or {}):
        port, dummy, proto = spec.partition("/")
        ports.append((int(port), proto or "tcp") if port.isdigit() else spec)
    for spec in (host_config.get("PortBindings") or {}):
        port, dummy, proto = spec.partition("/")
        if port.isdigit() and (int(port), proto or "tcp") not in ports:
            ports.append((int(port), proto or "tcp"))
    if ports:
        kwargs["ports"] = ports
    # networks: the one of NetworkMode at create time, the others connected afterwards
    networks: Dict[str, Any] = (container.get("NetworkSettings") or {}).get("Networks") or {}
    mode: str = host_config.get("NetworkMode") or ""
    endpoints: Dict[str, Dict[str, Any]] = {}
    for net, ep in networks.items():
        ep = ep or {}
        aliases = [a for a in (ep.get("Aliases") or []) if a not in (default_hostname, (container.get("Id") or "")[:12])]
        cfg: Dict[str, Any] = {}
        if aliases:
            cfg["Aliases"] = aliases
        ipam = ep.get("IPAMConfig") or {}
        ipam = dict((k, v) for k, v in ipam.items() if v)
        if ipam:
            cfg["IPAMConfig"] = ipam
        if ep.get("Links"):
            cfg["Links"] = ep["Links"]
        endpoints[net] = cfg
    more: List[Tuple[str, Dict[str, Any]]] = []
    if mode in SPECIAL_NETWORK_MODES or mode.startswith("container:"):
        return kwargs, more
    first = mode if mode in endpoints else None
    if first and endpoints[first]:
        kwargs["networking_config"] = {"EndpointsConfig": {first: endpoints[first]}}
    for net, cfg in endpoints.items():
        if net == first:
            continue
        if first is None and mode in ("bridge", "default", "") and len(endpoints) == 1:
            # the runtime's default network (docker "bridge", podman "podman"): NetworkMode gives it
            continue
        more.append((net, cfg))
    return kwargs, more


# ---------------------------------------------------------------- the client

def docker_client(params: Mapping[str, Any]) -> DockerClient:
    """A ``docker.DockerClient`` for ``docker_host`` (else ``DOCKER_HOST``, else the local socket),
    with the TLS options community.docker uses (``tls``, ``tls_verify``, ``ca_path``, ``client_cert``,
    ``client_key``; ``DOCKER_TLS_VERIFY`` / ``DOCKER_CERT_PATH`` as fallbacks)."""
    if not HAS_DOCKER:
        raise DockerDriverError("the docker update driver needs the Docker SDK for Python ('pip install docker') "
                                "where the task runs: %s" % DOCKER_IMPORT_ERROR)
    base_url = params.get("docker_host") or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    tls_verify = params.get("tls_verify")
    if tls_verify is None:
        tls_verify = os.environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0", "false")
    cert_path = os.environ.get("DOCKER_CERT_PATH")
    ca_path = params.get("ca_path") or (os.path.join(cert_path, "ca.pem") if cert_path and tls_verify else None)
    client_cert = params.get("client_cert") or (os.path.join(cert_path, "cert.pem") if cert_path else None)
    client_key = params.get("client_key") or (os.path.join(cert_path, "key.pem") if cert_path else None)
    tls: Any = False
    if params.get("tls") or tls_verify:
        if bool(client_cert) != bool(client_key):
            raise DockerDriverError("client_cert and client_key go together (one is missing)")
        tls = docker.tls.TLSConfig(
            client_cert=(client_cert, client_key) if client_cert and os.path.exists(client_cert) else None,
            ca_cert=ca_path if tls_verify else None, verify=bool(tls_verify))
        if base_url.startswith("tcp://"):
            base_url = "https://" + base_url[len("tcp://"):]
    try:
        client: DockerClient = docker.DockerClient(base_url=base_url, version=params.get("api_version") or "auto",
                                                   timeout=params.get("timeout") or 60, tls=tls)
        return client
    except docker_errors.DockerException as exc:
        raise DockerDriverError("cannot reach the Docker API at %s: %s" % (base_url, exc)) from None


# ---------------------------------------------------------------- the driver

def _inspect_image(api: DockerAPI, ref: str) -> Optional[Dict[str, Any]]:
    try:
        return api.inspect_image(ref)
    except docker_errors.ImageNotFound:
        return None
    except docker_errors.NotFound:
        return None


def _ensure_image(api: DockerAPI, ref: str, pull: str) -> Dict[str, Any]:
    """Inspect ``ref``, pulling it first (``pull=always``) or when it is missing (``pull=missing``)."""
    image = None if pull == "always" else _inspect_image(api, ref)
    if image is None and pull != "never":
        repo, tag = split_ref(ref)
        try:
            api.pull(repo, tag=tag)
        except docker_errors.APIError as exc:
            raise DockerDriverError("cannot pull image %s: %s" % (ref, exc.explanation or exc)) from None
        image = _inspect_image(api, ref)
    if image is None:
        raise DockerDriverError("image %s is not present%s" % (ref, " (pull=never)" if pull == "never" else ""))
    return image


def _wait_stopped(api: DockerAPI, container_id: str, deadline: Deadline, sleep: Callable[[float], None] = time.sleep) -> str:
    """Inspect the container every 0.2 s until it is not running or ``deadline`` has passed; its last status."""
    def status() -> str:
        state: str = api.inspect_container(container_id)["State"]["Status"]
        return state

    return poll(status, lambda state, now: state not in RUNNING_STATES, deadline, 0.2, sleep, cap=False)[1]


def _start_as_it_is(api: DockerAPI, name: str, container_id: str, labels: Dict[str, str], status: str,
                    info: ImageInfo, version: object, check_mode: bool) -> Dict[str, Any]:
    """A revert of a container this deployment never replaced (its update failed before the new container ran):
    it still holds the version to go back to, so it is started again as it is (never the image before it).
    ``labels``: its labels; ``info``: its image (:func:`._docker_images.image_info`)."""
    start = status not in RUNNING_STATES
    if start and not check_mode:
        api.start(container_id)
    return {"changed": start, "container": name, "container_id": container_id, "previous_container_id": container_id,
            "purpose": "revert", "status_before": status, "image_before": info, "image_after": info,
            "previous_images": previous_images(labels), "stopped_by_driver": False, "version": version}


def recreate(api: DockerAPI, name: str, image: Optional[str] = None, version: object = None, purpose: str = "update",
             pull: str = "missing", version_before: object = None, deployment_id: Optional[str] = None,
             liveness: Optional[Liveness] = None, stop_timeout: float = 30, check_mode: bool = False,
             clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Dict[str, Any]:
    """Recreate container ``name`` from the new image and start it; the driver's result.

    ``api`` is a ``docker.APIClient`` (``DockerClient.api``). ``liveness`` (no argument,
    returns a :func:`_protocol.classify_liveness` state) is asked when the container still
    runs: an agent whose API has closed is stopped (``stop_timeout`` seconds, then killed);
    one that answers (working, draining) or gives no answer is refused. For ``purpose=revert``
    the container runs the version that failed its gate: it is stopped, and the image
    recorded as its previous one (label ``agentfleet.rollout.previous_image``) is started; a
    container that ``deployment_id`` never replaced (its update failed before the new container
    ran) still holds the version to go back to and is started again as it is.
    A container this driver started on ``version`` for ``deployment_id`` (a rerun retrying an
    agent whose gate failed) is stopped and recreated too.

    Returns ``{changed, container, container_id, previous_container_id, purpose, image_before,
    image_after, previous_images, stopped_by_driver}``; ``image_*`` are ``{ref, id, digest}``.
    """
    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import STOPPED

    if purpose not in PURPOSES:
        raise DockerDriverError("purpose must be one of %s, got %r" % (", ".join(PURPOSES), purpose))
    try:
        old = api.inspect_container(name)
    except docker_errors.NotFound:
        raise DockerDriverError("container %s: no such container" % name) from None
    status: str = old["State"]["Status"]
    old_config: Dict[str, Any] = old.get("Config") or {}
    old_labels: Dict[str, str] = old_config.get("Labels") or {}
    old_image_attrs = _inspect_image(api, old["Image"]) or {"Id": old["Image"], "Config": {}}
    before = image_info(old_image_attrs, old_config.get("Image"))
    if purpose == "revert" and deployment_id and old_labels.get(LABEL_DEPLOYMENT) != deployment_id:
        return _start_as_it_is(api, name, old["Id"], old_labels, status, before, version, check_mode)
    stop_needed = False
    if status in RUNNING_STATES:
        if purpose == "revert" or (deployment_id and old_labels.get(LABEL_DEPLOYMENT) == deployment_id
                                   and old_labels.get(LABEL_VERSION) == str(version)):
            # started by this driver for this deployment (the agent's consent was observed then): the
            # version that failed its gate, put back (revert) or recreated again (a rerun retrying the agent)
            stop_needed = True
        else:
            state = liveness() if liveness is not None else None
            if state != STOPPED:
                raise AgentStillWorking(
                    "container %s is %s and its agent %s: it has not stopped, so it is not recreated (observed consent)"
                    % (name, status, {"working": "is working", "draining": "is still draining",
                                      "no_answer": "gives no answer (no evidence that it stopped)"}.get(
                        state or "", "was not checked (no agent_url)")))
            # the agent's API has closed but its process hangs: stop it like its runtime would
            stop_needed = True
    if purpose == "revert" and old_labels.get(LABEL_PREV):
        new_ref = old_labels[LABEL_PREV]
        new_ref_name = old_labels.get(LABEL_PREV_REF) or new_ref
        # by its reference while that still names the recorded image (else by the image id)
        named = _inspect_image(api, new_ref_name) if new_ref_name != new_ref else None
        if named is not None and named.get("Id") == new_ref:
            new_ref = new_ref_name
    else:
        new_ref = image_ref(image, version, old_config.get("Image"))
        new_ref_name = new_ref
    new_image_attrs = _ensure_image(api, new_ref, "never" if new_ref.startswith("sha256:") else pull)
    after = image_info(new_image_attrs, new_ref_name)
    labels = history_labels(old_labels, before, version_before, version, deployment_id)
    kwargs, more_networks = create_spec(old, old_image_attrs, new_ref, labels)
    result: Dict[str, Any] = {
        "changed": True, "container": name, "container_id": None, "previous_container_id": old["Id"],
        "purpose": purpose, "status_before": status, "image_before": before, "image_after": after,
        "previous_images": previous_images(labels), "stopped_by_driver": stop_needed, "version": version}
    if check_mode:
        return result
    if stop_needed:
        api.stop(old["Id"], timeout=int(stop_timeout))
        status = _wait_stopped(api, old["Id"], Deadline(float(stop_timeout) + 10, clock), sleep=sleep)
        if status in RUNNING_STATES:
            raise DockerDriverError("container %s did not stop within %ss" % (name, stop_timeout))
    aside = "%s-agentfleet-old-%s" % (name, old["Id"][:12])
    api.rename(old["Id"], aside)
    new_id = None
    try:
        new_id = api.create_container(**kwargs)["Id"]
        for net, cfg in more_networks:
            api.connect_container_to_network(new_id, net, aliases=cfg.get("Aliases"),
                                             ipv4_address=(cfg.get("IPAMConfig") or {}).get("IPv4Address"),
                                             ipv6_address=(cfg.get("IPAMConfig") or {}).get("IPv6Address"),
                                             links=cfg.get("Links"))
        api.start(new_id)
    except Exception as exc:
        # put the old container back under its name, and start it again: the agent stopped because it was asked
        # (or this driver stopped it), and an agent that stopped for us is never left down
        if new_id is not None:
            try:
                api.remove_container(new_id, force=True)
            except docker_errors.APIError:
                pass
        api.rename(old["Id"], name)
        detail = getattr(exc, "explanation", None) or str(exc)
        try:
            api.start(old["Id"])
            kept = "the old container is started again on %s" % (version_before or "its previous version")
        except docker_errors.APIError as again:
            kept = "the old container is kept, stopped: it would not start again either (%s)" % (
                getattr(again, "explanation", None) or again)
        raise DockerDriverError("container %s: cannot start it from %s: %s (%s)" % (name, new_ref_name, detail, kept)) \
            from None
    # the old container goes; its image stays (n-1, recorded in the labels)
    api.remove_container(old["Id"], v=False)
    result["container_id"] = new_id
    return result


def run_update(params: Mapping[str, Any], check_mode: bool = False,
               client_factory: Callable[[Mapping[str, Any]], DockerClient] = docker_client,
               liveness_factory: Optional[Callable[[Mapping[str, Any]], Liveness]] = None) -> Dict[str, Any]:
    """The ``docker_agent_update`` module's engine call."""
    client = client_factory(params)
    liveness = liveness_factory(params) if liveness_factory is not None and params.get("agent_url") else None
    try:
        return recreate(client.api, params["name"], image=params.get("image"), version=params.get("version"),
                        purpose=params.get("purpose") or "update", pull=params.get("pull") or "missing",
                        version_before=params.get("previous_version"), deployment_id=params.get("deployment_id"),
                        liveness=liveness, stop_timeout=params.get("stop_timeout") or 30, check_mode=check_mode)
    except docker_errors.APIError as exc:
        raise DockerDriverError("container %s: Docker API error: %s" % (params["name"], exc.explanation or exc)) from None
    finally:
        client.close()
