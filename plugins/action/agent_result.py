# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from ansible_collections.agentfleet.rollout.plugins.module_utils._outcome import OUTCOME_ONE_OF
from ansible_collections.agentfleet.rollout.plugins.module_utils._outcome import OUTCOME_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._outcome import outcome_result
from ansible_collections.agentfleet.rollout.plugins.module_utils._outcome import pick_outcome
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._action import EngineAction


class ActionModule(EngineAction):
    ARGUMENT_SPEC = OUTCOME_SPEC
    REQUIRED_ONE_OF = OUTCOME_ONE_OF
    MUTUALLY_EXCLUSIVE = OUTCOME_ONE_OF

    def run_engine(self, params, task_vars):
        host = params.get("host") or task_vars.get("inventory_hostname")
        if params.get("from_result"):
            name = params["from_result"]
            if name not in task_vars:
                raise ValueError("from_result: no variable %r on host %s (register the wave's result under that name)"
                                 % (name, host))
            outcome = pick_outcome(task_vars[name], host)
        else:
            outcome = params["outcome"]
        return outcome_result(outcome, host)
