# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import ShutdownError
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.specs import WAKEUP_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.wakeup import wakeup_abort
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.wakeup import wakeup_gate
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.wakeup import wakeup_prepare
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateError
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._action import EngineAction


class ActionModule(EngineAction):
    ARGUMENT_SPEC = WAKEUP_SPEC
    ENGINE_ERRORS = (ShutdownError, StateError, ValueError)
    # a wakeup wave waits for occurrences: it stops with the ansible-playbook that started it
    WATCH_CONTROLLER = True

    def run_engine(self, params, task_vars):
        if params["step"] == "prepare":
            return wakeup_prepare(params, check_mode=self.check_mode, run=self.run_ctx)
        if params["step"] == "abort":
            return wakeup_abort(params, check_mode=self.check_mode)
        return wakeup_gate(params, check_mode=self.check_mode, run=self.run_ctx)
