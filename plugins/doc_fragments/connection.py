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
      - Never printed, logged, reported or put in a diff.
    type: str
  connect_timeout:
    description: Seconds to wait for a connection to an agent.
    type: float
    default: 3.0
  read_timeout:
    description: Seconds to wait for an agent's answer once connected.
    type: float
    default: 10.0
  validate_certs:
    description: Verify agents' TLS certificates (and host names) for C(https://) agent URLs.
    type: bool
    default: true
  ca_path:
    description: A CA bundle file to verify agents' certificates with, instead of the system store.
    type: path
  max_workers:
    description:
      - Most concurrent requests for a wave (a bounded thread pool with keep-alive connections).
    type: int
    default: 32
"""
