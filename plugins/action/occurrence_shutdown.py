# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.specs import SHUTDOWN_REQUIRED_IF
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.specs import SHUTDOWN_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.steps import STEP_ERRORS
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.steps import shutdown_step
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._action import EngineAction


class ActionModule(EngineAction):
    ARGUMENT_SPEC = SHUTDOWN_SPEC
    REQUIRED_IF = SHUTDOWN_REQUIRED_IF
    ENGINE = staticmethod(shutdown_step)
    ENGINE_ERRORS = STEP_ERRORS
    # a shutdown wave waits for occurrences to stop: it stops with the ansible-playbook that started it
    WATCH_CONTROLLER = True
