# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Health gate options shared by health_gate and rollout_wave (``_health.GATE_OPTIONS``)."""

    DOCUMENTATION = r"""
options:
  expected_states:
    description: The C(cognitive_state) values that count as healthy.
    type: list
    elements: str
    default: [work]
  min_healthy_time:
    description: Seconds an agent must be healthy on every probe to count as stable.
    type: float
    default: 10.0
  healthy_deadline:
    description: Seconds after which the gate ends whatever the agents' state.
    type: float
    default: 300.0
  poll_interval:
    description: Seconds between probes of the agents not yet stable (V(0) means 0.5).
    type: float
    default: 1.0
  health_check:
    description:
      - How an agent's health is judged (the update block's C(health_check)).
      - V(checks) - its health checks pass (C(status) C(healthy)) and its C(cognitive_state) is one of O(expected_states).
      - V(agent_states) - by its reported state only - it answers, has finished initializing (C(initialization_complete)
        not false) and its C(cognitive_state) is one of O(expected_states), whatever its C(status) (for example C(degraded)).
      - Both require the target version when one is given.
    type: str
    default: checks
    choices: [checks, agent_states]
  fail_fast_after:
    description:
      - Seconds an agent may report C(status) C(critical) on every probe before it is failed at once, without
        waiting for O(healthy_deadline) (a CIRIS agent whose configured adapters failed to load reports it).
      - An agent that reports C(cognitive_state) C(wakeup_error) (a rejected wakeup step, it never recovers by
        waiting) is failed on that probe.
      - The C(critical) status is looked at with O(health_check=checks) only; C(wakeup_error) with both.
      - The gate ends as soon as the agents failed this way leave too few to meet the threshold.
    type: float
    default: 10.0
  blocking_warnings:
    description:
      - Warning codes of the agent's health (C(data.warnings[].code)) that make it unhealthy while it reports one.
      - V([]) ignores the warnings.
    type: list
    elements: str
    default: [adapters_failed_to_load, adapters_config_stale, shared_task_stranded, shared_claim_not_persisted, wakeup_step_rejected]
  grace:
    description:
      - Once the threshold is met, seconds to keep waiting for the remaining agents before the gate ends.
      - When not set, every agent is watched until it is stable or O(healthy_deadline) ends, also once the threshold
        is met (a slow agent is not given up early; an agent is judged not stable only at the deadline).
    type: float
"""
