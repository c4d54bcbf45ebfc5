# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Connection options shared by every plugin that talks to agents (PROTOCOL.md)."""

    DOCUMENTATION = r"""
options:
  token:
    description:
      - "Bearer token sent to the agents (C(Authorization: Bearer ...))."
      - When not set, the environment variable E(AGENTFLEET_TOKEN) is used.
      - Run as an action on the controller, each agent whose inventory host has a C(rollout_token) of its own
        (host or group variable, Ansible Vault, a lookup) is sent that token instead; the others get this one.
      - Never printed, logged, reported or put in a diff.
    type: str
  connect_timeout:
    description: Seconds to wait for a connection to an agent.
    type: float
    default: 3.0
  read_timeout:
    description:
      - Seconds to wait for an agent's answer once connected (each wait for more bytes).
      - However slowly an agent or a proxy trickles its answer, one request is cut off as a timeout after
        O(connect_timeout) plus O(read_timeout) seconds in all.
    type: float
    default: 10.0
  validate_certs:
    description: Verify agents' TLS certificates (and host names) for C(https://) agent URLs.
    type: bool
    default: true
  ca_path:
    description:
      - A CA bundle file (PEM) to verify agents' certificates with, instead of the system store (a private CA).
      - The playbooks set it from C(rollout_ca_path).
    type: path
  client_cert:
    description:
      - A PEM client certificate (it may hold the private key too) for agents, or their proxy, that
        require mutual TLS.
    type: path
  client_key:
    description:
      - The PEM private key of O(client_cert), when not in the same file. Not encrypted.
      - The playbooks set O(client_cert) and O(client_key) from C(rollout_client_cert) and C(rollout_client_key).
    type: path
  allow_insecure_http:
    description:
      - Send the token over plain C(http://) to agents on other machines too.
      - Without it a task whose agents include an C(http://) URL of another host (not C(localhost), 127.0.0.0/8 or
        C(::1)) while a token is set fails with one error listing those agents, before anything is sent.
      - The playbooks set it from C(rollout_allow_insecure_http).
    type: bool
    default: false
  max_workers:
    description:
      - Most concurrent requests for a wave (a bounded thread pool with keep-alive connections).
    type: int
    default: 32
notes:
  - An agent that echoes the C(Authorization) header back does no harm. Every token sent is masked (C(********)) in
    each answer as it arrives, before any decision, cause, note or report is made of it.
  - Proxies are taken from the environment as C(requests) and C(curl) do, E(HTTPS_PROXY) and E(HTTP_PROXY)
    (or E(ALL_PROXY)), except for hosts listed in E(NO_PROXY).
  - A request that fails before it reached the agent (connection refused, connect timeout, reset while
    connecting) is tried again, up to 4 more times within 10 seconds, with jittered exponential back-off.
    A shutdown request that may have reached the agent is never sent again blindly (see PROTOCOL.md).
"""
