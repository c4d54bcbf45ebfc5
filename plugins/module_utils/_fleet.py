# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet as it is (``agentfleet.rollout.status -e rollout_live=true``, the ``fleet_status`` module): every
agent probed at once (one health GET each, in parallel), and the version spread -- version -> count, and the
states -- like CIRISManager's version adoption view. Read only: nothing is asked or recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ansible_collections.agentfleet.rollout.plugins.module_utils._common import client_from_params
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import connection_spec
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import validate_agent_urls
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import version_matches

if TYPE_CHECKING:
    from typing import Any
    from typing import Iterable
    from typing import Mapping
    from typing import Optional
    from typing import Sequence

    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient

FLEET_STATUS_SPEC = connection_spec(
    agents=dict(type="list", elements="dict", options=dict(
        name=dict(type="str", required=True),
        agent_url=dict(type="str", required=True),
        agent_id=dict(type="str"),
        occurrence_id=dict(type="str"),
        canary_group=dict(type="str"),
    )),
    group=dict(type="str"),
    hosts=dict(type="list", elements="str"),
    target_version=dict(type="str"),
    expected_states=dict(type="list", elements="str", default=["work"]),
)
FLEET_STATUS_ONE_OF = [["agents", "group", "hosts"]]

UNREACHABLE = "unreachable"
UNKNOWN = "unknown"
# agents listed by name under the spread, at most
SHOWN = 20


def fleet_view(client: AgentClient, agents: Sequence[Mapping[str, Any]], target_version: Optional[str] = None,
               expected_states: Iterable[str] = ("work",)) -> dict[str, Any]:
    """Probe every agent once; returns ``total``, ``versions`` (version -> count), ``states`` (cognitive state ->
    count), ``healthy``, ``unreachable_agents`` (names; a key ``unreachable`` would mark the task's host
    unreachable), ``on_target`` / ``off_target`` (names, with ``target_version``),
    ``agents`` (name -> version, cognitive_state, status, healthy, cause) and ``lines`` (what to show)."""
    probes = client.fan_out(lambda a: (a["name"], client.probe(a["agent_url"], list(expected_states), None)), agents)
    per_agent: dict[str, dict[str, Any]] = {}
    versions: dict[str, int] = {}
    states: dict[str, int] = {}
    unreachable: list[str] = []
    healthy: list[str] = []
    for name, probe in probes:
        info = probe.get("info") or {}
        reachable = bool(probe.get("reachable")) and bool(info)
        version = str(info["version"]) if reachable and info.get("version") not in (None, "") else (
            UNKNOWN if reachable else UNREACHABLE)
        state = str(info.get("cognitive_state") or UNKNOWN) if reachable else UNREACHABLE
        per_agent[name] = {"version": version, "cognitive_state": state, "status": info.get("status"),
                           "healthy": bool(probe.get("healthy")), "cause": probe.get("cause")}
        versions[version] = versions.get(version, 0) + 1
        states[state] = states.get(state, 0) + 1
        if not reachable:
            unreachable.append(name)
        if probe.get("healthy"):
            healthy.append(name)
    out: dict[str, Any] = {"total": len(agents), "versions": versions, "states": states, "healthy": len(healthy),
                           "unreachable_agents": sorted(unreachable), "agents": per_agent, "on_target": [], "off_target": [],
                           "target_version": target_version}
    if target_version:
        out["on_target"] = sorted(n for n, a in per_agent.items() if version_matches(a["version"], target_version))
        out["off_target"] = sorted(n for n in per_agent if n not in set(out["on_target"]))
    out["lines"] = view_lines(out)
    return out


def _names(names: Sequence[str]) -> str:
    return ", ".join(names[:SHOWN]) + (" and %d more" % (len(names) - SHOWN) if len(names) > SHOWN else "")


def view_lines(view: Mapping[str, Any]) -> list[str]:
    """The spread as lines: one per version (most agents first), then the states, then who is unreachable."""
    total = view["total"]
    lines = ["fleet now: %d agents, %d healthy, %d unreachable" % (total, view["healthy"], len(view["unreachable_agents"]))]
    for version, count in sorted(view["versions"].items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append("  version %-16s %6d  %5.1f %%" % (version, count, 100.0 * count / total if total else 0.0))
    if view["states"]:
        states = sorted(view["states"].items(), key=lambda kv: (-kv[1], kv[0]))
        lines.append("  states: " + ", ".join("%s %d" % (s, n) for s, n in states))
    if view.get("target_version"):
        lines.append("  on %s: %d of %d%s" % (view["target_version"], len(view["on_target"]), total,
                                              ("; not yet: " + _names(view["off_target"])) if view["off_target"] else ""))
    if view["unreachable_agents"]:
        lines.append("  unreachable: " + _names(view["unreachable_agents"]))
    return lines


def run_fleet_status(params: Mapping[str, Any], check_mode: bool = False) -> dict[str, Any]:
    """The ``fleet_status`` module: probe every agent (read only, so check mode probes too)."""
    del check_mode
    if params.get("group") or params.get("hosts") is not None:
        raise ValueError("group and hosts are resolved by the controller-side action plugin; pass agents when "
                         "running the module directly")
    agents = params.get("agents") or []
    validate_agent_urls(agents)
    if not agents:
        view: dict[str, Any] = {"total": 0, "versions": {}, "states": {}, "healthy": 0, "unreachable_agents": [], "agents": {},
                                "on_target": [], "off_target": [], "target_version": params.get("target_version")}
        view["lines"] = view_lines(view)
    else:
        with client_from_params(params) as client:
            view = fleet_view(client, agents, params.get("target_version"), params.get("expected_states") or ["work"])
    view["changed"] = False
    return view
