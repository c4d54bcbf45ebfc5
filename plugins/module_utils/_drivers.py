# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Update drivers that act from the controller (PROTOCOL.md: the agent only stops;
what starts the new version is the update driver's job)."""

from __future__ import annotations

from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import TransportError
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import join_url


def fleetsim_start(client, control_url, agents, version=None):
    """Start agents on a version through the simulator's control port: ``(started, failed)``.

    One request per distinct version (a revert may put agents back on different versions);
    an explicit ``version`` wins, else each agent's own ``version``.
    """
    missing = [a["name"] for a in agents if not (version or a.get("version"))]
    if missing:
        raise ValueError("no version to start for: %s" % ", ".join(missing[:10]))
    by_version = {}
    for a in agents:
        by_version.setdefault(version or a["version"], []).append(a["name"])
    started, failed = [], {}
    for ver, names in by_version.items():
        try:
            resp = client.request("POST", join_url(control_url, "/_sim/start"), body={"occurrences": names, "version": ver})
        except TransportError as exc:
            failed.update((n, str(exc)) for n in names)
            continue
        if resp.status in (200, 202):
            started.extend(names)
        else:
            detail = (resp.json or {}).get("detail") if isinstance(resp.json, dict) else None
            failed.update((n, "HTTP %d%s" % (resp.status, (": %s" % detail) if detail else "")) for n in names)
    return started, failed
