# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit: an action plugin that names its engine (``EngineAction.ENGINE``) calls it as its module's ``main()`` does
(``_module.run_module``), with the same argument spec, constraints and engine errors (issue 22)."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners

PREFIX = "ansible_collections.agentfleet.rollout.plugins."

# plugin name -> (engine, whether it runs under the controller's run)
ENGINES = {
    "deployment": (_runners.run_deployment, False),
    "deployment_info": (_runners.run_deployment_info, False),
    "health_gate": (_runners.run_gate, True),
    "notify": (_runners.run_notify, True),
    "rollout_state": (_runners.run_state, False),
}


def _action(name, check_mode):
    cls = importlib.import_module(PREFIX + "action." + name).ActionModule
    action = cls.__new__(cls)
    action._task = SimpleNamespace(check_mode=check_mode)
    action._play_context = SimpleNamespace(check_mode=False)
    action.run_ctx = object() if cls.WATCH_CONTROLLER else None
    return action


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_action_calls_its_engine_as_the_module_does(name, monkeypatch):
    engine, watched = ENGINES[name]
    action = _action(name, check_mode=True)
    assert action.ENGINE is engine
    assert action.WATCH_CONTROLLER is watched
    calls = []
    monkeypatch.setattr(type(action), "ENGINE", staticmethod(lambda params, **kwargs: calls.append((params, kwargs)) or {"ok": 1}))
    assert action.run_engine({"a": 1}, {}) == {"ok": 1}
    expected = {"check_mode": True, "run": action.run_ctx} if watched else {"check_mode": True}
    assert calls == [({"a": 1}, expected)]


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_module_and_action_declare_the_same_interface(name, monkeypatch):
    module = importlib.import_module(PREFIX + "modules." + name)
    action = importlib.import_module(PREFIX + "action." + name).ActionModule
    seen = []
    monkeypatch.setattr(module, "run_module", lambda *args, **kwargs: seen.append((args, kwargs)))
    module.main()
    (module_class, spec, runner, errors), kwargs = seen[0]
    assert spec is action.ARGUMENT_SPEC
    assert runner is action.ENGINE
    assert errors == action.ENGINE_ERRORS
    assert kwargs.get("required_if") == action.REQUIRED_IF
    assert kwargs.get("required_one_of") == action.REQUIRED_ONE_OF
    assert kwargs.get("mutually_exclusive") == action.MUTUALLY_EXCLUSIVE


def test_an_action_without_engine_fails():
    from ansible.errors import AnsibleActionFail

    from ansible_collections.agentfleet.rollout.plugins.plugin_utils._action import EngineAction

    action = EngineAction.__new__(EngineAction)
    with pytest.raises(AnsibleActionFail, match="has no engine"):
        action.run_engine({}, {})
