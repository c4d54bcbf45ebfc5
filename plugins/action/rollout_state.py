# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from ansible_collections.agentfleet.rollout.plugins.module_utils import _argspecs
from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._action import EngineAction


class ActionModule(EngineAction):
    ARGUMENT_SPEC = _argspecs.STATE_SPEC
    ENGINE = staticmethod(_runners.run_state)
    REQUIRED_IF = _argspecs.STATE_REQUIRED_IF
    ENGINE_ERRORS = _runners.ENGINE_ERRORS
