# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One rollout wave, in one call: ask -> update (controller-side driver) -> gate -> record.

The flow lives here once. ``phase: all`` runs it whole for the drivers that
act from the controller (``none``, ``fleetsim``); the ``tasks`` driver runs
the user's Ansible tasks between ``phase: ask`` and ``phase: settle`` (and,
for a revert, before ``phase: finish``). Between phases the data travels
through the rollout state, not through the playbook.
"""

from __future__ import annotations

import time

from ansible_collections.agentfleet.rollout.plugins.module_utils._common import client_from_params
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import connection_spec
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import token_secrets
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import validate_agent_urls
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import ACCEPT
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import RolloutError
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import build_reason
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import judge_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import notify_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import record_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import start_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import wave_counts
from ansible_collections.agentfleet.rollout.plugins.module_utils._runners import decision_auditor
from ansible_collections.agentfleet.rollout.plugins.module_utils._runners import GATE_OPTIONS
from ansible_collections.agentfleet.rollout.plugins.module_utils._runners import fleetsim_start
from ansible_collections.agentfleet.rollout.plugins.module_utils._runners import gate_agents
from ansible_collections.agentfleet.rollout.plugins.module_utils._runners import validate_gate_params
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import open_store

PHASES = ("all", "ask", "settle", "finish")
CONTROLLER_DRIVERS = ("none", "fleetsim")

WAVE_SPEC = connection_spec(
    state_path=dict(type="path", required=True),
    deployment_id=dict(type="str", required=True),
    wave=dict(type="dict", required=True),
    wave_count=dict(type="int", required=True),
    phase=dict(type="str", default="all", choices=list(PHASES)),
    strategy=dict(type="str", default="canary"),
    release_notes=dict(type="str"),
    force=dict(type="bool", default=False),
    reask_until=dict(type="float"),
    audit_path=dict(type="path"),
    driver=dict(type="str", default="none", choices=["none", "fleetsim", "tasks"]),
    control_url=dict(type="str"),
    require_target_version=dict(type="bool", default=True),
    success_threshold=dict(type="float", default=0.8),
    auto_revert=dict(type="bool", default=False),
    gate=dict(type="dict"),
    reverted_hosts=dict(type="list", elements="str", default=[]),
    **GATE_OPTIONS
)
WAVE_REQUIRED_IF = [["driver", "fleetsim", ["control_url"]], ["phase", "finish", ["gate"]]]


def _members(wave):
    members = wave.get("members") or []
    for m in members:
        if not isinstance(m, dict) or not m.get("name"):
            raise ValueError("every wave member needs a name")
    validate_agent_urls(members)
    return members


def _gate_set(store, deployment_id, wave, members):
    """The agents to gate: those that accepted and were updated (not failed to start)."""
    rows = dict((r["host"], r) for r in store.agents(deployment_id, wave=wave))
    out = []
    for m in members:
        row = rows.get(m["name"]) or {}
        if row.get("decision") == ACCEPT and row.get("result") == "updated":
            agent = dict(m)
            agent["version_before"] = row.get("version_before")
            agent["version"] = row.get("version_before")
            out.append(agent)
    return out


def _finish(store, params, deployment_id, wave, dep, gate, gated, reverted_hosts, secrets):
    summary = record_wave(store, deployment_id, wave["index"], wave["name"], params["wave_count"], dep["target_version"],
                          gate, [a["name"] for a in gated], reverted_hosts, success_threshold=params["success_threshold"],
                          audit_path=params.get("audit_path"), secrets=secrets)
    return {"changed": True, "phase_done": "finish", "summary": summary, "line": summary["line"],
            "passed": summary["passed"], "halt_reason": summary["halt_reason"],
            "table": (gate or {}).get("table") or [] if not summary["passed"] else []}


def run_wave(params, check_mode=False, clock=time.time, monotonic=time.monotonic, sleep=time.sleep):
    """Run ``params["phase"]`` of one wave; see the module documentation of ``rollout_wave``."""
    if check_mode:
        return {"changed": True, "skipped": True, "msg": "check mode: the wave is not run"}
    validate_gate_params(params)
    phase = params["phase"]
    if phase == "all" and params["driver"] not in CONTROLLER_DRIVERS:
        raise ValueError("phase=all needs a controller-side driver (%s); the tasks driver runs phases ask, settle and finish"
                         % ", ".join(CONTROLLER_DRIVERS))
    wave = params["wave"]
    members = _members(wave)
    deployment_id = params["deployment_id"]
    secrets = token_secrets(params)
    with open_store(params["state_path"]) as store, client_from_params(params) as client:
        dep = store.get_deployment(deployment_id)
        if dep is None:
            raise RolloutError("unknown deployment %s in %s" % (deployment_id, params["state_path"]))
        target = dep["target_version"]
        out = {"changed": True}
        if phase in ("all", "ask"):
            previous = start_wave(store, deployment_id, wave["index"], wave["name"], params.get("audit_path"), secrets)
            reason = build_reason(target, deployment_id, params.get("release_notes"), wave["name"], wave["index"],
                                  params["wave_count"], previous, params["force"], params["strategy"])
            asked = notify_wave(client, members, deployment_id, target, reason, force=params["force"], store=store,
                                reask_until=params.get("reask_until"), clock=clock, sleep=sleep,
                                on_answers=decision_auditor(params.get("audit_path"), deployment_id, members, secrets))
            out.update(counts=asked["counts"], update_agents=asked["update_agents"], asked=asked["asked"], reason=reason)
            if phase == "ask":
                out["phase_done"] = "ask"
                return out
            # the update driver, from the controller
            updating = asked["update_agents"]
            if updating and params["driver"] == "fleetsim":
                started, failed = fleetsim_start(client, params["control_url"], updating, target)
            else:
                started, failed = [a["name"] for a in updating], {}
            store.set_results(deployment_id, [{"host": h, "result": "updated"} for h in started]
                              + [{"host": h, "result": "failed", "detail": "update driver fleetsim: %s" % err}
                                 for h, err in failed.items()])
        if phase == "finish":
            gated = _gate_set(store, deployment_id, wave["index"], members)
            return _finish(store, params, deployment_id, wave, dep, params["gate"], gated, params["reverted_hosts"], secrets)
        # settle: gate the updated agents and judge the wave
        gated = _gate_set(store, deployment_id, wave["index"], members)
        gate = gate_agents(client, gated, params, target if params["require_target_version"] else None,
                           clock=monotonic, sleep=sleep)
        passed = judge_wave(gate, wave_counts(store, deployment_id, wave["index"]), params["success_threshold"])[0]
        revertable = [a for a in gated if a.get("version")]
        if not passed and params["auto_revert"] and revertable:
            if phase == "settle":
                # the tasks driver puts them back, then phase=finish records the wave
                out.update(phase_done="settle", needs_revert=True, revert_agents=revertable, gate=gate, passed=False)
                return out
            reverted = []
            if params["driver"] == "fleetsim":
                reverted, dummy = fleetsim_start(client, params["control_url"], revertable)
            out.update(_finish(store, params, deployment_id, wave, dep, gate, gated, reverted, secrets))
            out["revert_note"] = None if reverted else "driver %s cannot start a previous version: nothing reverted" % params["driver"]
            return out
        out.update(_finish(store, params, deployment_id, wave, dep, gate, gated, [], secrets))
        out["needs_revert"] = False
        out["gate"] = gate
        return out
