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
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import format_table
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import health_check_fn
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import wait_for_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import TransportError
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import join_url
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import append_audit
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import utcnow_iso
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import write_report
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import RolloutError
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import begin
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import build_reason
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout import build_report
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

# the health gate's options, shared by health_gate and rollout_wave (doc fragment agentfleet.rollout.gate)
GATE_OPTIONS = dict(
    expected_states=dict(type="list", elements="str", default=["work"]),
    min_healthy_time=dict(type="float", default=10.0),
    healthy_deadline=dict(type="float", default=300.0),
    poll_interval=dict(type="float", default=1.0),
    grace=dict(type="float"),
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
    wave=dict(type="int"),
    wave_name=dict(type="str"),
    wave_count=dict(type="int"),
    notify_counts=dict(type="dict", default={}),
    success_threshold=dict(type="float", default=0.8),
    gate=dict(type="dict"),
    updated_hosts=dict(type="list", elements="str", default=[]),
    reverted_hosts=dict(type="list", elements="str", default=[]),
    results=dict(type="list", elements="dict", default=[]),
    hosts=dict(type="list", elements="str", default=[]),
    result=dict(type="str", choices=["updated", "deferred", "rejected", "failed", "reverted", "skipped"]),
    detail=dict(type="str"),
    status=dict(type="str", choices=["completed", "failed", "aborted", "paused"]),
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

FLEETSIM_START_SPEC = connection_spec(
    agents=AGENT_SPEC,
    version=dict(type="str"),
    control_url=dict(type="str", required=True),
)


def decision_auditor(audit_path, deployment_id, agents, secrets):
    """An ``on_answers`` callback writing one audit line per decision (or None without an audit path)."""
    if not audit_path:
        return None
    members = dict((a["name"], a) for a in agents)

    def audit(round_answers):
        lines = []
        for name, ans in round_answers.items():
            m = members.get(name, {})
            lines.append({"event": "decision", "deployment_id": deployment_id, "host": name,
                          "agent_id": m.get("agent_id"), "cohort": m.get("cohort"), "wave": m.get("wave"),
                          "decision": ans.get("decision"), "reason": ans.get("reason"),
                          "defer_until": utcnow_iso(ans["defer_until"]) if ans.get("defer_until") else None,
                          "http_status": ans.get("http_status")})
        append_audit(audit_path, lines, secrets)

    return audit


def run_notify(params, check_mode=False, clock=time.time, sleep=time.sleep):
    agents = params["agents"]
    validate_agent_urls(agents)
    reason = params.get("reason") or build_reason(
        params["target_version"], params["deployment_id"], params.get("release_notes"), params.get("wave_name"),
        params.get("wave_index"), params.get("wave_count"), params.get("previous_waves"), params.get("force"),
        params.get("strategy") or "canary",
    )
    store = open_store(params["state_path"]) if params.get("state_path") and not check_mode else None
    audit = decision_auditor(params.get("audit_path"), params["deployment_id"], agents, token_secrets(params))
    try:
        with client_from_params(params) as client:
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


def validate_gate_params(params):
    threshold = params.get("success_threshold")
    if threshold is None or not 0.0 <= threshold <= 1.0:
        raise ValueError("success_threshold must be between 0 and 1, got %r" % threshold)
    for key in ("min_healthy_time", "healthy_deadline", "poll_interval"):
        if params.get(key) is not None and params[key] < 0:
            raise ValueError("%s must not be negative" % key)


def gate_agents(client, agents, params, target_version=None, clock=time.monotonic, sleep=time.sleep):
    """Wait for ``agents`` to be stable (the health gate); returns the waiter's result plus a cause table."""
    urls = dict((a["name"], a["agent_url"]) for a in agents)
    check = health_check_fn(client, urls, params.get("expected_states") or ["work"], target_version)
    result = wait_for_wave(
        [a["name"] for a in agents], check, min_stable_time=params["min_healthy_time"],
        success_threshold=params["success_threshold"], deadline=params["healthy_deadline"],
        poll_interval=params["poll_interval"] or 0.5, grace=params.get("grace"), clock=clock, sleep=sleep,
    )
    result["table"] = format_table(result)
    result["ratio"] = round(result["stable_count"] / float(result["total"]), 4) if result["total"] else 1.0
    return result


def run_gate(params, check_mode=False, clock=time.monotonic, sleep=time.sleep):
    agents = params["agents"]
    validate_agent_urls(agents)
    validate_gate_params(params)
    if check_mode:
        return {"changed": False, "passed": True, "skipped": True, "msg": "check mode: gate not waited for",
                "stable": [], "unstable": {}, "agents": {}, "total": len(agents), "stable_count": 0,
                "required": 0, "elapsed": 0.0, "reason": "check mode", "table": []}
    with client_from_params(params) as client:
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
                         promote=params.get("promote"), check_mode=True)
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
                        promote=params.get("promote"), takeover=params.get("takeover"))
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
                                  counts=params.get("notify_counts") or {}, gate_skipped=params.get("gate") is None,
                                  audit_path=params.get("audit_path"), secrets=secrets)
            return {"changed": True, "summary": summary, "line": summary["line"], "passed": summary["passed"]}
        if op == "finish":
            store.set_status(dep_id, params["status"], params.get("status_reason"))
            report = build_report(store, dep_id)
            if params.get("report_path"):
                write_report(params["report_path"], report, secrets)
            if params.get("audit_path"):
                append_audit(params["audit_path"], {"event": "deployment_" + params["status"], "deployment_id": dep_id,
                                                    "totals": report["totals"], "message": params.get("status_reason")}, secrets)
            return {"changed": True, "report": report, "summary_table": summary_table(report),
                    "report_path": params.get("report_path")}
        if op == "status":
            report = build_report(store, dep_id)
            return {"changed": False, "report": report, "summary_table": summary_table(report)}
    raise ValueError("unknown op %s" % op)


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
