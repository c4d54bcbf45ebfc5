# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from ansible_collections.agentfleet.rollout.plugins.module_utils._cohorts import WAVE_SPLIT_ERRORS
from ansible_collections.agentfleet.rollout.plugins.module_utils._cohorts import WAVE_SPLIT_MUTUALLY_EXCLUSIVE
from ansible_collections.agentfleet.rollout.plugins.module_utils._cohorts import WAVE_SPLIT_REQUIRED_ONE_OF
from ansible_collections.agentfleet.rollout.plugins.module_utils._cohorts import WAVE_SPLIT_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._cohorts import wave_plan
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._action import EngineAction
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._inventory import members_from_group


class ActionModule(EngineAction):
    ARGUMENT_SPEC = WAVE_SPLIT_SPEC
    REQUIRED_ONE_OF = WAVE_SPLIT_REQUIRED_ONE_OF
    MUTUALLY_EXCLUSIVE = WAVE_SPLIT_MUTUALLY_EXCLUSIVE
    ENGINE_ERRORS = WAVE_SPLIT_ERRORS

    def run_engine(self, params, task_vars):
        if params.get("group") or params.get("hosts") is not None:
            params = dict(params, members=members_from_group(task_vars, params.get("group"), params.get("hosts")))
        return wave_plan(params)
