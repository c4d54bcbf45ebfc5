# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Base for controller-side action plugins that run an engine in-process.

A module file of the same name documents the options (and works on its own);
the action plugin validates the same argument spec and calls the same
engine function without forking a Python interpreter per task, which is
what keeps per-wave work in the millisecond range.

Long-running engines (``WATCH_CONTROLLER = True``: a wave, a shutdown or
wakeup wave) run under a :class:`._run.Run` of the ``ansible-playbook``
process that forked the worker: Ansible's workers call ``setsid()``, so a
SIGKILL of the playbook's process group never reaches them. The run stops
the engine at its next step when the controller is gone (the worker then
exits without a word: nobody reads its result), and turns SIGTERM/SIGINT
into a stop between two steps that the engine cleans up after.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.agentfleet.rollout.plugins.module_utils._run import ControllerGone
from ansible_collections.agentfleet.rollout.plugins.module_utils._run import Interrupted
from ansible_collections.agentfleet.rollout.plugins.module_utils._run import Run


class EngineError(Exception):
    """Raised by engines for a clean ``failed`` result with a message."""


class EngineAction(ActionBase):
    """Subclasses set ARGUMENT_SPEC (plus MUTUALLY_EXCLUSIVE etc.) and implement ``run_engine``."""

    TRANSFERS_FILES = False
    _requires_connection = False
    ARGUMENT_SPEC = {}
    MUTUALLY_EXCLUSIVE = None
    REQUIRED_IF = None
    REQUIRED_ONE_OF = None
    REQUIRED_TOGETHER = None
    ENGINE_ERRORS = (ValueError,)
    WATCH_CONTROLLER = False

    def run(self, tmp=None, task_vars=None):
        # the controller is this worker's parent now, before any work (it may die later)
        self.run_ctx = Run.of_controller() if self.WATCH_CONTROLLER else None
        result = super().run(tmp, task_vars)
        del tmp
        validator = ArgumentSpecValidator(
            self.ARGUMENT_SPEC,
            mutually_exclusive=self.MUTUALLY_EXCLUSIVE,
            required_if=self.REQUIRED_IF,
            required_one_of=self.REQUIRED_ONE_OF,
            required_together=self.REQUIRED_TOGETHER,
        )
        validation = validator.validate(self._task.args)
        if validation.error_messages:
            raise AnsibleActionFail("; ".join(validation.error_messages))
        params = validation.validated_parameters
        try:
            out = self._run_engine_watched(params, task_vars or {})
        except Interrupted as exc:
            result.update(failed=True, interrupted=True, msg=str(exc))
            return result
        except self.ENGINE_ERRORS as exc:
            result.update(failed=True, msg=str(exc))
            return result
        except EngineError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        result.update(out)
        no_log_values = validation._no_log_values if hasattr(validation, "_no_log_values") else set()
        if no_log_values:
            from ansible.module_utils.common.parameters import remove_values

            result = remove_values(result, no_log_values)
        return result

    def _run_engine_watched(self, params, task_vars):
        run = self.run_ctx
        if run is None:
            return self.run_engine(params, task_vars)
        try:
            with run.attached():
                out = self.run_engine(params, task_vars)
        except ControllerGone:
            _orphan_exit()
        except BaseException:
            if not run.controller_alive():
                _orphan_exit()
            raise
        if not run.controller_alive():
            _orphan_exit()
        return out

    @property
    def check_mode(self):
        return bool(self._task.check_mode or self._play_context.check_mode)

    def run_engine(self, params, task_vars):  # pragma: no cover - abstract
        raise AnsibleActionFail("action plugin %s has no engine" % self.__class__.__name__)


def _orphan_exit():
    """The controller is gone: nobody will read this worker's result, and writing it could block forever
    on a pipe that other orphans hold open. End the worker now (the state's transactions are atomic)."""
    os._exit(1)

