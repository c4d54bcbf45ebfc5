# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The update policy's effects on a run (the MirrorNeuron / Nomad update block).

Pure functions over a deployment's recorded plan and parameters: which waves a
run goes through (a canary that waits for promotion), the progress deadline of a
wave, and the health check mode. The plan itself is made by :mod:`._cohorts`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

# the update block's defaults (docs/strategies.md); progress_deadline is 0 (none) here because a wave's
# time includes the agents' own consent (rollout_stop_timeout, default 600 s)
POLICY_DEFAULTS: Dict[str, Any] = {
    "strategy": "rolling",
    "max_parallel": 1,
    "canary": 0,
    "min_healthy_time": 10,
    "healthy_deadline": 300,
    "progress_deadline": 0,
    "health_check": "checks",
    "auto_promote": False,
    "auto_revert": False,
}
HEALTH_CHECKS = ("checks", "agent_states")


def waves_to_run(plan: List[Dict[str, Any]], params: Optional[Mapping[str, Any]],
                 promote: bool = False) -> List[Dict[str, Any]]:
    """The waves of ``plan`` this run goes through.

    A deployment recorded with ``promote_after`` N (its canary wave, ``auto_promote`` false) that
    has not been promoted runs up to wave N, which is marked ``await_promotion``: when it passes,
    the deployment is staged, awaiting promotion (agentfleet.rollout.promote). ``promote`` (the
    promote playbook) and a deployment promoted before run every wave.
    """
    params = params or {}
    after = int(params.get("promote_after") or 0)
    if promote or not after or params.get("promoted"):
        return plan
    return [dict(w, await_promotion=True) if w["index"] == after else w for w in plan if w["index"] <= after]


def progress_deadline_at(started: float, progress_deadline: Optional[float]) -> Optional[float]:
    """When a wave started at ``started`` (a clock reading) has made no progress for too long, or None (no deadline)."""
    if not progress_deadline or progress_deadline <= 0:
        return None
    return started + float(progress_deadline)


def remaining(deadline_at: Optional[float], now: float, wait: float) -> Tuple[float, bool]:
    """``(seconds to wait, cut)``: ``wait`` capped by the progress deadline, and whether the deadline cut it."""
    if deadline_at is None:
        return wait, False
    left = max(0.0, deadline_at - now)
    if left < wait:
        return left, True
    return wait, False


def awaiting_promotion_note(deployment_id: str, wave: Mapping[str, Any]) -> str:
    return ("canary wave %s (%s) passed: deployment %s is staged, awaiting promotion (auto_promote is false). "
            "Run ansible-playbook agentfleet.rollout.promote -e rollout_deployment_id=%s to roll out the rest"
            % (wave["index"], wave["name"], deployment_id, deployment_id))
