# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Connection and wait options of the CIRISManager client modules (manager_notify, manager_status)."""

    DOCUMENTATION = r"""
options:
  manager_url:
    description:
      - Base URL of the CIRISManager, for example C(https://agents.example.org); it may carry a path prefix
        of a reverse proxy. The modules add C(/manager/v1/updates/notify) and C(/manager/v1/updates/status).
      - A plain C(http://) URL to a host other than loopback works but warns - the token would cross the
        network unencrypted.
    type: str
    required: true
  token:
    description:
      - "The deploy token, sent as C(Authorization: Bearer ...) (CIRISManager's C(CIRIS_DEPLOY_TOKEN))."
      - When not set, the environment variable E(CIRIS_DEPLOY_TOKEN) of the host that runs the module is
        used (the controller, for C(localhost)). Surrounding whitespace is removed.
      - Never printed, logged or returned; text from the manager that repeats it (an echoed header) is masked.
    type: str
  validate_certs:
    description: Verify the manager's TLS certificate and host name for C(https://) URLs.
    type: bool
    default: true
  ca_path:
    description: A PEM CA bundle file to verify the manager's certificate with, instead of the system store.
    type: path
  connect_timeout:
    description: Seconds to wait for a connection to the manager (each try).
    type: float
    default: 5.0
  read_timeout:
    description:
      - Seconds to wait for the manager's answer once connected.
      - A notify that times out here may have been received; it is B(not) sent again, and the task fails
        telling you to check the status first.
    type: float
    default: 30.0
  wait:
    description:
      - Poll the deployment's status until it is V(completed), V(failed), V(cancelled), V(rejected) or
        V(rolled_back), or O(wait_timeout) has passed (then the task fails with the last status seen).
      - A deployment that ends V(failed), V(cancelled), V(rejected) or V(rolled_back) (every final status but
        V(completed); the deployment did not happen, or was undone) fails the task. The failed result carries
        the final status and the same keys as a successful one.
      - Polls that fail (the manager restarting, a proxy error) are tried again at the next interval until
        the deadline; a refused token fails at once.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait at most with O(wait=true). A CIRISManager canary waits up to 15 minutes per phase
        for an agent to reach C(work).
    type: float
    default: 3600.0
  poll_interval:
    description: Seconds between status requests with O(wait=true).
    type: float
    default: 10.0
requirements:
  - requests (Python library) on the host that runs the module
notes:
  - A connection that is refused or times out while connecting is tried again, up to 3 more times, with
    back-off; nothing else is retried (no read, status or other retries), so a notification that may have
    reached the manager is never sent twice.
  - Proxies are taken from the environment as C(requests) does (E(HTTPS_PROXY), E(NO_PROXY)). Redirects are
    not followed (they would carry the token elsewhere).
  - "Set these options once for both modules with
    C(module_defaults: {group/agentfleet.rollout.manager: {manager_url: ..., ca_path: ...}})."
"""
