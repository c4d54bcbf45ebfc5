# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from ansible_collections.agentfleet.rollout.plugins.module_utils import _argspecs
from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._action import EngineAction


class ActionModule(EngineAction):
    ARGUMENT_SPEC = _argspecs.GATE_SPEC
    ENGINE = staticmethod(_runners.run_gate)
    ENGINE_ERRORS = _runners.ENGINE_ERRORS
    # a gate waits up to healthy_deadline: it stops with the ansible-playbook that started it
    WATCH_CONTROLLER = True
