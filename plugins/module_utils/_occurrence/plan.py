# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning a shutdown or wakeup: discovery, groups, capacity batches (engine of ``occurrence_plan``).

Read top-down: :func:`occurrence_plan` probes every occurrence
(:func:`~.liveness.probe_liveness`), keeps the agent's working occurrences
(:func:`apply_discovery`, :func:`select_agent`), assigns the groups
(:func:`assign_groups`), cuts the waves into batches that keep the capacity
floor (:func:`split_batches`) and writes the message for the explorer.
"""

from __future__ import annotations

import math
from typing import Any
from typing import Dict
from typing import Iterable
from typing import List
from typing import Mapping
from typing import Optional
from typing import Sequence
from typing import Set
from typing import Tuple
from typing import TYPE_CHECKING

from ansible_collections.agentfleet.rollout.plugins.module_utils._cohorts import split_waves
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import client_from_params
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import validate_agent_urls
from ansible_collections.agentfleet.rollout.plugins.module_utils._consent import probe_liveness
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import DEFAULT_STOP_TIMEOUT
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import DEFAULT_WAVE_TIMEOUT
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import EARLY_ADOPTER
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import EPS
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import EXPLORER
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import GENERAL
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import names
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import secs
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import SHUTDOWN
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import ShutdownError
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.message import plan_message
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import NO_ANSWER
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import WORKING
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import Sighting

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient


def occurrence_plan(params: Mapping[str, Any], client: Optional[AgentClient] = None, check_mode: bool = False) -> Dict[str, Any]:
    """Engine of ``occurrence_plan``: discovery, groups, capacity batches, message.

    Read-only: it probes health (a GET) and touches nothing. A shutdown plans
    only the occurrences that are WORKING; the others (draining, stopped, not
    answering) are reported in ``left_out``.
    """
    kind = params.get("purpose") or SHUTDOWN
    members = [dict(m) for m in (params.get("members") or [])]
    if not members:
        raise ShutdownError("no occurrences: the group or members list is empty")
    for m in members:
        if not m.get("name"):
            raise ShutdownError("every member needs a name: %r" % (m,))
        m["name"] = str(m["name"])
    validate_agent_urls(members)
    probes: Optional[Dict[str, Sighting]] = None
    if params.get("probe", True) or params.get("discovery") == "health":
        close = client is None
        prober: AgentClient = client or client_from_params(params)
        try:
            probes = dict(prober.fan_out(lambda m: (m["name"], probe_liveness(prober, m["agent_url"])), members))
        finally:
            if close:
                prober.close()
    occurrences = apply_discovery(members, probes, params.get("discovery") or "inventory")
    agent_id = select_agent(occurrences, params.get("agent_id"))
    mine = [o for o in occurrences if str(o.get("agent_id") or o["name"]) == agent_id]
    unknown = [o for o in occurrences if o["state"] != WORKING and params.get("discovery") == "health"
               and str(o.get("agent_id") or o["name"]) != agent_id and not o.get("inventory_agent_id")]
    if kind == SHUTDOWN:
        candidates = [o for o in mine if o["state"] == WORKING]
        left_out = [o for o in mine if o["state"] != WORKING]
    else:
        candidates = mine
        left_out = []
    dupes = _duplicates([str(o["occurrence_id"]) for o in candidates])
    if dupes:
        raise ShutdownError("occurrence ids are not unique for agent %s: %s" % (agent_id, ", ".join(dupes)))
    groups = assign_groups(candidates, params.get("method") or "sorted", params.get("salt") or "")
    floor = float(params.get("min_serving_fraction") or 0.0)
    if floor < 0 or floor >= 1:
        raise ShutdownError("min_serving_fraction must be in [0, 1), got %g" % floor)
    below_floor: Optional[str] = None
    if kind == SHUTDOWN:
        waves = split_batches(groups, len(candidates), floor)[0]
        below_floor = floor_violation(waves, floor)
        if below_floor and not params.get("allow_below_floor"):
            raise ShutdownError(below_floor)
    else:
        waves = [dict(w, batches=[{"index": 1, "members": [m["name"] for m in w["members"]]}]) for w in groups]
    delays = wave_delays(params.get("wave_delays"), len(waves))
    timeout = float(params.get("wave_timeout") or DEFAULT_WAVE_TIMEOUT)
    stop_timeout = float(params.get("stop_timeout") or DEFAULT_STOP_TIMEOUT)
    for wave, delay in zip(waves, delays):
        wave["delay"] = delay
        # a shutdown's explorer wave is the observation of the explorer's decision: it has the stop timeout
        wave["timeout"] = stop_timeout if kind == SHUTDOWN and wave["index"] == 1 else timeout
        for m in wave["members"]:
            m.pop("state", None)
            m.pop("cause", None)
    message: Optional[str] = None
    if kind == SHUTDOWN and waves:
        message = plan_message(agent_id, waves, params.get("reason") or "(no reason given)",
                               delays=list(params.get("wave_delays") or []), wave_timeout=timeout, min_fraction=floor,
                               stop_timeout=stop_timeout)
    fleet_key = "%s/%s" % (params.get("group") or "members", agent_id)
    low, low_final = lowest_fractions([w["batches"] for w in waves]) if kind == SHUTDOWN else (None, None)
    low_batch = lowest_fractions([w["batches"] for w in waves], "serving_fraction")[0] if kind == SHUTDOWN else None
    lines = []
    for w in waves:
        sizes = [len(b["members"]) for b in w["batches"]]
        lines.append("wave %d %s: %d occurrence%s (%s)%s%s" % (
            w["index"], w["name"], w["size"], "" if w["size"] == 1 else "s", names(w["members"]),
            (", after %ss" % secs(w["delay"])) if w["index"] > 1 else "",
            (", batches %s" % "+".join(str(s) for s in sizes)) if len(sizes) > 1 else ""))
    for o in left_out:
        lines.append("not in the plan: %s is %s%s" % (o["name"], o["state"], (" (%s)" % o["cause"]) if o.get("cause") else ""))
    if below_floor:
        lines.append("CAPACITY FLOOR NOT KEPT (allow_below_floor): " + below_floor.split(";")[0])
    return {
        "changed": False,
        "kind": kind,
        "agent_id": agent_id,
        "fleet_key": fleet_key,
        "total": len(mine),
        "serving": len([o for o in mine if o["state"] == WORKING]),
        "waves": waves,
        "explorer": waves[0]["members"][0]["name"] if waves else None,
        "left_out": [{k: o.get(k) for k in ("name", "occurrence_id", "agent_url", "state", "cause")} for o in left_out],
        "unknown": [{k: o.get(k) for k in ("name", "agent_url", "state", "cause")} for o in unknown],
        "message": message,
        "reason": params.get("reason"),
        "limit": params.get("limit"),
        "min_serving_fraction": floor,
        "lowest_serving_fraction": low,
        "lowest_batch_serving_fraction": low_batch,
        "lowest_serving_fraction_final_wave": low_final,
        "below_floor": below_floor,
        "plan": lines,
    }


def apply_discovery(members: Iterable[Mapping[str, Any]],
                    probes: Optional[Mapping[str, Tuple[Optional[str], Optional[str], Mapping[str, Any]]]],
                    discovery: str = "inventory") -> List[Dict[str, Any]]:
    """Members + probe results -> occurrence dicts with a ``state``.

    ``probes`` maps name -> ``(state, cause, info)`` of
    :func:`~._protocol.classify_liveness` (or is None: nothing probed, every
    member counts as WORKING). With ``discovery="health"`` the ``agent_id``
    and ``occurrence_id`` an occurrence reports win over the inventory's; an
    occurrence that does not answer keeps the inventory's.
    """
    out = []
    for m in members:
        occ = dict(m)
        occ.setdefault("occurrence_id", occ["name"])
        if probes is None:
            occ["state"], occ["cause"] = WORKING, None
        else:
            state, cause, info = probes.get(occ["name"], (NO_ANSWER, "not probed", {}))
            occ["state"], occ["cause"] = state, cause
            if info.get("cognitive_state") is not None:
                occ["cognitive_state"] = info.get("cognitive_state")
            if info.get("version") not in (None, ""):
                occ["version"] = str(info["version"])
            if discovery == "health":
                for key in ("agent_id", "occurrence_id"):
                    if info.get(key) not in (None, ""):
                        if occ.get(key) not in (None, "") and str(occ[key]) != str(info[key]) and key == "agent_id":
                            occ["inventory_agent_id"] = occ[key]
                        occ[key] = str(info[key])
        out.append(occ)
    return out


def select_agent(occurrences: Iterable[Mapping[str, Any]], agent_id: Optional[str] = None) -> str:
    """The agent a rollout is about. Several agents in the group need ``agent_id``."""
    agents = sorted(set(str(o.get("agent_id") or o["name"]) for o in occurrences))
    if agent_id:
        if agent_id not in agents:
            raise ShutdownError("agent %r has no occurrence in the group (agents: %s)" % (agent_id, ", ".join(agents[:20]) or "none"))
        return agent_id
    if not agents:
        raise ShutdownError("the group holds no occurrences")
    if len(agents) > 1:
        raise ShutdownError("the group holds occurrences of %d agents (%s%s): set rollout_agent_id to choose one"
                            % (len(agents), ", ".join(agents[:10]), " ..." if len(agents) > 10 else ""))
    return agents[0]


def assign_groups(occurrences: Iterable[Mapping[str, Any]], method: str = "sorted", salt: str = "") -> List[Dict[str, Any]]:
    """Explorer (exactly 1) / early_adopter (30 %, at least 1) / general (rest).

    The ``occurrences`` preset of ``wave_split`` with ``id_key="occurrence_id"``.
    ``occurrence_id == "default"`` is the explorer when present (also with the
    ``stable`` method); a ``stable`` draw that puts more than one occurrence in
    the explorer cohort moves the extra ones to the early adopters.
    Returns the waves of :func:`~._cohorts.split_waves`.
    """
    members = [dict(o) for o in occurrences]
    if not members:
        return []
    pinned_explorers = [m for m in members if m.get("canary_group") == EXPLORER]
    if len(pinned_explorers) > 1:
        raise ShutdownError("exactly one occurrence can be the explorer; pinned: %s"
                            % ", ".join(m["name"] for m in pinned_explorers))
    if not pinned_explorers:
        for m in members:
            if str(m.get("occurrence_id")) == "default" and not m.get("canary_group"):
                m["canary_group"] = EXPLORER
                m["_auto_pin"] = True
                break
    waves = split_waves(members, "occurrences", method=method, salt=salt, id_key="occurrence_id")
    groups: Dict[str, List[Dict[str, Any]]] = {w["name"]: [dict(m) for m in w["members"]] for w in waves}
    explorers = groups.get(EXPLORER, [])
    if len(explorers) > 1:
        keep = [m for m in explorers if m.get("canary_group") == EXPLORER] or explorers[:1]
        keep = keep[:1]
        extra = [m for m in explorers if m is not keep[0]]
        groups[EXPLORER] = keep
        groups[EARLY_ADOPTER] = sorted(groups.get(EARLY_ADOPTER, []) + extra,
                                       key=lambda m: (str(m.get("occurrence_id")) != "default", str(m.get("occurrence_id"))))
    out: List[Dict[str, Any]] = []
    for name in (EXPLORER, EARLY_ADOPTER, GENERAL):
        group = groups.get(name) or []
        if not group:
            continue
        index = len(out) + 1
        members_out = []
        for m in group:
            m = dict(m)
            if m.pop("_auto_pin", False):
                m.pop("canary_group", None)
            m["cohort"] = name
            m["wave"] = index
            members_out.append(m)
        out.append({"index": index, "name": name, "size": len(members_out), "members": members_out})
    return out


def batch_limit(serving: int, min_fraction: Optional[float]) -> int:
    """Most occurrences one batch may take out of ``serving`` while keeping
    ``min_fraction`` of them serving; always at least 1 (a rollout must move)."""
    if not min_fraction or min_fraction <= 0:
        return max(1, int(serving))
    return max(1, int(math.floor((1.0 - float(min_fraction)) * int(serving) + EPS)))


def split_batches(waves: Sequence[Mapping[str, Any]], serving: int,
                  min_fraction: Optional[float] = 0.0) -> Tuple[List[Dict[str, Any]], int]:
    """Cut each wave but the final one into batches that respect the capacity floor.

    ``serving`` is how many occurrences serve before the first wave. A batch
    takes at most :func:`batch_limit` of the occurrences still serving when it
    starts; its ``serving_fraction`` is the share of those that keep serving
    while it drains (what the floor bounds), its ``fleet_serving_fraction``
    the share of the occurrences serving at the start. The floor applies
    until the final wave: the final wave is one batch (``floor_kept`` None).
    Returns new wave dicts with ``batches`` (list of dicts: ``index``,
    ``members`` (names), ``serving_before``, ``serving_fraction``,
    ``fleet_serving_fraction``, ``floor_kept``) and the serving count after the waves.
    """
    out = []
    start = int(serving)
    serving = start
    for pos_wave, wave in enumerate(waves):
        final = pos_wave == len(waves) - 1
        member_names = [m["name"] for m in wave["members"]]
        batches: List[Dict[str, Any]] = []
        pos = 0
        while pos < len(member_names):
            limit = len(member_names) if final else batch_limit(serving, min_fraction)
            chunk = member_names[pos:pos + limit]
            frac = (serving - len(chunk)) / float(serving) if serving > 0 else 0.0
            batches.append({
                "index": len(batches) + 1,
                "members": chunk,
                "serving_before": serving,
                "serving_fraction": round(frac, 4),
                "fleet_serving_fraction": round((serving - len(chunk)) / float(start), 4) if start > 0 else 0.0,
                "floor_kept": None if final else frac + EPS >= float(min_fraction or 0.0),
            })
            serving = max(0, serving - len(chunk))
            pos += len(chunk)
        out.append(dict(wave, batches=batches))
    return out, serving


def lowest_fractions(batches_by_wave: Sequence[Sequence[Mapping[str, Any]]],
                     key: str = "fleet_serving_fraction") -> Tuple[Optional[float], Optional[float]]:
    """``(lowest before the final wave, lowest in the final wave)`` of batch serving fractions.

    ``batches_by_wave`` is a list (one item per wave, in order) of batch lists;
    ``key`` is ``fleet_serving_fraction`` (share of the occurrences serving at
    the start, what the report gives) or ``serving_fraction`` (share of those
    still serving when the batch started, what the floor bounds).
    """
    waves = [b for b in batches_by_wave if b]
    if not waves:
        return None, None
    before = [b[key] for w in waves[:-1] for b in w if b.get(key) is not None]
    final = [b[key] for b in waves[-1] if b.get(key) is not None]
    return (min(before) if before else None), (min(final) if final else None)


def floor_violation(waves: Sequence[Mapping[str, Any]], min_fraction: float) -> Optional[str]:
    """The operator-facing error when the floor cannot be kept before the final wave, else None."""
    for wave in waves[:-1]:
        for batch in wave.get("batches") or []:
            if batch.get("floor_kept") is False:
                return ("cannot keep %g%% serving: taking out even one of %d leaves %.1f%% (wave %d %s); lower "
                        "shutdown_min_serving_fraction or add occurrences, or set shutdown_allow_below_floor: true to go ahead"
                        % (round(100 * float(min_fraction), 4), batch["serving_before"], 100 * batch["serving_fraction"],
                           wave["index"], wave["name"]))
    return None


def wave_delays(delays: Optional[Iterable[Any]], count: int) -> List[float]:
    """Delay before each wave (wave 1: 0), from a list of waits between waves."""
    waits = [float(d) for d in (delays or [])]
    out = [0.0]
    for i in range(1, count):
        out.append(waits[i - 1] if i - 1 < len(waits) else (waits[-1] if waits else 0.0))
    return out


def _duplicates(values: Iterable[str]) -> List[str]:
    seen: Set[str] = set()
    dupes: Set[str] = set()
    for v in values:
        (dupes if v in seen else seen).add(v)
    return sorted(dupes)
