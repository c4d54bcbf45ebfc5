# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``occurrence_plan``, ``occurrence_shutdown`` and ``occurrence_wakeup`` run, said once for the module's
``main()`` and its controller-side action plugin: the engine of each ``step``, the engine's own errors, and the
options that go together."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any
from typing import Dict
from typing import Mapping
from typing import Optional

from ansible_collections.agentfleet.rollout.plugins.module_utils._cohorts import CohortError
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import ShutdownError
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.decision import shutdown_decide
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.wakeup import wakeup_abort
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.wakeup import wakeup_gate
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.wakeup import wakeup_prepare
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.waves import shutdown_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateError

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._run import Run

PLAN_ERRORS = (ShutdownError, CohortError, ValueError)
PLAN_REQUIRED_ONE_OF = [["members", "group"]]
PLAN_MUTUALLY_EXCLUSIVE = [["members", "group"]]
STEP_ERRORS = (ShutdownError, StateError, ValueError)


def shutdown_step(params: Mapping[str, Any], check_mode: bool = False, run: Optional[Run] = None) -> Dict[str, Any]:
    """``step=decide``: ask the explorer (or reuse a decision); ``step=wave``: send and verify one wave."""
    if params["step"] == "decide":
        return shutdown_decide(params, check_mode=check_mode)
    return shutdown_wave(params, check_mode=check_mode, run=run)


def wakeup_step(params: Mapping[str, Any], check_mode: bool = False, run: Optional[Run] = None) -> Dict[str, Any]:
    """``step=prepare``, ``gate`` or ``abort`` of a wakeup wave."""
    if params["step"] == "prepare":
        return wakeup_prepare(params, check_mode=check_mode, run=run)
    if params["step"] == "abort":
        return wakeup_abort(params, check_mode=check_mode)
    return wakeup_gate(params, check_mode=check_mode, run=run)
