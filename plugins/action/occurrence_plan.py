# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.plan import occurrence_plan
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.specs import PLAN_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.steps import PLAN_ERRORS
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.steps import PLAN_MUTUALLY_EXCLUSIVE
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.steps import PLAN_REQUIRED_ONE_OF
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._action import EngineAction
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._inventory import members_from_group


class ActionModule(EngineAction):
    ARGUMENT_SPEC = PLAN_SPEC
    REQUIRED_ONE_OF = PLAN_REQUIRED_ONE_OF
    MUTUALLY_EXCLUSIVE = PLAN_MUTUALLY_EXCLUSIVE
    ENGINE_ERRORS = PLAN_ERRORS

    def run_engine(self, params, task_vars):
        if params.get("hosts") is not None and not params.get("group"):
            raise ValueError("hosts: restricts group, which is missing")
        if params.get("group"):
            params = dict(params, members=members_from_group(task_vars, params["group"], only=params.get("hosts")))
        return occurrence_plan(params, check_mode=self.check_mode)
