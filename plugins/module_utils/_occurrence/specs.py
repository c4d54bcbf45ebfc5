# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs of ``occurrence_plan``, ``occurrence_shutdown`` and ``occurrence_wakeup``.

Shared by each module and its controller-side action plugin (the engine
modules of this package never import them).
"""

from __future__ import annotations

from ansible_collections.agentfleet.rollout.plugins.module_utils._common import connection_spec
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import DEFAULT_DELAYS
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import DEFAULT_MAX_AGE
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import DEFAULT_STATE_PATH
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import DEFAULT_STOP_TIMEOUT
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import DEFAULT_WAVE_TIMEOUT
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import KINDS
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import SHUTDOWN

_STATE_OPTIONS = dict(
    state_path=dict(type="path", default=DEFAULT_STATE_PATH),
    report_path=dict(type="path"),
    audit_path=dict(type="path"),
)

PLAN_SPEC = connection_spec(
    members=dict(type="list", elements="dict"),
    group=dict(type="str"),
    hosts=dict(type="list", elements="str"),
    limit=dict(type="str"),
    purpose=dict(type="str", default=SHUTDOWN, choices=list(KINDS)),
    agent_id=dict(type="str"),
    discovery=dict(type="str", default="inventory", choices=["inventory", "health"]),
    probe=dict(type="bool", default=True),
    method=dict(type="str", default="sorted", choices=["sorted", "stable"]),
    salt=dict(type="str", default=""),
    reason=dict(type="str"),
    wave_delays=dict(type="list", elements="float", default=list(DEFAULT_DELAYS)),
    wave_timeout=dict(type="float", default=DEFAULT_WAVE_TIMEOUT),
    stop_timeout=dict(type="float", default=DEFAULT_STOP_TIMEOUT),
    min_serving_fraction=dict(type="float", default=0.0),
    allow_below_floor=dict(type="bool", default=False),
)

SHUTDOWN_SPEC = connection_spec(
    step=dict(type="str", required=True, choices=["decide", "wave"]),
    plan=dict(type="dict"),
    deployment_id=dict(type="str", required=True),
    max_age=dict(type="float", default=DEFAULT_MAX_AGE),
    stop_timeout=dict(type="float", default=DEFAULT_STOP_TIMEOUT),
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
