# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import ShutdownError
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.decision import shutdown_decide
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.specs import SHUTDOWN_REQUIRED_IF
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.specs import SHUTDOWN_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.waves import shutdown_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateError
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._action import EngineAction


class ActionModule(EngineAction):
    ARGUMENT_SPEC = SHUTDOWN_SPEC
    REQUIRED_IF = SHUTDOWN_REQUIRED_IF
    ENGINE_ERRORS = (ShutdownError, StateError, ValueError)
    # a shutdown wave waits for occurrences to stop: it stops with the ansible-playbook that started it
    WATCH_CONTROLLER = True

    def run_engine(self, params, task_vars):
        if params["step"] == "decide":
            return shutdown_decide(params, check_mode=self.check_mode)
        return shutdown_wave(params, check_mode=self.check_mode, run=self.run_ctx)
