# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from ansible.utils.display import Display

from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners
from ansible_collections.agentfleet.rollout.plugins.module_utils import _wave
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._action import EngineAction

display = Display()


class ActionModule(EngineAction):
    ARGUMENT_SPEC = _runners.WAVE_SPEC
    REQUIRED_IF = _runners.WAVE_REQUIRED_IF
    ENGINE_ERRORS = _runners.ENGINE_ERRORS
    # a wave is one long task: it stops with the ansible-playbook that started it
    WATCH_CONTROLLER = True

    def run_engine(self, params, task_vars):
        # long waves are not silent: the engine reports every few seconds while it waits
        # (in a worker process Display forwards to the controller's output, and so to AWX's job output)
        return _wave.run_wave(params, check_mode=self.check_mode,
                              progress=lambda line: display.display("[agentfleet] " + line), run=self.run_ctx)
