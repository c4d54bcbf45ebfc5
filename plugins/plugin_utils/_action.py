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

from collections.abc import Mapping
import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.agentfleet.rollout.plugins.module_utils._common import AGENT_TOKENS
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import TOKEN_ENV
from ansible_collections.agentfleet.rollout.plugins.module_utils._run import ControllerGone
from ansible_collections.agentfleet.rollout.plugins.module_utils._run import Interrupted
from ansible_collections.agentfleet.rollout.plugins.module_utils._run import Run
from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import redact
from ansible_collections.agentfleet.rollout.plugins.module_utils._urls import agent_url_key

# The inventory variable that holds an agent's own token (host_vars, group_vars, Vault, a lookup).
AGENT_TOKEN_VAR = "rollout_token"


class _HostvarsOnce(Mapping):
    """``hostvars`` that computes each host's variables once per task: ``hostvars[host]`` runs Ansible's
    ``get_vars`` for that host (~0.3 ms, most of it Ansible cleaning the facts), and one task may read a host
    more than once (its agent, then its token); the views it returns still template each value when read."""

    def __init__(self, hostvars):
        self._hostvars = hostvars
        self._seen = {}

    def __getitem__(self, host):
        try:
            return self._seen[host]
        except KeyError:
            value = self._seen[host] = self._hostvars[host]
            return value

    def __contains__(self, host):
        return host in self._seen or host in self._hostvars

    def __iter__(self):
        return iter(self._hostvars)

    def __len__(self):
        return len(self._hostvars)


def hostvars_once(task_vars):
    """``task_vars`` with its ``hostvars`` read once per host (:class:`_HostvarsOnce`)."""
    hostvars = task_vars.get("hostvars")
    if hostvars is None or isinstance(hostvars, _HostvarsOnce):
        return task_vars
    return dict(task_vars, hostvars=_HostvarsOnce(hostvars))


def _host_value(hostvars, host, key):
    """``hostvars[host][key]`` templated (a Vault value or a lookup resolves here), or None."""
    try:
        host_vars = hostvars[host]
    except KeyError:  # a host outside the inventory
        return None
    try:
        value = host_vars.get(key)
    except Exception as exc:  # a Vault value without its password, a failing lookup: never guess a token
        raise ValueError("%s of host %s cannot be read (%s); nothing was sent" % (key, host, type(exc).__name__)) from None
    if value is None:
        return None
    value = str(value)
    return value or None


def agent_tokens(task_vars, play_token, also=()):
    """Each agent's own token, read from the inventory: ``(tokens, default)``.

    ``tokens`` is ``{agent_url: token}`` for every host of the current batch
    (the wave: a run-once call only talks to its batch's agents; reading the
    variables of every host of the play would cost ~0.6 s per 1,000 hosts and
    call) that has an ``agent_url`` and a ``rollout_token`` of its own (host or
    group variable, Vault, lookup, extra var); ``default`` is the token for the others: the
    play-level value (the task's ``token``, else ``AGENTFLEET_TOKEN``). A task
    that runs once for many agents is templated with the first host's
    variables, so when that host has a token of its own the task's ``token``
    is that host's, not the play's: the others then fall back to
    ``AGENTFLEET_TOKEN`` (the roles' default) and never get another agent's
    token. No value is ever put into a message. ``also``: more hosts whose agents the task talks to (the next
    wave, which a wave asks ahead), read as well.
    """
    hostvars = task_vars.get("hostvars")
    if hostvars is None:
        return {}, play_token
    # the batch's hosts (a wave of the waves play, or every host of a play without serial): reading a host's
    # variables costs a get_vars per host, so a wave reads only its own agents', not the whole play's again
    hosts = list(task_vars.get("ansible_play_batch") or task_vars.get("ansible_play_hosts_all") or [])
    seen = set(hosts)
    hosts.extend(h for h in also if h not in seen)
    tokens = {}
    owner = {}
    conflicts = []
    for host in hosts:
        # the caller's hostvars are read once per host (hostvars_once): one get_vars for its token and its URL
        token = _host_value(hostvars, host, AGENT_TOKEN_VAR)
        if token is None:
            continue
        url = _host_value(hostvars, host, "agent_url")
        if url is None:
            continue
        key = agent_url_key(url)
        if key in tokens and tokens[key] != token:
            conflicts.append("%s and %s" % (owner[key], host))
            continue
        tokens[key] = token
        owner[key] = host
    if conflicts:
        raise ValueError("rollout_token: hosts with the same agent_url hold different tokens (values not shown): %s"
                         % "; ".join(conflicts[:5]))
    current = task_vars.get("inventory_hostname")
    default = play_token
    if current is not None and _host_value(hostvars, current, AGENT_TOKEN_VAR) is not None:
        default = os.environ.get(TOKEN_ENV) or None
    return tokens, default


class EngineError(Exception):
    """Raised by engines for a clean ``failed`` result with a message."""


class EngineAction(ActionBase):
    """Subclasses set ARGUMENT_SPEC (plus MUTUALLY_EXCLUSIVE etc.) and either ENGINE or ``run_engine``.

    ENGINE (``staticmethod(fn)``) is an engine called as the module's ``main()`` calls it (``_module.run_module``):
    ``fn(params, check_mode=...)``, plus ``run=`` the controller's run with WATCH_CONTROLLER. An action that
    needs more (the task's variables, another engine per step) overrides ``run_engine`` instead.
    """

    TRANSFERS_FILES = False
    _requires_connection = False
    ARGUMENT_SPEC = {}
    MUTUALLY_EXCLUSIVE = None
    REQUIRED_IF = None
    REQUIRED_ONE_OF = None
    REQUIRED_TOGETHER = None
    ENGINE = None
    ENGINE_ERRORS = (ValueError,)
    WATCH_CONTROLLER = False

    def run(self, tmp=None, task_vars=None):
        # the controller is this worker's parent now, before any work (it may die later)
        controller = os.getppid()
        self.run_ctx = Run.of_controller() if self.WATCH_CONTROLLER else None
        result = self._run(tmp, task_vars)
        if os.getppid() != controller:
            # the controller died meanwhile (kill -9 of ansible-playbook): nobody reads this result, and writing it
            # can block for ever on the results pipe; end the worker (quick tasks too, e.g. each agent's result)
            _orphan_exit()
        return result

    def _run(self, tmp, task_vars):
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
        task_vars = hostvars_once(task_vars or {})
        no_log_values = set(validation._no_log_values) if hasattr(validation, "_no_log_values") else set()
        try:
            if "token" in self.ARGUMENT_SPEC and self.reads_agent_tokens(params):
                tokens, default = agent_tokens(task_vars, params.get("token"), self.more_token_hosts(params))
                if tokens or default != params.get("token"):
                    params = dict(params, token=default)
                    params[AGENT_TOKENS] = tokens
                    no_log_values.update(t for t in tokens.values())
                    if default:
                        no_log_values.add(default)
            out = self._run_engine_watched(params, task_vars)
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
        if no_log_values:
            result = redact(result, no_log_values)
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

    def reads_agent_tokens(self, params):
        """Whether this task reads the agents' own tokens (``rollout_token`` of each host of the batch)."""
        return True

    def more_token_hosts(self, params):
        """Hosts beyond the batch whose agents this task talks to: their tokens are read too."""
        return ()

    @property
    def check_mode(self):
        return bool(self._task.check_mode or self._play_context.check_mode)

    def run_engine(self, params, task_vars):
        if self.ENGINE is None:
            raise AnsibleActionFail("action plugin %s has no engine" % self.__class__.__name__)
        if self.WATCH_CONTROLLER:
            return self.ENGINE(params, check_mode=self.check_mode, run=self.run_ctx)
        return self.ENGINE(params, check_mode=self.check_mode)


def _orphan_exit():
    """The controller is gone: nobody will read this worker's result, and writing it could block forever
    on a pipe that other orphans hold open. End the worker now (the state's transactions are atomic)."""
    os._exit(1)
