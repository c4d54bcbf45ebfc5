#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: docker_agent_update
short_description: Recreate a stopped agent's container from a new image (the docker update driver)
version_added: 0.2.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - The update driver for agents that run in a container (C(rollout_driver=docker)). The rollout playbooks run it
    as a task of each agent's host once the agent has stopped (observed consent), delegated to C(localhost) by
    default, because the Docker API is reached over the network.
  - Recreates container O(name) from the new image with the same name and what the container was given, not what
    its old image gave it; env, binds and mounts, port bindings, labels, restart policy, networks (with aliases and
    fixed addresses), command and entrypoint when they were overridden, resources and security options. Then it
    starts the container. The health gate takes over from there.
  - Refuses a container that still runs, unless its agent's API has closed (O(agent_url) answers with a refused
    connection or a gateway error). An agent that still answers, even while draining, has not stopped, so nothing
    may recreate it. A container whose agent's API has closed but whose process hangs is stopped first
    (O(stop_timeout), then killed). So is a container this driver started on O(version) for O(deployment_id), whose
    agent consented then (a rerun of the deployment retrying an agent whose gate failed).
  - With O(purpose=revert), the container runs the version that failed its gate. It is stopped and recreated from
    the image recorded as its previous one (label C(agentfleet.rollout.previous_image)).
  - Never removes an image. The new container's labels record the previous two images (n-1 and n-2), with their
    references and versions. A revert uses them, and so can a later rollback.
  - Works with the Docker Engine API and with podman's Docker-compatible API (C(podman system service)).
requirements:
  - Docker SDK for Python (C(docker)) >= 6.0 where the task runs
options:
  name:
    description: Name of the agent's container.
    type: str
    required: true
  image:
    description:
      - The image to start; C({version}) in it is replaced by O(version)
        (for example C(ghcr.io/cirisai/ciris-agent:{version})).
      - When not set, the container's current image repository tagged O(version).
      - Ignored for O(purpose=revert) when the container records its previous image.
    type: str
  version:
    description: The version to start (the rollout's C(rollout_update_version)).
    type: str
  previous_version:
    description: The version the agent ran before, recorded in the label C(agentfleet.rollout.previous_version).
    type: str
  deployment_id:
    description: Recorded in the label C(agentfleet.rollout.deployment_id).
    type: str
  purpose:
    description:
      - V(update) and V(wakeup) start O(image); V(revert) puts back the previous image (see above).
    type: str
    default: update
    choices: [update, revert, wakeup]
  pull:
    description:
      - V(missing) pulls the image when the engine does not have it, V(always) pulls it every time, V(never) only
        uses an image that is present.
    type: str
    default: missing
    choices: [missing, always, never]
  agent_url:
    description:
      - The agent's base URL. When the container still runs, its health tells whether the agent has stopped.
        Without it a running container is always refused.
    type: str
  agent_validate_certs:
    description: Verify the agent's TLS certificate for that health check.
    type: bool
    default: true
  agent_ca_path:
    description:
      - A CA bundle (PEM) to verify the agent's certificate with for that health check (a private CA); the rollout
        role sets it from C(rollout_ca_path).
    type: path
  stop_timeout:
    description: Seconds a container that has to be stopped gets before it is killed.
    type: int
    default: 30
  docker_host:
    description:
      - The Docker API, for example C(unix:///var/run/docker.sock) or C(tcp://agents-1.example.org:2376).
      - Default, C(DOCKER_HOST), else C(unix:///var/run/docker.sock).
    type: str
    aliases: [docker_url]
  api_version:
    description: The Docker API version to use; V(auto) asks the engine.
    type: str
    default: auto
  timeout:
    description: Seconds to wait for an answer of the Docker API.
    type: int
    default: 60
  tls:
    description: Connect with TLS without verifying the engine's certificate (prefer O(tls_verify)).
    type: bool
    default: false
  tls_verify:
    description:
      - Connect with TLS and verify the engine's certificate.
      - Default, C(DOCKER_TLS_VERIFY).
    type: bool
  ca_path:
    description: CA certificate to verify the engine with (default, C(DOCKER_CERT_PATH)/ca.pem).
    type: path
    aliases: [ca_cert, tls_ca_cert]
  client_cert:
    description: Client certificate for the engine (default, C(DOCKER_CERT_PATH)/cert.pem).
    type: path
    aliases: [tls_client_cert, cert_path]
  client_key:
    description: The client certificate's key (default, C(DOCKER_CERT_PATH)/key.pem).
    type: path
    aliases: [tls_client_key, key_path]
extends_documentation_fragment:
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.NOT_IDEMPOTENT
attributes:
  check_mode:
    details:
      - Inspects the container and the images and returns what would be started; nothing is stopped, created or
        pulled (an image that would have to be pulled fails the check).
  idempotent:
    details:
      - Every run recreates the container. The rollout runs it only for agents that stopped for this deployment.
seealso:
  - module: agentfleet.rollout.rollout_wave
  - name: The update drivers (docs/drivers.md)
    description: How the docker driver fits into a rollout.
    link: https://github.com/agentfleet/agentfleet.rollout/blob/main/docs/drivers.md
"""

EXAMPLES = r"""
# What the rollout role runs for rollout_driver=docker, as a task of each agent's host
- name: Recreate the agent's container on the new version
  agentfleet.rollout.docker_agent_update:
    name: "{{ agent_container | default(inventory_hostname) }}"
    image: "ghcr.io/cirisai/ciris-agent:{version}"
    version: "{{ rollout_update_version }}"
    previous_version: "{{ rollout_previous_version }}"
    agent_url: "{{ agent_url }}"
    docker_host: tcp://agents-1.example.org:2376
    tls_verify: true
    ca_path: /etc/agentfleet/docker/ca.pem
    client_cert: /etc/agentfleet/docker/cert.pem
    client_key: /etc/agentfleet/docker/key.pem
  delegate_to: localhost
"""

RETURN = r"""
container:
  description: The container's name.
  returned: always
  type: str
  sample: ciris-agent-datum
container_id:
  description: The new container's id (null in check mode).
  returned: always
  type: str
previous_container_id:
  description: The id of the container it replaced (removed; its image is kept).
  returned: always
  type: str
purpose:
  description: O(purpose).
  returned: always
  type: str
image_before:
  description: The image the container ran, C(ref) (as the container was given it), C(id) and C(digest) (the
    registry digest from C(RepoDigests), null for an image without one).
  returned: always
  type: dict
  sample: {"ref": "ghcr.io/cirisai/ciris-agent:2.16.5", "id": "sha256:49e4...", "digest": "sha256:6d8d..."}
image_after:
  description: The image the new container runs, same keys as RV(image_before).
  returned: always
  type: dict
previous_images:
  description: The images the new container's labels record, n-1 then n-2, each C(id), C(ref), C(version).
  returned: always
  type: list
  elements: dict
stopped_by_driver:
  description: Whether the driver stopped the container (a revert, or an agent whose API had closed while its
    process still ran).
  returned: always
  type: bool
status_before:
  description: The container's state before (C(exited), C(created), ...).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils import _docker
from ansible_collections.agentfleet.rollout.plugins.module_utils._module import run_module

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    image=dict(type="str"),
    version=dict(type="str"),
    previous_version=dict(type="str"),
    deployment_id=dict(type="str"),
    purpose=dict(type="str", default="update", choices=list(_docker.PURPOSES)),
    pull=dict(type="str", default="missing", choices=list(_docker.PULL)),
    agent_url=dict(type="str"),
    agent_validate_certs=dict(type="bool", default=True),
    agent_ca_path=dict(type="path"),
    stop_timeout=dict(type="int", default=30),
    docker_host=dict(type="str", aliases=["docker_url"]),
    api_version=dict(type="str", default="auto"),
    timeout=dict(type="int", default=60),
    tls=dict(type="bool", default=False),
    tls_verify=dict(type="bool"),
    ca_path=dict(type="path", aliases=["ca_cert", "tls_ca_cert"]),
    client_cert=dict(type="path", aliases=["tls_client_cert", "cert_path"]),
    client_key=dict(type="path", aliases=["tls_client_key", "key_path"]),
)


def _liveness(params):
    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient

    def check():
        client = AgentClient(validate_certs=params["agent_validate_certs"], ca_path=params.get("agent_ca_path"),
                             connect_timeout=3.0, read_timeout=10.0)
        try:
            return client.liveness(params["agent_url"])[0]
        finally:
            client.close()
    return check


def run(params, check_mode=False):
    return _docker.run_update(params, check_mode=check_mode, liveness_factory=_liveness)


def main():
    run_module(AnsibleModule, ARGUMENT_SPEC, run, (_docker.DockerDriverError, ValueError),
               required_one_of=[["image", "version"]])


if __name__ == "__main__":
    main()
