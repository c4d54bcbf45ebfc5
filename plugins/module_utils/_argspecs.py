# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The argument specs of the engine's modules and their action plugins.

notify, health_gate, deployment, deployment_info, rollout_state and rollout_wave: the
options each accepts (``ansible-test sanity`` compares these with the modules' DOCUMENTATION)
and the rules between them (``required_if``). The entry points that take the validated
parameters are ``_runners``' (``run_wave`` is ``_wave``'s); nothing here runs anything.
"""

from __future__ import annotations

from typing import Any
from typing import Dict
from typing import List

from ansible_collections.agentfleet.rollout.plugins.module_utils._common import AGENT_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import connection_spec
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import GATE_OPTIONS

NOTIFY_SPEC: Dict[str, Dict[str, Any]] = connection_spec(
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

GATE_SPEC: Dict[str, Dict[str, Any]] = connection_spec(
    agents=AGENT_SPEC,
    target_version=dict(type="str"),
    success_threshold=dict(type="float", default=0.8),
    fail_on_unhealthy=dict(type="bool", default=True),
    **GATE_OPTIONS
)

DEPLOYMENT_STATES = ("running", "staged", "closed", "completed", "completed_with_failures", "failed", "aborted", "paused",
                     "cancelled", "present", "resumed", "promoted", "rolled_back")
# the states an operator brings about (docs/lifecycle.md), by key or deployment id
OPERATOR_STATES = ("paused", "failed")
DEPLOYMENT_SPEC: Dict[str, Dict[str, Any]] = connection_spec(
    state_path=dict(type="path", required=True),
    state=dict(type="str", default="running", choices=list(DEPLOYMENT_STATES)),
    deployment_id=dict(type="str"),
    fleet_key=dict(type="str", no_log=False),
    strategy=dict(type="str", default="canary"),
    target_version=dict(type="str"),
    waves=dict(type="list", elements="dict"),
    params=dict(type="dict", default={}),
    promote=dict(type="bool", default=False),
    takeover=dict(type="bool", default=False),
    play_hosts=dict(type="list", elements="str"),
    limit=dict(type="str"),
    status_reason=dict(type="str"),
    report_path=dict(type="path"),
    audit_path=dict(type="path"),
    deployment_key=dict(type="str", no_log=False),
    reason=dict(type="str"),
    actor=dict(type="str"),
    policy=dict(type="dict", default={}),
    rollback_to=dict(type="int"),
    auto_revert=dict(type="bool", default=False),
    driver=dict(type="str", default="none", choices=["none", "tasks", "docker"]),
    revert_wait=dict(type="float", default=60.0),
    lock_ttl=dict(type="float"),
    break_lock_reason=dict(type="str"),
)
DEPLOYMENT_REQUIRED_IF: List[List[Any]] = [
    ["state", "running", ["fleet_key"]],
    ["state", "staged", ["fleet_key", "deployment_id", "target_version"]],
    ["state", "present", ["fleet_key", "deployment_id", "target_version"]],
    ["state", "resumed", ["fleet_key"]],
    ["state", "promoted", ["fleet_key"]],
    ["state", "rolled_back", ["fleet_key"]],
    ["state", "paused", ["deployment_id", "deployment_key"], True],
    ["state", "failed", ["deployment_id", "deployment_key"], True],
    *(["state", closed, ["deployment_id"]] for closed in ("closed", "completed", "completed_with_failures", "aborted",
                                                          "cancelled")),
]

DEPLOYMENT_INFO_SPEC: Dict[str, Dict[str, Any]] = dict(
    state_path=dict(type="path", required=True),
    deployment_id=dict(type="str"),
    fleet_key=dict(type="str", no_log=False),
    deployment_key=dict(type="str", no_log=False),
    version=dict(type="int"),
    max_deployments=dict(type="int", default=50),
)

STATE_SPEC: Dict[str, Dict[str, Any]] = dict(
    state_path=dict(type="path", required=True),
    op=dict(type="str", required=True, choices=["wave_start", "mark", "wave_done"]),
    deployment_id=dict(type="str", required=True),
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
    audit_path=dict(type="path"),
)
STATE_REQUIRED_IF: List[List[Any]] = [
    ["op", "wave_start", ["wave"]],
    ["op", "wave_done", ["wave", "wave_name"]],
]

WAVE_SPEC: Dict[str, Dict[str, Any]] = connection_spec(
    state_path=dict(type="path", required=True),
    deployment_id=dict(type="str", required=True),
    wave=dict(type="dict", required=True),
    wave_count=dict(type="int", required=True),
    last=dict(type="bool", default=False),
    next_wave=dict(type="dict"),
    phase=dict(type="str", default="all", choices=["all", "ask", "round", "finish", "candidates", "retire"]),
    strategy=dict(type="str", default="canary"),
    release_notes=dict(type="str"),
    force=dict(type="bool", default=False),
    reask_until=dict(type="float"),
    stop_timeout=dict(type="float", default=600.0),
    audit_path=dict(type="path"),
    report_path=dict(type="path"),
    driver=dict(type="str", default="none", choices=["none", "tasks", "docker"]),
    require_target_version=dict(type="bool", default=True),
    success_threshold=dict(type="float", default=0.8),
    auto_revert=dict(type="bool", default=False),
    round=dict(type="dict", default={}),
    update_hosts=dict(type="list", elements="str", default=[]),
    update_failed=dict(type="dict", default={}),
    driver_results=dict(type="dict", default={}),
    gate=dict(type="dict"),
    reverted_hosts=dict(type="list", elements="str", default=[]),
    progress_deadline=dict(type="float", default=0.0),
    candidate_urls=dict(type="dict", default={}),
    analysis=dict(type="list", elements="dict", default=[]),
    telemetry_check=dict(type="bool", default=False),
    **GATE_OPTIONS
)
WAVE_REQUIRED_IF: List[List[Any]] = [["phase", "finish", ["gate"]], ["phase", "round", ["round"]]]
