# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs and entry points shared by each module and its action plugin.

``run_<name>(params, check_mode)`` takes validated parameters and returns the
result dict; both the module's ``main()`` and the controller-side action
plugin call it, so the two cannot drift apart.
"""

from __future__ import annotations

import os
import time

from ansible_collections.agentfleet.rollout.plugins.module_utils._common import AGENT_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import client_from_params
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import connection_spec
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import token_secrets
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import validate_agent_urls
from ansible_collections.agentfleet.rollout.plugins.module_utils._drivers import fleetsim_start
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import GATE_OPTIONS
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import gate_agents
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import validate_gate_params
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import decision_auditor
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import append_audit
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import RolloutError
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import begin
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import build_reason
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import build_report
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import close_deployment
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import notify_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import record_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import start_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import summary_table
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateError
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import open_store

ENGINE_ERRORS = (RolloutError, StateError, ValueError)

NOTIFY_SPEC = connection_spec(
    agents=AGENT_SPEC,
    deployment_id=dict(type="str", required=True),
    target_version=dict(type="str", required=True),
    reason=dict(type="str"),
    release_notes=dict(type="str"),
    strategy=dict(type="str", default="canary"),
    wave_name=dict(type="str"),
    wave_index=dict(type="int"),
    wave_count=dict(type="int"),
    previous_waves=dict(type="list", elements="str", default=[]),
    force=dict(type="bool", default=False),
    scope=dict(type="str", choices=["occurrence", "all_occurrences"]),
    decision_ref=dict(type="str"),
    skip_if_on_target=dict(type="bool", default=True),
    reask_until=dict(type="float"),
    state_path=dict(type="path"),
    audit_path=dict(type="path"),
)

GATE_SPEC = connection_spec(
    agents=AGENT_SPEC,
    target_version=dict(type="str"),
    success_threshold=dict(type="float", default=0.8),
    fail_on_unhealthy=dict(type="bool", default=True),
    **GATE_OPTIONS
)

STATE_SPEC = dict(
    state_path=dict(type="path", required=True),
    op=dict(type="str", required=True, choices=["begin", "wave_start", "mark", "wave_done", "finish", "status"]),
    deployment_id=dict(type="str"),
    fleet_key=dict(type="str", no_log=False),
    strategy=dict(type="str", default="canary"),
    target_version=dict(type="str"),
    waves=dict(type="list", elements="dict"),
    params=dict(type="dict", default={}),
    stage=dict(type="bool", default=False),
    promote=dict(type="bool", default=False),
    takeover=dict(type="bool", default=False),
    play_hosts=dict(type="list", elements="str"),
    limit=dict(type="str"),
    wave=dict(type="int"),
    wave_name=dict(type="str"),
    wave_count=dict(type="int"),
    success_threshold=dict(type="float", default=0.8),
    gate=dict(type="dict"),
    updated_hosts=dict(type="list", elements="str", default=[]),
    reverted_hosts=dict(type="list", elements="str", default=[]),
    results=dict(type="list", elements="dict", default=[]),
    hosts=dict(type="list", elements="str", default=[]),
    result=dict(type="str", choices=["updated", "deferred", "rejected", "failed", "reverted", "skipped"]),
    detail=dict(type="str"),
    status=dict(type="str", choices=["completed", "completed_with_failures", "failed", "aborted", "paused"]),
    status_reason=dict(type="str"),
    report_path=dict(type="path"),
    audit_path=dict(type="path"),
)
STATE_REQUIRED_IF = [
    ["op", "begin", ["fleet_key"]],
    ["op", "wave_start", ["deployment_id", "wave"]],
    ["op", "mark", ["deployment_id"]],
    ["op", "wave_done", ["deployment_id", "wave", "wave_name"]],
    ["op", "finish", ["deployment_id", "status"]],
]

WAVE_SPEC = connection_spec(
    state_path=dict(type="path", required=True),
    deployment_id=dict(type="str", required=True),
    wave=dict(type="dict", required=True),
    wave_count=dict(type="int", required=True),
    last=dict(type="bool", default=False),
    phase=dict(type="str", default="all", choices=["all", "ask", "settle", "finish"]),
    strategy=dict(type="str", default="canary"),
    release_notes=dict(type="str"),
    force=dict(type="bool", default=False),
    reask_until=dict(type="float"),
    stop_timeout=dict(type="float", default=600.0),
    audit_path=dict(type="path"),
    report_path=dict(type="path"),
    driver=dict(type="str", default="none", choices=["none", "fleetsim", "tasks"]),
    control_url=dict(type="str"),
    require_target_version=dict(type="bool", default=True),
    success_threshold=dict(type="float", default=0.8),
    auto_revert=dict(type="bool", default=False),
    update_hosts=dict(type="list", elements="str", default=[]),
    update_failed=dict(type="dict", default={}),
    gate=dict(type="dict"),
    reverted_hosts=dict(type="list", elements="str", default=[]),
    **GATE_OPTIONS
)
WAVE_REQUIRED_IF = [["driver", "fleetsim", ["control_url"]], ["phase", "finish", ["gate"]]]
FLEETSIM_START_SPEC = connection_spec(
    agents=AGENT_SPEC,
    version=dict(type="str"),
    control_url=dict(type="str", required=True),
)


def run_notify(params, check_mode=False, clock=time.time, sleep=time.sleep, run=None):
    """The notify module; with a :class:`._run.Run` every request and wait checks it first."""
    agents = params["agents"]
    sleep = run.sleep if run is not None else sleep
    validate_agent_urls(agents)
    reason = params.get("reason") or build_reason(
        params["target_version"], params["deployment_id"], params.get("release_notes"), params.get("wave_name"),
        params.get("wave_index"), params.get("wave_count"), params.get("previous_waves"), params.get("force"),
        params.get("strategy") or "canary",
    )
    store = open_store(params["state_path"]) if params.get("state_path") and not check_mode else None
    audit = decision_auditor(params.get("audit_path"), params["deployment_id"], agents, token_secrets(params))
    try:
        with client_from_params(params, run=run) as client:
            result = notify_wave(
                client, agents, params["deployment_id"], params["target_version"], reason,
                force=params.get("force"), scope=params.get("scope"), decision_ref=params.get("decision_ref"),
                store=store, reask_until=params.get("reask_until"), skip_if_on_target=params.get("skip_if_on_target", True),
                check_mode=check_mode, clock=clock, sleep=sleep, on_answers=audit,
            )
    finally:
        if store is not None:
            store.close()
    result["reason"] = reason
    return result


def run_gate(params, check_mode=False, clock=time.monotonic, sleep=time.sleep, run=None):
    """The health_gate module; with a :class:`._run.Run` every probe and wait checks it first."""
    agents = params["agents"]
    sleep = run.sleep if run is not None else sleep
    validate_agent_urls(agents)
    validate_gate_params(params)
    if check_mode:
        return {"changed": False, "passed": True, "skipped": True, "msg": "check mode: gate not waited for",
                "stable": [], "unstable": {}, "agents": {}, "total": len(agents), "stable_count": 0,
                "required": 0, "elapsed": 0.0, "reason": "check mode", "table": []}
    with client_from_params(params, run=run) as client:
        result = gate_agents(client, agents, params, params.get("target_version"), clock=clock, sleep=sleep)
    result["changed"] = False
    if not result["passed"] and params.get("fail_on_unhealthy", True):
        result["failed"] = True
        result["msg"] = "health gate failed: %d/%d stable, %d required (%s)\n%s" % (
            result["stable_count"], result["total"], result["required"], result["reason"], "\n".join(result["table"]))
    return result


def run_state(params, check_mode=False):
    op = params["op"]
    secrets = []
    if op in ("begin", "status") and check_mode:
        # read-only: a state file that does not exist yet is not created
        store = None
        if os.path.exists(params["state_path"]):
            try:
                store = open_store(params["state_path"])
            except StateError:
                store = None
        if op == "status":
            try:
                if store is None or store.get_deployment(params.get("deployment_id")) is None:
                    return {"changed": False, "report": None, "summary_table": []}
                report = build_report(store, params["deployment_id"])
                return {"changed": False, "report": report, "summary_table": summary_table(report)}
            finally:
                if store is not None:
                    store.close()
        try:
            return begin(store, params.get("deployment_id"), params["fleet_key"], params["strategy"],
                         params.get("target_version"), params.get("waves") or [], params.get("params") or {},
                         promote=params.get("promote"), check_mode=True, hosts=params.get("play_hosts"),
                         limit=params.get("limit"))
        finally:
            if store is not None:
                store.close()
    if check_mode:
        return {"changed": False, "msg": "check mode: state not written"}
    with open_store(params["state_path"]) as store:
        dep_id = params.get("deployment_id")
        if op == "begin":
            if not params.get("promote"):
                if not dep_id:
                    raise ValueError("deployment_id is required to begin a deployment")
                if not params.get("target_version"):
                    raise ValueError("target_version is required to begin a deployment")
            out = begin(store, dep_id, params["fleet_key"], params["strategy"], params.get("target_version"),
                        params.get("waves") or [], params.get("params") or {}, stage=params.get("stage"),
                        promote=params.get("promote"), takeover=params.get("takeover"),
                        hosts=params.get("play_hosts"), limit=params.get("limit"))
            if params.get("audit_path") and out["mode"] != "complete":
                append_audit(params["audit_path"], {"event": "deployment_" + out["mode"], "deployment_id": out["deployment_id"],
                                                    "strategy": out.get("strategy"), "target_version": out["target_version"],
                                                    "waves": [(w["name"], w["size"]) for w in out["waves"]]}, secrets)
            return out
        if store.get_deployment(dep_id) is None:
            raise RolloutError("unknown deployment %s in %s" % (dep_id, params["state_path"]))
        if op == "wave_start":
            lines = start_wave(store, dep_id, params["wave"], params.get("wave_name"), params.get("audit_path"), secrets)
            return {"changed": True, "previous_waves": lines}
        if op == "mark":
            results = list(params.get("results") or [])
            if params.get("hosts"):
                if not params.get("result"):
                    raise ValueError("op=mark with hosts needs result")
                results += [{"host": h, "result": params["result"], "detail": params.get("detail")} for h in params["hosts"]]
            store.set_results(dep_id, results)
            store.heartbeat(dep_id)
            return {"changed": bool(results), "marked": len(results)}
        if op == "wave_done":
            dep = store.get_deployment(dep_id)
            summary = record_wave(store, dep_id, params["wave"], params["wave_name"], params.get("wave_count") or len(dep["plan"]),
                                  dep["target_version"], params.get("gate"), params.get("updated_hosts") or [],
                                  params.get("reverted_hosts") or [], success_threshold=params.get("success_threshold"),
                                  gate_skipped=params.get("gate") is None,
                                  audit_path=params.get("audit_path"), secrets=secrets)
            return {"changed": True, "summary": summary, "line": summary["line"], "passed": summary["passed"]}
        if op == "finish":
            summary = close_deployment(store, dep_id, halt_reason=params.get("status_reason"),
                                       report_path=params.get("report_path"), audit_path=params.get("audit_path"),
                                       secrets=secrets, status=params["status"])
            report = build_report(store, dep_id)
            return {"changed": True, "report": report, "summary_table": summary["summary_table"],
                    "report_path": params.get("report_path"), "deployment_summary": summary}
        if op == "status":
            report = build_report(store, dep_id)
            return {"changed": False, "report": report, "summary_table": summary_table(report)}
    raise ValueError("unknown op %s" % op)


def run_fleetsim_start(params, check_mode=False):
    """The ``fleetsim`` update driver as a module."""
    agents = params["agents"]
    if check_mode or not agents:
        missing = [a["name"] for a in agents if not (a.get("version") or params.get("version"))]
        if missing:
            raise ValueError("no version to start for: %s" % ", ".join(missing[:10]))
        return {"changed": bool(agents), "started": [], "failed_agents": {}}
    with client_from_params(params) as client:
        started, failed = fleetsim_start(client, params["control_url"], agents, params.get("version"))
    out = {"changed": True, "started": started, "failed_agents": failed}
    if failed:
        out["failed"] = True
        out["msg"] = "could not start %d agents: %s" % (len(failed), ", ".join("%s (%s)" % kv for kv in list(failed.items())[:10]))
    return out
