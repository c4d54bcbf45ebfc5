# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check every input of a playbook on the controller before anyone is asked.

Without ``variables`` the action reads them itself: every variable the role's
argument spec declares (and the lifecycle policy's), each templated on its own,
so that one that cannot be evaluated (a failing lookup, a missing host
variable) is an error naming it rather than a templating error of a later task;
with ``hosts`` it reads each host's ``agent_url``.
It also fails on a ``rollout_*``, ``shutdown_*`` or ``wakeup_*`` variable of
the play (or of one of the hosts) that the collection does not know, naming
the closest known name: a typo is not silently ignored. The known names are
those the collection's own roles and playbooks mention (``known_variables``),
plus the user's own listed in ``rollout_extra_vars``.
The checks themselves are ``_validate.validate_inputs``.
"""

from __future__ import annotations

import os

import yaml

from ansible_collections.agentfleet.rollout.plugins.module_utils import _validate
from ansible_collections.agentfleet.rollout.plugins.module_utils import _validate_names
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import AGENT_TOKENS
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import check_plain_http
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._action import EngineAction
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._action import agent_tokens

COLLECTION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ROLES = os.path.join(COLLECTION, "roles")
PLAYBOOKS = os.path.join(COLLECTION, "playbooks")
HOST_VARS = ("agent_url",)
_KNOWN = []


def known_variables():
    """Every ``rollout_*``, ``shutdown_*`` and ``wakeup_*`` name the collection's roles (argument specs,
    defaults, tasks) and playbooks mention (``_validate_names.variable_names``): the variables a user may set and those
    the playbooks set themselves. Read from the files, so the list follows the code; once per process."""
    if not _KNOWN:
        names = set([_validate_names.EXTRA_VARS])
        for base in (ROLES, PLAYBOOKS):
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames.sort()
                for filename in sorted(filenames):
                    if filename.endswith((".yml", ".yaml")):
                        with open(os.path.join(dirpath, filename)) as fh:
                            names.update(_validate_names.variable_names(fh.read()))
        _KNOWN.append(frozenset(names))
    return _KNOWN[0]


def role_spec(kind):
    """``{name: {type, choices, elements}}`` of the role's entry point ``main``."""
    path = os.path.join(ROLES, kind, "meta", "argument_specs.yml")
    with open(path) as fh:
        options = (yaml.safe_load(fh) or {}).get("argument_specs", {}).get("main", {}).get("options", {})
    return dict((name, dict((k, v) for k, v in opt.items() if k in ("type", "choices", "elements")))
                for name, opt in options.items())


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


class ActionModule(EngineAction):
    ARGUMENT_SPEC = _validate.VALIDATE_SPEC
    MUTUALLY_EXCLUSIVE = _validate.VALIDATE_MUTUALLY_EXCLUSIVE
    ENGINE_ERRORS = (ValueError,)

    def run_engine(self, params, task_vars):
        spec = role_spec(params["kind"])
        errors = []
        values = params.get("variables")
        # the play's variables (extra vars, inventory, play vars) as the first host sees them; each host's own
        # with ``hosts``: none may be an unknown variable of the collection's (checked only when the action
        # reads the play's variables itself, not for ``variables`` given to it)
        host_names = {} if values is None else None
        if values is None:
            values = {}
            for name in sorted(set(spec) | set(_validate.POLICY_SPEC)):
                if name not in task_vars:
                    continue
                try:
                    values[name] = self._templar.template(task_vars[name])
                except Exception as exc:  # a failing lookup, an undefined variable inside it
                    shown = "(value not shown)" if name in _validate.SECRETS else _first_line(exc)
                    errors.append("%s: cannot be evaluated: %s" % (name, shown))
        agents = params.get("agents")
        if params.get("hosts") is not None:
            agents = self._agents(params["hosts"], task_vars, errors, host_names)
        if host_names is not None:
            unknown = self._unknown(task_vars, host_names)
            if unknown:
                # a typo makes every other message about its variable beside the point: this one alone
                raise _validate.InputError("; ".join(unknown))
        try:
            out = _validate.run_validate(dict(params, variables=values, agents=agents), spec=spec)
        except _validate.InputError as exc:
            errors.append(str(exc))
        if agents and params["kind"] == "rollout":
            self._plain_http(values, agents, task_vars, errors)
        if errors:
            raise _validate.InputError("; ".join(errors))
        return out

    @staticmethod
    def _plain_http(values, agents, task_vars, errors):
        """A bearer token (the play's, or a host's own) never goes over plain http:// to another machine unless
        rollout_allow_insecure_http: the same rule as every module that talks to agents, checked before anyone
        is asked and before a deployment is recorded."""
        try:
            tokens, default = agent_tokens(task_vars, values.get("rollout_token"))
            check_plain_http({"allow_insecure_http": bool(values.get("rollout_allow_insecure_http")),
                              "token": default, AGENT_TOKENS: tokens},
                             urls=[a.get("agent_url") for a in agents])
        except ValueError as exc:
            errors.append(str(exc).replace(" Nothing was sent.", ""))

    def _unknown(self, task_vars, host_names):
        """The errors about unknown variables (``_validate_names.check_unknown``)."""
        play_names = [n for n in task_vars if isinstance(n, str) and n.startswith(_validate_names.PREFIXES)]
        if not play_names and not any(host_names.values()):
            return []
        try:
            extra = self._templar.template(task_vars.get(_validate_names.EXTRA_VARS))
        except Exception as exc:
            return ["%s: cannot be evaluated: %s" % (_validate_names.EXTRA_VARS, _first_line(exc))]
        extra, error = _validate_names.extra_names(extra)
        if error:
            return [error]
        return _validate_names.check_unknown(play_names, known_variables(), extra, host_names)

    def _agents(self, hosts, task_vars, errors, host_names=None):
        hostvars = task_vars.get("hostvars") or {}
        agents = []
        for host in hosts:
            agent = {"name": host}
            try:
                hv = hostvars[host]
            except KeyError:
                errors.append("hosts: %s is not in the inventory" % host)
                continue
            if host_names is not None:
                host_names[host] = [n for n in hv if isinstance(n, str) and n.startswith(_validate_names.PREFIXES)]
            for key in HOST_VARS:
                try:
                    value = hv.get(key)
                except Exception as exc:
                    errors.append("%s of host %s: cannot be evaluated: %s" % (key, host, _first_line(exc)))
                    continue
                if value not in (None, ""):
                    agent[key] = value if isinstance(value, str) else str(value)
            agents.append(agent)
        return agents
