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


def fleetsim_candidates(client, control_url, action, names, version=None):
    """Blue-green through the simulator: ``start`` (on ``version``), ``promote`` or ``discard`` the candidates
    of ``names``. Returns ``(done, failed)``: ``{name: candidate agent_url or None}`` and ``{name: error}``."""
    if not names:
        return {}, {}
    body = {"occurrences": list(names)}
    if version is not None:
        body["version"] = str(version)
    try:
        resp = client.request("POST", join_url(control_url, "/_sim/candidates/" + action), body=body)
    except TransportError as exc:
        return {}, dict((n, str(exc)) for n in names)
    if resp.status in (200, 202) and isinstance(resp.json, dict):
        done = dict((n, (c or {}).get("agent_url")) for n, c in (resp.json.get("candidates") or {}).items())
        return done, dict((n, "no answer for it") for n in names if n not in done)
    detail = (resp.json or {}).get("detail") if isinstance(resp.json, dict) else None
    return {}, dict((n, "HTTP %d%s" % (resp.status, (": %s" % detail) if detail else "")) for n in names)
