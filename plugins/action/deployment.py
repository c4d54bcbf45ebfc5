# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from ansible_collections.agentfleet.rollout.plugins.module_utils import _argspecs
from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._action import EngineAction


class ActionModule(EngineAction):
    ARGUMENT_SPEC = _argspecs.DEPLOYMENT_SPEC
    ENGINE = staticmethod(_runners.run_deployment)
    REQUIRED_IF = _argspecs.DEPLOYMENT_REQUIRED_IF
    ENGINE_ERRORS = _runners.ENGINE_ERRORS

    def reads_agent_tokens(self, params):
        # only closing writes a report (masked with every token); recording reads no host's variables
        return params["state"] not in ("running", "staged")
