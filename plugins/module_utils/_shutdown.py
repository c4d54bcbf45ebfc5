# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Graceful shutdown and wakeup of a multi-occurrence agent (seed FSD 001).

An agent often runs as several *occurrences* that share one identity and one
database. A shutdown of the agent is decided once, by one occurrence (the
explorer), with ``scope: all_occurrences``; the other occurrences are then told
in waves (explorer -> early adopters -> general) with ``decision_ref`` set, and
every wave is verified (each occurrence reaches ``cognitive_state: shutdown``
or stops answering) before the next one starts. A wakeup starts the explorer
first, gates it on ``work``, then the early adopters, then the rest.

Pure functions (unit-tested on their own):

* :func:`classify_probe` - one health answer -> up / shutdown / not_answering
* :func:`select_agent` - which agent of a group a rollout is about
* :func:`assign_groups` - explorer / early_adopter / general (``occurrences`` preset)
* :func:`batch_limit`, :func:`split_batches` - the capacity floor
* :func:`plan_message` - the FSD-style shutdown message stating the plan
* :func:`decision_is_reusable` - may a recorded shared decision be reused

Engines (one call per task, state in :mod:`._state`, report in :mod:`._report`):
:func:`occurrence_plan`, :func:`shutdown_decide`, :func:`shutdown_wave`,
:func:`wakeup_prepare`, :func:`wakeup_gate`.
"""

from __future__ import annotations

import math
import os
import time

from ansible_collections.agentfleet.rollout.plugins.module_utils._cohorts import split_waves
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import connection_spec
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import client_from_params
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import token_secrets
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import validate_agent_urls
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import health_check_fn
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import wait_for_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import ACCEPT
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AUTH_ERROR
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DEFER
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import evaluate_health
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import HEALTH_PATH
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import join_url
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import REJECT
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import TransportError
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import append_audit
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import utcnow_iso
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import write_report
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import open_store

SHUTDOWN = "shutdown"
WAKEUP = "wakeup"
KINDS = (SHUTDOWN, WAKEUP)

EXPLORER = "explorer"
EARLY_ADOPTER = "early_adopter"
GENERAL = "general"
GROUP_TITLES = {EXPLORER: "Explorer", EARLY_ADOPTER: "Early Adopters", GENERAL: "General"}

# what one health probe says about an occurrence
UP = "up"
DOWN = "shutdown"
NOT_ANSWERING = "not_answering"
# a reverse proxy answering for a backend that is gone
GATEWAY_DOWN = (502, 503, 504)

DEFAULT_STATE_PATH = "~/.agentfleet/state.db"
DEFAULT_DELAYS = (30.0, 60.0)
DEFAULT_WAVE_TIMEOUT = 300.0
DEFAULT_MAX_AGE = 3600.0
EPS = 1e-9


class ShutdownError(Exception):
    """A failure the operator must see (bad plan, explorer unreachable, auth error...)."""


# ----------------------------------------------------------------------------- pure functions

def classify_probe(status=None, payload=None, error=None):
    """Judge one health answer for a shutdown: ``(state, cause, info)``.

    ``state`` is :data:`UP` (answers and is not shutting down), :data:`DOWN`
    (answers with ``cognitive_state: shutdown``) or :data:`NOT_ANSWERING`
    (no HTTP answer, or a gateway saying the backend is gone).
    """
    if error is not None:
        if getattr(error, "kind", None) == "timeout" and getattr(error, "sent", False):
            # connected, then no answer in time: the process is there (busy, draining or hung),
            # which is not a clean termination
            return UP, "accepts connections but does not answer: %s" % error, {}
        return NOT_ANSWERING, str(error), {}
    if status in GATEWAY_DOWN:
        return NOT_ANSWERING, "HTTP %d from the gateway (backend gone)" % status, {}
    cause, info = evaluate_health(status, payload, ("work",))[1:]
    if info.get("cognitive_state") == "shutdown":
        return DOWN, None, info
    return UP, cause, info


def probe_state(client, agent_url):
    """GET health of one occurrence and classify it (see :func:`classify_probe`)."""
    try:
        resp = client.request("GET", join_url(agent_url, HEALTH_PATH))
    except TransportError as exc:
        return classify_probe(error=exc)
    return classify_probe(resp.status, resp.json)


def apply_discovery(members, probes, discovery="inventory"):
    """Members + probe results -> occurrence dicts with a ``state``.

    ``probes`` maps name -> ``(state, cause, info)`` (or is None: nothing
    probed, every member counts as up). With ``discovery="health"`` the
    ``agent_id`` and ``occurrence_id`` an occurrence reports win over the
    inventory's; an occurrence that does not answer keeps the inventory's.
    """
    out = []
    for m in members:
        occ = dict(m)
        occ.setdefault("occurrence_id", occ["name"])
        if probes is None:
            occ["state"], occ["cause"] = UP, None
        else:
            state, cause, info = probes.get(occ["name"], (NOT_ANSWERING, "not probed", {}))
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


def select_agent(occurrences, agent_id=None):
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


def assign_groups(occurrences, method="sorted", salt=""):
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
    groups = {w["name"]: [dict(m) for m in w["members"]] for w in waves}
    explorers = groups.get(EXPLORER, [])
    if len(explorers) > 1:
        keep = [m for m in explorers if m.get("canary_group") == EXPLORER] or explorers[:1]
        keep = keep[:1]
        extra = [m for m in explorers if m is not keep[0]]
        groups[EXPLORER] = keep
        groups[EARLY_ADOPTER] = sorted(groups.get(EARLY_ADOPTER, []) + extra,
                                       key=lambda m: (str(m.get("occurrence_id")) != "default", str(m.get("occurrence_id"))))
    out = []
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


def batch_limit(serving, min_fraction):
    """Most occurrences one batch may take out of ``serving`` while keeping
    ``min_fraction`` of them serving; always at least 1 (a rollout must move)."""
    if not min_fraction or min_fraction <= 0:
        return max(1, int(serving))
    return max(1, int(math.floor((1.0 - float(min_fraction)) * int(serving) + EPS)))


def split_batches(waves, serving, min_fraction=0.0):
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
        names = [m["name"] for m in wave["members"]]
        batches = []
        pos = 0
        while pos < len(names):
            limit = len(names) if final else batch_limit(serving, min_fraction)
            chunk = names[pos:pos + limit]
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


def lowest_fractions(batches_by_wave, key="fleet_serving_fraction"):
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


def floor_violation(waves, min_fraction):
    """The operator-facing error when the floor cannot be kept before the final wave, else None."""
    for wave in waves[:-1]:
        for batch in wave.get("batches") or []:
            if batch.get("floor_kept") is False:
                return ("cannot keep %g%% serving: taking out even one of %d leaves %.1f%% (wave %d %s); lower "
                        "shutdown_min_serving_fraction or add occurrences, or set shutdown_allow_below_floor: true to go ahead"
                        % (round(100 * float(min_fraction), 4), batch["serving_before"], 100 * batch["serving_fraction"],
                           wave["index"], wave["name"]))
    return None


def _names(members, limit=6):
    names = [str(m.get("occurrence_id") or m["name"]) for m in members]
    shown = ", ".join(names[:limit])
    return shown + (" and %d more" % (len(names) - limit) if len(names) > limit else "")


def _secs(value):
    value = float(value)
    return ("%d" % value) if value == int(value) else ("%g" % value)


def plan_message(agent_id, waves, reason, delays=DEFAULT_DELAYS, wave_timeout=DEFAULT_WAVE_TIMEOUT,
                 min_fraction=0.0):
    """The FSD's shutdown message, stating this rollout's actual plan.

    ``waves`` come from :func:`split_batches` (or :func:`assign_groups`); the
    explorer is the first member of wave 1. Returns the text sent, as
    ``reason``, to the explorer only.
    """
    if not waves:
        raise ShutdownError("no occurrence to shut down")
    explorer = waves[0]["members"][0]
    total = sum(w["size"] for w in waves)
    lines = [
        "SYSTEM SHUTDOWN REQUEST",
        "",
        "You are occurrence %s of agent %s, processing this shutdown request on behalf of ALL %d runtime "
        "occurrence%s. Your decision applies to all occurrences."
        % (explorer.get("occurrence_id") or explorer["name"], agent_id, total, "" if total == 1 else "s"),
        "",
        "SHUTDOWN PLAN (if you accept):",
        "Your acceptance will initiate a canary shutdown across all occurrences:",
    ]
    prev = None
    for i, wave in enumerate(waves):
        title = GROUP_TITLES.get(wave["name"], wave["name"])
        size = wave["size"]
        lines.append("")
        lines.append("Wave %d (%s - %d occurrence%s: %s):" % (wave["index"], title, size, "" if size == 1 else "s",
                                                              _names(wave["members"])))
        if i == 0:
            lines.append("  - Shutdown immediately (that is you)")
        else:
            delay = float(delays[i - 1]) if i - 1 < len(delays) else 0.0
            lines.append("  - Begin shutdown %s seconds after the %s wave's termination is verified"
                         % (_secs(delay), GROUP_TITLES.get(prev, prev).lower()))
        batches = wave.get("batches") or []
        if len(batches) > 1:
            lines.append("  - In %d batches of at most %d, keeping at least %d%% of the serving occurrences up"
                         % (len(batches), max(len(b["members"]) for b in batches), int(round(100 * float(min_fraction)))))
        lines.append("  - Validate clean termination (within %s seconds)" % _secs(wave_timeout))
        if i < len(waves) - 1:
            lines.append("  - Other occurrences handle load during shutdown")
        prev = wave["name"]
    lines += [
        "",
        "Service remains available until the final wave (remaining occurrences handle requests).",
        "A wave that does not terminate cleanly stops the rollout before the next wave.",
        "",
        "REJECTION:",
        "If you reject, NO occurrences will shut down. Your decision applies to all.",
        "If you defer, nothing happens now: say when to ask again.",
        "",
        "Reason for shutdown request: %s" % reason,
        "",
        "Do you accept this shutdown plan?",
        "[ACCEPT] - Initiate canary shutdown rollout",
        "[REJECT] - Refuse shutdown for all occurrences, provide reasoning",
    ]
    return "\n".join(lines)


def follower_message(agent_id, decision, wave, reason):
    """The short text sent with ``decision_ref`` to an occurrence of a later wave."""
    return ("SYSTEM SHUTDOWN (decided for all occurrences of %s)\n\nThe agent already decided: %s (decision %s by "
            "occurrence %s at %s). You are in wave %d (%s) of the canary shutdown. Please comply; no new "
            "deliberation is needed.\n\nReason for shutdown request: %s"
            % (agent_id, decision["decision"], decision.get("decision_id") or "-", decision.get("decided_by") or "-",
               utcnow_iso(decision["decided_at"]) if decision.get("decided_at") else "-", wave["index"],
               GROUP_TITLES.get(wave["name"], wave["name"]), reason))


def decision_is_reusable(decision, now):
    """May a recorded shared decision stand for this run (no one asked)?

    accept and reject: yes (they are final; the age limit was applied when
    reading it). defer: only while ``defer_until`` lies in the future.
    """
    if not decision:
        return False
    if decision["decision"] in (ACCEPT, REJECT):
        return True
    if decision["decision"] == DEFER:
        return decision.get("defer_until") is not None and float(decision["defer_until"]) > now
    return False


def wave_delays(delays, count):
    """Delay before each wave (wave 1: 0), from a list of waits between waves."""
    delays = [float(d) for d in (delays or [])]
    out = [0.0]
    for i in range(1, count):
        out.append(delays[i - 1] if i - 1 < len(delays) else (delays[-1] if delays else 0.0))
    return out


# ----------------------------------------------------------------------------- argument specs

_STATE_OPTIONS = dict(
    state_path=dict(type="path", default=DEFAULT_STATE_PATH),
    report_path=dict(type="path"),
    audit_path=dict(type="path"),
)

PLAN_SPEC = connection_spec(
    members=dict(type="list", elements="dict"),
    group=dict(type="str"),
    purpose=dict(type="str", default=SHUTDOWN, choices=list(KINDS)),
    agent_id=dict(type="str"),
    discovery=dict(type="str", default="inventory", choices=["inventory", "health"]),
    probe=dict(type="bool", default=True),
    method=dict(type="str", default="sorted", choices=["sorted", "stable"]),
    salt=dict(type="str", default=""),
    reason=dict(type="str"),
    wave_delays=dict(type="list", elements="float", default=list(DEFAULT_DELAYS)),
    wave_timeout=dict(type="float", default=DEFAULT_WAVE_TIMEOUT),
    min_serving_fraction=dict(type="float", default=0.0),
    allow_below_floor=dict(type="bool", default=False),
)

SHUTDOWN_SPEC = connection_spec(
    step=dict(type="str", required=True, choices=["decide", "wave"]),
    plan=dict(type="dict"),
    deployment_id=dict(type="str", required=True),
    max_age=dict(type="float", default=DEFAULT_MAX_AGE),
    wave=dict(type="int"),
    poll_interval=dict(type="float", default=1.0),
    fail_on_partial=dict(type="bool", default=True),
    takeover=dict(type="bool", default=False),
    fresh_decision=dict(type="bool", default=False),
    **_STATE_OPTIONS
)
SHUTDOWN_REQUIRED_IF = [["step", "decide", ["plan"]], ["step", "wave", ["wave"]]]

WAKEUP_SPEC = connection_spec(
    step=dict(type="str", required=True, choices=["prepare", "gate", "abort"]),
    plan=dict(type="dict"),
    deployment_id=dict(type="str", required=True),
    wave=dict(type="int", required=True),
    expected_states=dict(type="list", elements="str", default=["work"]),
    target_version=dict(type="str"),
    hosts=dict(type="list", elements="str", default=[]),
    reason=dict(type="str"),
    min_healthy_time=dict(type="float", default=0.0),
    poll_interval=dict(type="float", default=1.0),
    fail_on_partial=dict(type="bool", default=True),
    takeover=dict(type="bool", default=False),
    **_STATE_OPTIONS
)


# ----------------------------------------------------------------------------- planning

def occurrence_plan(params, client=None, check_mode=False):
    """Engine of ``occurrence_plan``: discovery, groups, capacity batches, message.

    Read-only: it probes health (a GET) and touches nothing.
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
    probes = None
    if params.get("probe", True) or params.get("discovery") == "health":
        close = client is None
        client = client or client_from_params(params)
        try:
            results = client.fan_out(lambda m: (m["name"], probe_state(client, m["agent_url"])), members)
        finally:
            if close:
                client.close()
        probes = dict(results)
    occurrences = apply_discovery(members, probes, params.get("discovery") or "inventory")
    agent_id = select_agent(occurrences, params.get("agent_id"))
    mine = [o for o in occurrences if str(o.get("agent_id") or o["name"]) == agent_id]
    unknown = [o for o in occurrences if o["state"] == NOT_ANSWERING and params.get("discovery") == "health"
               and str(o.get("agent_id") or o["name"]) != agent_id and not o.get("inventory_agent_id")]
    if kind == SHUTDOWN:
        candidates = [o for o in mine if o["state"] == UP]
        left_out = [o for o in mine if o["state"] != UP]
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
    below_floor = None
    if kind == SHUTDOWN:
        waves = split_batches(groups, len(candidates), floor)[0]
        below_floor = floor_violation(waves, floor)
        if below_floor and not params.get("allow_below_floor"):
            raise ShutdownError(below_floor)
    else:
        waves = [dict(w, batches=[{"index": 1, "members": [m["name"] for m in w["members"]]}]) for w in groups]
    delays = wave_delays(params.get("wave_delays"), len(waves))
    timeout = float(params.get("wave_timeout") or DEFAULT_WAVE_TIMEOUT)
    for wave, delay in zip(waves, delays):
        wave["delay"] = delay
        wave["timeout"] = timeout
        for m in wave["members"]:
            m.pop("state", None)
            m.pop("cause", None)
    message = None
    if kind == SHUTDOWN and waves:
        message = plan_message(agent_id, waves, params.get("reason") or "(no reason given)",
                               delays=list(params.get("wave_delays") or []), wave_timeout=timeout, min_fraction=floor)
    fleet_key = "%s/%s" % (params.get("group") or "members", agent_id)
    low, low_final = lowest_fractions([w["batches"] for w in waves]) if kind == SHUTDOWN else (None, None)
    low_batch = lowest_fractions([w["batches"] for w in waves], "serving_fraction")[0] if kind == SHUTDOWN else None
    lines = []
    for w in waves:
        sizes = [len(b["members"]) for b in w["batches"]]
        lines.append("wave %d %s: %d occurrence%s (%s)%s%s" % (
            w["index"], w["name"], w["size"], "" if w["size"] == 1 else "s", _names(w["members"]),
            (", after %ss" % _secs(w["delay"])) if w["index"] > 1 else "",
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
        "serving": len([o for o in mine if o["state"] == UP]),
        "waves": waves,
        "explorer": waves[0]["members"][0]["name"] if waves else None,
        "left_out": [{k: o.get(k) for k in ("name", "occurrence_id", "agent_url", "state", "cause")} for o in left_out],
        "unknown": [{k: o.get(k) for k in ("name", "agent_url", "state", "cause")} for o in unknown],
        "message": message,
        "reason": params.get("reason"),
        "min_serving_fraction": floor,
        "lowest_serving_fraction": low,
        "lowest_batch_serving_fraction": low_batch,
        "lowest_serving_fraction_final_wave": low_final,
        "below_floor": below_floor,
        "plan": lines,
    }


def _duplicates(values):
    seen, dupes = set(), set()
    for v in values:
        (dupes if v in seen else seen).add(v)
    return sorted(dupes)


# ----------------------------------------------------------------------------- state helpers

def _open(params, create=True):
    path = os.path.expanduser(params.get("state_path") or DEFAULT_STATE_PATH)
    if not create and not os.path.exists(path):
        return None
    return open_store(path)


def _default_report_path(deployment_id):
    return os.path.expanduser("~/.agentfleet/reports/%s.json" % deployment_id)


def _paths(params, deployment_id):
    report = os.path.expanduser(params.get("report_path") or _default_report_path(deployment_id))
    audit = params.get("audit_path")
    if not audit:
        audit = (report[:-5] if report.endswith(".json") else report) + ".audit.jsonl"
    return report, os.path.expanduser(audit)


def _begin(store, params, plan, kind, clock):
    """Create, resume or find the deployment of this run.

    A deployment of the same kind for the same fleet key that was interrupted
    (its controller is gone) is resumed under its own id, so that a rerun
    after a controller crash continues it instead of starting over.
    """
    fleet_key = plan["fleet_key"]
    deployment_id = params["deployment_id"]
    resumed_from = None
    for other in store.active_for_fleet(fleet_key, exclude=deployment_id):
        if other["strategy"] == kind and not store.lease_live(other):
            resumed_from = deployment_id
            deployment_id = other["deployment_id"]
            break
    stored_params = {
        "kind": kind, "agent_id": plan["agent_id"], "reason": plan.get("reason"), "message": plan.get("message"),
        "left_out": plan.get("left_out") or [], "unknown": plan.get("unknown") or [], "total": plan.get("total"),
        "serving": plan.get("serving"), "min_serving_fraction": plan.get("min_serving_fraction") or 0.0,
        "below_floor": plan.get("below_floor"),
        "max_age": params.get("max_age"),
    }
    dep, mode = store.create_or_resume(deployment_id, fleet_key, kind, "", plan["waves"], stored_params,
                                       takeover=bool(params.get("takeover")))
    return dep, mode, resumed_from


def _shared_for(store, dep):
    params = dep["params"]
    return store.shared_decision(params["agent_id"], params["kind"], deployment_id=dep["deployment_id"])


def _decision_out(decision, reused):
    if not decision:
        return None
    return {
        "decision": decision["decision"],
        "decision_id": decision.get("decision_id"),
        "decided_by": decision.get("decided_by"),
        "decided_at": utcnow_iso(decision["decided_at"]) if decision.get("decided_at") else None,
        "reason": decision.get("reason"),
        "defer_until": utcnow_iso(decision["defer_until"]) if decision.get("defer_until") else None,
        "reused": bool(reused),
        "from_deployment": decision.get("deployment_id"),
    }


def build_report(store, deployment_id, extra=None):
    """The JSON report of a shutdown or wakeup deployment, rebuilt from state."""
    dep = store.get_deployment(deployment_id)
    params = dep["params"]
    kind = params.get("kind", SHUTDOWN)
    decision = _shared_for(store, dep) if kind == SHUTDOWN else None
    rows = store.agents(deployment_id)
    waves = store.waves(deployment_id)
    batches_by_wave = []
    for w in waves:
        batches_by_wave.append([b for b in ((w.get("summary") or {}).get("batches") or []) if b.get("sent") or b.get("serving_fraction") is not None])
    occurrences = []
    for r in rows:
        extra_row = r.get("extra") or {}
        occurrences.append({
            "name": r["host"],
            "occurrence_id": r["occurrence_id"],
            "agent_url": r["agent_url"],
            "group": r["cohort"],
            "wave": r["wave"],
            "batch": extra_row.get("batch"),
            "asked": extra_row.get("asked"),
            "answer": ({"decision": r["decision"], "reason": r["decision_reason"], "decision_id": r["decision_id"],
                        "own_decision": extra_row.get("own_decision", False),
                        "defer_until": utcnow_iso(r["defer_until"]) if r.get("defer_until") else None}
                       if r["decision"] else None),
            "final_state": r["result"] or "not_touched",
            "detail": r["result_detail"],
        })
    counts = {}
    for o in occurrences:
        counts[o["final_state"]] = counts.get(o["final_state"], 0) + 1
    report = {
        "kind": kind,
        "deployment_id": deployment_id,
        "agent_id": params.get("agent_id"),
        "fleet_key": dep["fleet_key"],
        "status": dep["status"],
        "outcome": (extra or {}).get("outcome") or dep.get("message"),
        "message": dep.get("message"),
        "reason": params.get("reason"),
        "plan_message": params.get("message"),
        "decision": _decision_out(decision, _was_reused(store, deployment_id)) if decision else None,
        "plan": [{"index": w["index"], "name": w["name"], "size": w["size"], "delay": w.get("delay"),
                  "timeout": w.get("timeout"),
                  "batches": [b["members"] for b in (w.get("batches") or [])]} for w in dep["plan"]],
        "waves": [{"index": w["wave"], "name": w["name"], "status": w["status"],
                   "started_at": utcnow_iso(w["started_at"]) if w.get("started_at") else None,
                   "finished_at": utcnow_iso(w["finished_at"]) if w.get("finished_at") else None,
                   "summary": w.get("summary")} for w in waves],
        "occurrences": occurrences,
        "not_in_plan": params.get("left_out") or [],
        "unknown_agents": params.get("unknown") or [],
        "replaced_deployment": next((e["data"] for e in store.events(deployment_id) if e["event"] == "replaced_stale_deployment"), None),
        "counts": counts,
        "created_at": utcnow_iso(dep["created_at"]),
        "finished_at": utcnow_iso(dep["finished_at"]) if dep.get("finished_at") else None,
        "generated_at": utcnow_iso(),
    }
    if kind == SHUTDOWN:
        low, low_final = lowest_fractions(batches_by_wave)
        low_batch = lowest_fractions(batches_by_wave, "serving_fraction")[0]
        report["capacity"] = {
            "min_serving_fraction": params.get("min_serving_fraction") or 0.0,
            "serving_at_start": params.get("serving"),
            # of the occurrences serving at the start (the whole fleet that was serving)
            "lowest_serving_fraction": low,
            "lowest_serving_fraction_final_wave": low_final,
            # of the occurrences still serving when a batch started: what the floor bounds
            "lowest_batch_serving_fraction": low_batch,
            "floor_kept_before_final_wave": (low_batch is None or low_batch + EPS >= float(params.get("min_serving_fraction") or 0.0)),
            "below_floor_allowed": params.get("below_floor"),
        }
    if extra:
        report.update({k: v for k, v in extra.items() if k != "outcome"})
    return report


def _was_reused(store, deployment_id):
    return any(e["event"] == "shared_decision_reused" for e in store.events(deployment_id))


def _write(store, params, deployment_id, extra=None, events=None):
    report_path, audit_path = _paths(params, deployment_id)
    report = build_report(store, deployment_id, extra)
    secrets = token_secrets(params)
    write_report(report_path, report, secrets)
    if events:
        append_audit(audit_path, [dict(e, deployment_id=deployment_id) for e in events], secrets)
    return report, report_path


def _set_extra(store, deployment_id, items):
    """Merge per-occurrence extras (what it was asked, its batch...) into state."""
    store.merge_agent_extra(deployment_id, items)


# ----------------------------------------------------------------------------- shutdown: decide

def shutdown_decide(params, check_mode=False, client=None, store=None, clock=time.time):
    """Decide once for all occurrences, or reuse a recent shared decision.

    Returns ``decision`` (accept/reject/defer/none), ``proceed``, ``reused``,
    ``asked`` (names asked: at most the explorer), ``deployment_id``,
    ``waves`` (the effective plan, for the wave loop) and the report path.
    """
    plan = params["plan"]
    agent_id = plan["agent_id"]
    max_age = float(params.get("max_age") if params.get("max_age") is not None else DEFAULT_MAX_AGE)
    now = clock()
    own_store = store is None
    store = store if store is not None else _open(params, create=not check_mode)
    fresh = bool(params.get("fresh_decision"))
    try:
        if check_mode:
            prior = store.shared_decision(agent_id, SHUTDOWN, max_age) if store is not None and not fresh else None
            if not plan["waves"]:
                return _result_nothing(plan, params["deployment_id"], prior)
            reuse = decision_is_reusable(prior, now)
            explorer = plan["waves"][0]["members"][0]["name"]
            return {
                "changed": True,
                "deployment_id": params["deployment_id"],
                "decision": prior["decision"] if reuse else None,
                "decided": _decision_out(prior, True) if reuse else None,
                "reused": reuse,
                "asked": [] if reuse else [explorer],
                "would_ask": None if reuse else explorer,
                "proceed": False,
                "waves": _wave_loop(plan["waves"]),
                "outcome": ("would reuse the %s decided by %s" % (prior["decision"], prior.get("decided_by"))) if reuse
                else "would ask the explorer %s (scope all_occurrences)" % explorer,
            }
        if not plan["waves"]:
            prior = store.shared_decision(agent_id, SHUTDOWN, max_age)
            return _result_nothing(plan, params["deployment_id"], prior)
        dep, mode, resumed_from = _begin(store, params, plan, SHUTDOWN, clock)
        existing = _shared_for(store, dep)
        replaced = None
        if existing and mode not in ("new", "complete") and (
                fresh or not store.shared_decision(agent_id, SHUTDOWN, max_age, deployment_id=dep["deployment_id"])):
            # a resumed deployment may only go on while its decision is younger than max_age (or no fresh one is asked for)
            replaced = _close_stale(store, dep, existing, max_age, fresh)
            new_id = params["deployment_id"]
            if new_id == dep["deployment_id"]:
                new_id = "%s-%s" % (new_id, time.strftime("%Y%m%d%H%M%S", time.gmtime(now)))
            dep, mode, resumed_from = _begin(store, dict(params, deployment_id=new_id), plan, SHUTDOWN, clock)
            store.event(dep["deployment_id"], "replaced_stale_deployment", replaced)
            existing = _shared_for(store, dep)
        deployment_id = dep["deployment_id"]
        waves = dep["plan"]
        if mode == "complete":
            path = _write(store, params, deployment_id)[1]
            return _result(dep, existing, False, [], False, waves, path, "deployment already finished: %s" % (dep.get("message") or dep["status"]))
        reused = False
        asked = []
        events = []
        decision = existing if existing and decision_is_reusable(existing, now) else None
        if replaced:
            events.append(dict(replaced, event="stale_deployment_closed"))
        if decision is None:
            prior = None if fresh else store.shared_decision(agent_id, SHUTDOWN, max_age)
            if decision_is_reusable(prior, now):
                # the agent decided already (another run, another controller): nobody is asked
                store.record_shared_decision(agent_id, deployment_id, SHUTDOWN, prior["decision"], prior.get("decision_id"),
                                             prior.get("decided_by"), prior.get("reason"), prior.get("defer_until"),
                                             decided_at=prior["decided_at"])
                store.event(deployment_id, "shared_decision_reused", {"from_deployment": prior["deployment_id"],
                                                                      "decision": prior["decision"]})
                decision = dict(prior, reused=True)
                reused = True
                events.append({"event": "decision_reused", "decision": prior["decision"],
                               "from_deployment": prior["deployment_id"], "decided_by": prior.get("decided_by")})
        else:
            reused = existing.get("deployment_id") == deployment_id and mode != "new"
            decision = dict(existing, reused=True)
        if decision is None:
            decision, answer, asked = _ask_explorer(store, params, dep, plan, clock, client)
            events.append({"event": "explorer_asked", "host": asked[0], "decision": answer["decision"],
                           "decision_id": answer.get("decision_id"), "reason": answer.get("reason")})
            if decision is None:
                msg = _explorer_failure(answer, asked[0])
                store.set_status(deployment_id, "failed", msg)
                _set_results_not_touched(store, deployment_id)
                path = _write(store, params, deployment_id, {"outcome": msg}, events)[1]
                raise ShutdownError(msg + " (report: %s)" % path)
        outcome = _apply_decision(store, deployment_id, decision, agent_id)
        path = _write(store, params, deployment_id, {"outcome": outcome}, events)[1]
        proceed = decision["decision"] == ACCEPT
        res = _result(store.get_deployment(deployment_id), decision, reused, asked, proceed, waves, path, outcome)
        res["mode"] = mode
        res["resumed_from"] = resumed_from
        res["replaced_deployment"] = replaced
        res["changed"] = bool(asked)
        return res
    finally:
        if own_store and store is not None:
            store.close()


def _close_stale(store, dep, decision, max_age, fresh):
    """Abort an interrupted deployment whose shared decision may no longer be used; say why."""
    if fresh:
        why = "a fresh decision was requested (fresh_decision)"
    else:
        why = "its shared decision (%s by %s at %s) is older than max_age %ss" % (
            decision["decision"], decision.get("decided_by") or "-",
            utcnow_iso(decision["decided_at"]) if decision.get("decided_at") else "-", _secs(max_age))
    msg = "closed without finishing: %s; the explorer is asked anew in a new deployment" % why
    _finish_abort(store, dep["deployment_id"], msg, status="aborted")
    return {"deployment_id": dep["deployment_id"], "reason": msg}


def _result_nothing(plan, deployment_id, prior):
    return {
        "changed": False, "deployment_id": deployment_id, "decision": None,
        "decided": _decision_out(prior, True) if prior else None, "reused": False, "asked": [], "proceed": False,
        "waves": [], "outcome": "nothing to shut down: no occurrence of %s is serving (%d known)" % (plan["agent_id"], plan.get("total") or 0),
    }


def _wave_loop(waves):
    return [{"index": w["index"], "name": w["name"], "size": w["size"], "delay": w.get("delay"),
             "batches": [len(b["members"]) for b in (w.get("batches") or [])]} for w in waves]


def _result(dep, decision, reused, asked, proceed, waves, report_path, outcome):
    return {
        "changed": bool(asked),
        "deployment_id": dep["deployment_id"],
        "status": dep["status"],
        "decision": decision["decision"] if decision else None,
        "decided": _decision_out(decision, reused) if decision else None,
        "reused": bool(reused),
        "asked": asked,
        "proceed": bool(proceed) and dep["status"] == "running",
        "waves": _wave_loop(waves),
        "report_path": report_path,
        "outcome": outcome,
    }


def _explorer_failure(answer, explorer):
    if answer["decision"] == AUTH_ERROR:
        return "authentication failed asking the explorer %s: check the token (HTTP %s); nobody was shut down" % (
            explorer, answer.get("http_status"))
    return "the explorer %s did not answer the shutdown request (%s); nobody was shut down" % (
        explorer, answer.get("reason") or answer["decision"])


def _ask_explorer(store, params, dep, plan, clock, client):
    deployment_id = dep["deployment_id"]
    explorer = dep["plan"][0]["members"][0]
    body = {"reason": dep["params"].get("message") or plan.get("message"), "force": False, "confirm": True,
            "deployment_id": deployment_id, "scope": "all_occurrences", "decision_ref": None}
    close = client is None
    client = client or client_from_params(params)
    try:
        store.mark_asked(deployment_id, [explorer["name"]])
        _set_extra(store, deployment_id, {explorer["name"]: {"asked": {"scope": "all_occurrences", "decision_ref": None,
                                                                       "message": "plan (see plan_message)",
                                                                       "at": utcnow_iso(clock())}}})
        answer = client.shutdown(explorer["agent_url"], body)
    finally:
        if close:
            client.close()
    store.record_answers(deployment_id, [dict(answer, host=explorer["name"], wave=1, cohort=EXPLORER)])
    if answer["decision"] not in (ACCEPT, REJECT, DEFER):
        return None, answer, [explorer["name"]]
    store.record_shared_decision(plan["agent_id"], deployment_id, SHUTDOWN, answer["decision"], answer.get("decision_id"),
                                 explorer["name"], answer.get("reason"), answer.get("defer_until"))
    decision = store.shared_decision(plan["agent_id"], SHUTDOWN, deployment_id=deployment_id)
    return dict(decision, reused=False), answer, [explorer["name"]]


def _apply_decision(store, deployment_id, decision, agent_id):
    d = decision["decision"]
    who = decision.get("decided_by") or "the explorer"
    if d == ACCEPT:
        return "accepted by %s for all occurrences of %s" % (who, agent_id)
    if d == REJECT:
        msg = "rejected by %s for all occurrences of %s: %s; no occurrence shuts down" % (who, agent_id, decision.get("reason") or "no reason given")
        store.set_status(deployment_id, "completed", msg)
        _set_results_not_touched(store, deployment_id, "kept_running")
        return msg
    until = utcnow_iso(decision["defer_until"]) if decision.get("defer_until") else "unknown"
    msg = "deferred by %s: nothing happens now; ask again after %s (%s)" % (who, until, decision.get("reason") or "no reason given")
    store.set_status(deployment_id, "completed", msg)
    _set_results_not_touched(store, deployment_id, "kept_running")
    return msg


def _set_results_not_touched(store, deployment_id, result="not_touched"):
    rows = [r for r in store.agents(deployment_id) if not r["result"]]
    if rows:
        store.set_results(deployment_id, [{"host": r["host"], "result": result} for r in rows])


# ----------------------------------------------------------------------------- shutdown: one wave

def termination_check_fn(client, urls, observed):
    """A ``check`` for :func:`wait_for_wave`: ready = shut down or not answering.

    ``observed`` (a dict) receives each occurrence's last state.
    """
    def check(names):
        results = client.fan_out(lambda n: (n, probe_state(client, urls[n])), names)
        out = {}
        for name, (state, cause, info) in results:
            observed[name] = (state, cause, info)
            if state == UP:
                out[name] = (False, "still %s%s" % (info.get("cognitive_state") or "answering", (" (%s)" % cause) if cause else ""), info)
            else:
                out[name] = (True, None, info)
        return out

    return check


def shutdown_wave(params, check_mode=False, client=None, store=None, clock=time.time, sleep=time.sleep,
                  monotonic=time.monotonic):
    """Send one wave (in capacity batches) and verify clean termination.

    Safety: explorer or early-adopter failures abort the rollout before the
    next wave (and the next batch); in the general wave failures are
    reported and the other batches proceed. A follower's reject stops the
    rollout in any wave.
    """
    own_store = store is None
    store = store if store is not None else _open(params)
    close = client is None
    client = client or client_from_params(params)
    try:
        return _shutdown_wave(params, check_mode, client, store, clock, sleep, monotonic)
    finally:
        if close:
            client.close()
        if own_store:
            store.close()


def _shutdown_wave(params, check_mode, client, store, clock, sleep, monotonic):
    dep = store.get_deployment(params["deployment_id"])
    if dep is None:
        raise ShutdownError("no deployment %s in %s: run the decide step first" % (params["deployment_id"], store.path))
    deployment_id = dep["deployment_id"]
    index = int(params["wave"])
    plan = dep["plan"]
    if index < 1 or index > len(plan):
        raise ShutdownError("deployment %s has %d waves, no wave %d" % (deployment_id, len(plan), index))
    wave = plan[index - 1]
    final_wave = index == len(plan)
    stored = {w["wave"]: w for w in store.waves(deployment_id)}
    decision = _shared_for(store, dep)
    skip = None
    if dep["status"] != "running":
        skip = "deployment is %s: %s" % (dep["status"], dep.get("message") or "")
    elif not decision or decision["decision"] != ACCEPT:
        skip = "no accepted shared decision for this deployment"
    elif stored.get(index, {}).get("status") not in (None, "pending", "running"):
        skip = "wave %d already %s" % (index, stored[index]["status"])
    if skip:
        return {"changed": False, "skipped": True, "aborted": dep["status"] in ("failed", "aborted"), "wave": index,
                "name": wave["name"], "msg": skip, "line": "wave %d %s: skipped (%s)" % (index, wave["name"], skip),
                "status": dep["status"], "finished": dep["status"] != "running"}
    if check_mode:
        return {"changed": True, "skipped": False, "aborted": False, "wave": index, "name": wave["name"],
                "line": "wave %d %s: would shut down %d occurrence(s) in %d batch(es)" % (
                    index, wave["name"], wave["size"], len(wave["batches"])), "finished": False}
    agent_id = dep["params"]["agent_id"]
    if index > 1 and float(wave.get("delay") or 0) > 0:
        sleep(float(wave["delay"]))
    store.wave_started(deployment_id, index)
    store.heartbeat(deployment_id)
    rows = {r["host"]: r for r in store.agents(deployment_id)}
    members = {m["name"]: m for m in wave["members"]}
    urls = {n: m["agent_url"] for n, m in members.items()}
    down_states = ("shutdown", "stopped", "already_down")
    batches_out = []
    failures = {}
    stop_reason = None
    events = []
    sent_any = False
    reason = dep["params"].get("reason") or ""
    for batch in wave["batches"]:
        if stop_reason:
            break
        rows = {r["host"]: r for r in store.agents(deployment_id)}
        serving = len([r for r in rows.values() if r["result"] not in down_states])
        names = [n for n in batch["members"] if rows[n]["result"] not in down_states]
        # who is still up? (a rerun, a resumed run, an occurrence that went away by itself)
        pre = dict(client.fan_out(lambda n: (n, probe_state(client, urls[n])), names))
        already = [n for n in names if pre[n][0] != UP and rows[n]["decision"] != ACCEPT]
        if already:
            store.set_results(deployment_id, [{"host": n, "result": "already_down",
                                               "detail": "%s before being asked%s" % (pre[n][0], (": %s" % pre[n][1]) if pre[n][1] else "")}
                                              for n in already])
        todo = [n for n in names if n not in already]
        to_send = [n for n in todo if rows[n]["decision"] != ACCEPT]
        extras = {}
        answers = {}
        if to_send:
            body_for = {}
            for n in to_send:
                body_for[n] = {"reason": follower_message(agent_id, decision, wave, reason), "force": False, "confirm": True,
                               "deployment_id": deployment_id, "scope": "occurrence",
                               "decision_ref": decision.get("decision_id")}
                extras[n] = {"asked": {"scope": "occurrence", "decision_ref": decision.get("decision_id"),
                                       "at": utcnow_iso(clock())}, "batch": batch["index"]}
            store.mark_asked(deployment_id, to_send)
            _set_extra(store, deployment_id, extras)
            results = client.fan_out(lambda n: (n, client.shutdown(urls[n], body_for[n])), to_send)
            sent_any = True
            recs = []
            for n, ans in results:
                answers[n] = ans
                own = bool(ans.get("decision_id")) and ans.get("decision_id") != decision.get("decision_id")
                recs.append(dict(ans, host=n, wave=index, cohort=wave["name"]))
                if own:
                    _set_extra(store, deployment_id, {n: {"own_decision": True}})
                events.append({"event": "follower_answer", "host": n, "decision": ans["decision"],
                               "decision_id": ans.get("decision_id"), "own_decision": own, "reason": ans.get("reason")})
            store.record_answers(deployment_id, recs)
        else:
            _set_extra(store, deployment_id, {n: {"batch": batch["index"]} for n in todo})
        auth = [n for n, a in answers.items() if a["decision"] == AUTH_ERROR]
        if auth:
            msg = "authentication failed for %s: check the token; rollout stopped" % ", ".join(auth)
            _finish_abort(store, deployment_id, msg)
            _write(store, params, deployment_id, {"outcome": msg}, events)
            raise ShutdownError(msg)
        refused = {n: a for n, a in answers.items() if a["decision"] in (REJECT, DEFER)}
        for n, a in refused.items():
            kind = "rejected" if a["decision"] == REJECT else "deferred"
            failures[n] = "%s: %s" % (kind, a.get("reason") or "no reason given")
        store.set_results(deployment_id, [{"host": n, "result": "rejected" if a["decision"] == REJECT else "deferred",
                                           "detail": a.get("reason")} for n, a in refused.items()])
        if any(a["decision"] == REJECT for a in refused.values()):
            stop_reason = "occurrence %s rejected the shutdown (its own decision): %s" % (
                ", ".join(n for n, a in refused.items() if a["decision"] == REJECT),
                "; ".join(a.get("reason") or "no reason" for a in refused.values() if a["decision"] == REJECT))
        verify = [n for n in todo if n not in refused]
        batch_rec = {"index": batch["index"], "members": batch["members"], "sent": to_send, "already_down": already,
                     "serving_before": serving,
                     "serving_fraction": round((serving - len(todo)) / float(serving), 4) if serving else 0.0,
                     "fleet_serving_fraction": (round((serving - len(todo)) / float(dep["params"]["serving"]), 4)
                                                if dep["params"].get("serving") else None)}
        if verify:
            observed = {}
            start = monotonic()
            result = wait_for_wave(verify, termination_check_fn(client, urls, observed), min_stable_time=0.0,
                                   success_threshold=1.0, deadline=float(wave.get("timeout") or DEFAULT_WAVE_TIMEOUT),
                                   poll_interval=float(params.get("poll_interval") or 1.0), grace=0.0,
                                   clock=monotonic, sleep=sleep)
            batch_rec["verify_seconds"] = round(monotonic() - start, 3)
            done, bad = [], []
            for n in verify:
                state, cause, info = observed.get(n, (UP, "not probed", {}))
                if n in result["stable"]:
                    done.append({"host": n, "result": "shutdown" if state == DOWN else "stopped",
                                 "detail": "cognitive_state shutdown" if state == DOWN else "not answering: %s" % cause})
                else:
                    why = result["unstable"].get(n) or "did not terminate"
                    failures[n] = "did not terminate within %ss: %s" % (_secs(wave.get("timeout") or DEFAULT_WAVE_TIMEOUT), why)
                    bad.append({"host": n, "result": "failed", "detail": failures[n]})
            store.set_results(deployment_id, done + bad)
            batch_rec["terminated"] = [d["host"] for d in done]
            batch_rec["failed"] = [b["host"] for b in bad]
        batches_out.append(batch_rec)
        if failures and wave["name"] in (EXPLORER, EARLY_ADOPTER) and not stop_reason:
            stop_reason = "%s wave failed: %s" % (wave["name"], "; ".join("%s %s" % kv for kv in sorted(failures.items())))
    status = "passed" if not failures else ("failed" if stop_reason else "partial")
    summary = {"batches": batches_out, "failures": failures, "stop_reason": stop_reason}
    store.wave_finished(deployment_id, index, status, summary)
    events.append({"event": "wave_" + status, "wave": index, "name": wave["name"], "failures": failures})
    finished = False
    outcome = None
    if stop_reason:
        outcome = "rollout stopped at wave %d (%s): %s" % (index, wave["name"], stop_reason)
        _finish_abort(store, deployment_id, outcome)
        finished = True
    elif final_wave:
        all_failures = _all_failures(store, deployment_id)
        if all_failures:
            outcome = "completed with failures: %s" % "; ".join("%s %s" % kv for kv in sorted(all_failures.items()))
        else:
            outcome = "all occurrences of %s shut down" % agent_id
        store.set_status(deployment_id, "completed" if not all_failures else "failed", outcome)
        finished = True
    report, path = _write(store, params, deployment_id, {"outcome": outcome} if outcome else None, events)
    counts = {}
    for b in batches_out:
        for key in ("terminated", "failed", "already_down"):
            counts[key] = counts.get(key, 0) + len(b.get(key) or [])
    line = "wave %d %s: %d terminated, %d already down, %d failed%s%s" % (
        index, wave["name"], counts.get("terminated", 0), counts.get("already_down", 0), len(failures),
        (" in %d batches" % len(batches_out)) if len(batches_out) > 1 else "",
        (" -> STOP: %s" % stop_reason) if stop_reason else "")
    out = {
        "changed": sent_any,
        "skipped": False,
        "wave": index,
        "name": wave["name"],
        "status": status,
        "aborted": bool(stop_reason),
        "finished": finished,
        "failures": failures,
        "batches": batches_out,
        "line": line,
        "outcome": outcome,
        "report_path": path,
        "deployment_id": deployment_id,
    }
    if finished:
        out["report"] = report
        out["failed_occurrences"] = sorted(_all_failures(store, deployment_id))
        if stop_reason or (out["failed_occurrences"] and params.get("fail_on_partial", True)):
            out["should_fail"] = True
    return out


def _all_failures(store, deployment_id):
    return {r["host"]: r["result_detail"] or r["result"] for r in store.agents(deployment_id)
            if r["result"] in ("failed", "rejected", "deferred", "unhealthy")}


def _finish_abort(store, deployment_id, msg, status="failed"):
    store.set_status(deployment_id, status, msg)
    _set_results_not_touched(store, deployment_id)
    for w in store.waves(deployment_id):
        if w["status"] == "pending":
            store.wave_finished(deployment_id, w["wave"], "skipped", {"reason": "rollout stopped"})


# ----------------------------------------------------------------------------- wakeup

def wakeup_prepare(params, check_mode=False, client=None, store=None, clock=time.time, sleep=time.sleep):
    """Before starting a wakeup wave: (wave 1) open the deployment, wait the
    wave's delay, and find which occurrences need starting (the others
    already serve in an expected state).
    Returns ``to_start`` (member dicts for the update driver) and ``skipped``.
    """
    index = int(params["wave"])
    expected = tuple(params.get("expected_states") or ("work",))
    if check_mode:
        plan = params.get("plan") or {}
        waves = plan.get("waves") or []
        wave = waves[index - 1] if 0 < index <= len(waves) else None
        if wave is None:
            raise ShutdownError("the plan has no wave %d" % index)
        return {"changed": True, "skipped": False, "wave": index, "name": wave["name"], "to_start": wave["members"],
                "already_up": [], "line": "wave %d %s: would start %d occurrence(s)" % (index, wave["name"], wave["size"])}
    own_store = store is None
    store = store if store is not None else _open(params)
    close = client is None
    client = client or client_from_params(params)
    try:
        dep = store.get_deployment(params["deployment_id"])
        if index == 1 or dep is None:
            if not params.get("plan"):
                raise ShutdownError("wave 1 of a wakeup needs the plan")
            dep = _begin(store, params, params["plan"], WAKEUP, clock)[0]
        deployment_id = dep["deployment_id"]
        plan = dep["plan"]
        if index < 1 or index > len(plan):
            raise ShutdownError("deployment %s has %d waves, no wave %d" % (deployment_id, len(plan), index))
        wave = plan[index - 1]
        stored = {w["wave"]: w for w in store.waves(deployment_id)}
        skip = None
        if dep["status"] != "running":
            skip = "deployment is %s: %s" % (dep["status"], dep.get("message") or "")
        elif stored.get(index, {}).get("status") not in (None, "pending", "running"):
            skip = "wave %d already %s" % (index, stored[index]["status"])
        if skip:
            return {"changed": False, "skipped": True, "wave": index, "name": wave["name"], "to_start": [],
                    "already_up": [], "deployment_id": deployment_id,
                    "line": "wave %d %s: skipped (%s)" % (index, wave["name"], skip)}
        if index > 1 and float(wave.get("delay") or 0) > 0:
            sleep(float(wave["delay"]))
        store.wave_started(deployment_id, index)
        store.heartbeat(deployment_id)
        members = wave["members"]
        probes = dict(client.fan_out(lambda m: (m["name"], client.probe(m["agent_url"], expected, params.get("target_version"))), members))
        up = [m for m in members if probes[m["name"]]["healthy"]]
        to_start = [m for m in members if not probes[m["name"]]["healthy"]]
        if up:
            store.set_results(deployment_id, [{"host": m["name"], "result": "already_awake",
                                               "version_before": probes[m["name"]]["info"].get("version")} for m in up])
        if to_start:
            versions = _last_known_versions(store, dep)
            missing = []
            for m in to_start:
                m["version"] = params.get("target_version") or m.get("version") or versions.get(m["name"])
                if not m["version"]:
                    missing.append(m["name"])
            if missing:
                raise ShutdownError("no version known to start %s: set wakeup_version" % ", ".join(missing[:10]))
            store.mark_asked(deployment_id, [m["name"] for m in to_start])
            _set_extra(store, deployment_id, {m["name"]: {"asked": {"action": "start", "at": utcnow_iso(clock()),
                                                                    "state_before": probes[m["name"]]["cause"]}}
                                              for m in to_start})
        return {"changed": bool(to_start), "skipped": False, "wave": index, "name": wave["name"],
                "deployment_id": deployment_id,
                "to_start": [{k: m.get(k) for k in ("name", "agent_url", "agent_id", "occurrence_id", "cohort", "wave", "version")
                              if m.get(k) is not None}
                             for m in to_start],
                "already_up": [m["name"] for m in up],
                "line": "wave %d %s: starting %d occurrence(s), %d already up" % (index, wave["name"], len(to_start), len(up))}
    finally:
        if close:
            client.close()
        if own_store:
            store.close()


def wakeup_gate(params, check_mode=False, client=None, store=None, clock=time.time, sleep=time.sleep,
                monotonic=time.monotonic):
    """Gate a wakeup wave: every started occurrence must reach an expected
    state (``work``) within the wave timeout. An unhealthy explorer aborts and
    leaves the others down; a failed early-adopter wave stops before general;
    general failures are reported.
    """
    index = int(params["wave"])
    if check_mode:
        return {"changed": False, "skipped": True, "wave": index, "aborted": False, "finished": False,
                "line": "wave %d: would gate on %s" % (index, "|".join(params.get("expected_states") or ["work"]))}
    own_store = store is None
    store = store if store is not None else _open(params)
    close = client is None
    client = client or client_from_params(params)
    try:
        dep = store.get_deployment(params["deployment_id"])
        if dep is None:
            raise ShutdownError("no deployment %s: run the prepare step first" % params["deployment_id"])
        deployment_id = dep["deployment_id"]
        plan = dep["plan"]
        wave = plan[index - 1]
        stored = {w["wave"]: w for w in store.waves(deployment_id)}
        if dep["status"] != "running" or stored.get(index, {}).get("status") not in ("running",):
            return {"changed": False, "skipped": True, "wave": index, "name": wave["name"], "aborted": dep["status"] == "failed",
                    "finished": dep["status"] != "running", "deployment_id": deployment_id,
                    "line": "wave %d %s: skipped (deployment %s)" % (index, wave["name"], dep["status"])}
        rows = {r["host"]: r for r in store.agents(deployment_id)}
        names = [m["name"] for m in wave["members"] if rows[m["name"]]["result"] != "already_awake"]
        urls = {m["name"]: m["agent_url"] for m in wave["members"]}
        expected = tuple(params.get("expected_states") or ("work",))
        failures = {}
        result = None
        if names:
            result = wait_for_wave(names, health_check_fn(client, urls, expected, params.get("target_version")),
                                   min_stable_time=float(params.get("min_healthy_time") or 0.0), success_threshold=1.0,
                                   deadline=float(wave.get("timeout") or DEFAULT_WAVE_TIMEOUT),
                                   poll_interval=float(params.get("poll_interval") or 1.0), grace=0.0,
                                   clock=monotonic, sleep=sleep)
            ok = [{"host": n, "result": "awake", "version_after": result["agents"][n].get("version"),
                   "detail": "cognitive_state %s" % result["agents"][n].get("cognitive_state")} for n in result["stable"]]
            for n, cause in result["unstable"].items():
                failures[n] = "not %s within %ss: %s" % ("|".join(expected), _secs(wave.get("timeout") or DEFAULT_WAVE_TIMEOUT), cause)
            store.set_results(deployment_id, ok + [{"host": n, "result": "unhealthy", "detail": d} for n, d in failures.items()])
        agent_id = dep["params"]["agent_id"]
        stop_reason = None
        if failures and wave["name"] in (EXPLORER, EARLY_ADOPTER):
            stop_reason = "%s wave unhealthy: %s" % (wave["name"], "; ".join("%s %s" % kv for kv in sorted(failures.items())))
        if index == 1 and not failures:
            explorer = wave["members"][0]
            store.record_shared_decision(agent_id, deployment_id, WAKEUP, "completed", None, explorer["name"],
                                         "explorer reached %s" % "|".join(expected))
        status = "passed" if not failures else ("failed" if stop_reason else "partial")
        store.wave_finished(deployment_id, index, status, {"failures": failures, "stop_reason": stop_reason,
                                                           "gated": names, "elapsed": result["elapsed"] if result else 0})
        finished = False
        outcome = None
        if stop_reason:
            outcome = "wakeup stopped at wave %d (%s): %s; the later waves are left down" % (index, wave["name"], stop_reason)
            _finish_abort(store, deployment_id, outcome)
            _mark_left_down(store, deployment_id)
            finished = True
        elif index == len(plan):
            all_failures = _all_failures(store, deployment_id)
            outcome = ("completed with failures: %s" % "; ".join("%s %s" % kv for kv in sorted(all_failures.items()))
                       if all_failures else "all occurrences of %s awake" % agent_id)
            store.set_status(deployment_id, "failed" if all_failures else "completed", outcome)
            finished = True
        report, path = _write(store, params, deployment_id, {"outcome": outcome} if outcome else None,
                              [{"event": "wave_" + status, "wave": index, "name": wave["name"], "failures": failures}])
        out = {"changed": False, "skipped": False, "wave": index, "name": wave["name"], "status": status,
               "aborted": bool(stop_reason), "finished": finished, "failures": failures, "outcome": outcome,
               "deployment_id": deployment_id, "report_path": path,
               "line": "wave %d %s: %d awake, %d unhealthy%s" % (index, wave["name"], len(names) - len(failures),
                                                                 len(failures), (" -> STOP: %s" % stop_reason) if stop_reason else "")}
        if finished:
            out["report"] = report
            out["failed_occurrences"] = sorted(_all_failures(store, deployment_id))
            if out["failed_occurrences"] and (stop_reason or params.get("fail_on_partial", True)):
                out["should_fail"] = True
        return out
    finally:
        if close:
            client.close()
        if own_store:
            store.close()


def wakeup_abort(params, check_mode=False, store=None):
    """The update driver failed to start a wave: record the occurrences it was
    starting (``hosts``) as failed with ``reason``, close the deployment
    failed (later waves left down) and write the report.
    """
    index = int(params["wave"])
    if check_mode:
        return {"changed": False, "skipped": True, "wave": index, "aborted": True, "finished": True,
                "line": "wave %d: would record the failed start" % index}
    own_store = store is None
    store = store if store is not None else _open(params)
    try:
        dep = store.get_deployment(params["deployment_id"])
        if dep is None:
            raise ShutdownError("no deployment %s: run the prepare step first" % params["deployment_id"])
        deployment_id = dep["deployment_id"]
        plan = dep["plan"]
        if index < 1 or index > len(plan):
            raise ShutdownError("deployment %s has %d waves, no wave %d" % (deployment_id, len(plan), index))
        wave = plan[index - 1]
        hosts = list(params.get("hosts") or [])
        cause = params.get("reason") or "the update driver failed"
        failures = {h: cause for h in hosts}
        if hosts:
            store.set_results(deployment_id, [{"host": h, "result": "failed", "detail": cause} for h in hosts])
        stop_reason = "%s wave could not be started (%s): %s" % (wave["name"], ", ".join(hosts) or "no occurrence", cause)
        outcome = "wakeup stopped at wave %d (%s): %s; the later waves are left down" % (index, wave["name"], stop_reason)
        store.wave_finished(deployment_id, index, "failed", {"failures": failures, "stop_reason": stop_reason})
        _finish_abort(store, deployment_id, outcome)
        _mark_left_down(store, deployment_id)
        report, path = _write(store, params, deployment_id, {"outcome": outcome},
                              [{"event": "wave_failed", "wave": index, "name": wave["name"], "failures": failures}])
        return {"changed": True, "skipped": False, "wave": index, "name": wave["name"], "status": "failed", "aborted": True,
                "finished": True, "failures": failures, "outcome": outcome, "deployment_id": deployment_id,
                "report_path": path, "report": report, "failed_occurrences": sorted(_all_failures(store, deployment_id)),
                "should_fail": True, "line": "wave %d %s: start failed -> STOP: %s" % (index, wave["name"], stop_reason)}
    finally:
        if own_store:
            store.close()


def _last_known_versions(store, dep):
    """The version each occurrence last ran, from the newest shutdown plans of this fleet key."""
    out = {}
    for other in store.list_deployments(fleet_key=dep["fleet_key"], limit=20):
        for wave in other.get("plan") or []:
            for m in wave.get("members") or []:
                if m.get("version") and m["name"] not in out:
                    out[m["name"]] = m["version"]
    return out


def _mark_left_down(store, deployment_id):
    rows = [r for r in store.agents(deployment_id) if r["result"] == "not_touched"]
    if rows:
        store.set_results(deployment_id, [{"host": r["host"], "result": "left_down", "detail": "wakeup stopped before its wave"} for r in rows])
