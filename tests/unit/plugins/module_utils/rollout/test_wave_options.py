"""Issue 22 item 5: the wave engine's typed options (``_wave_options.WaveOptions``), built once from the
rollout_wave parameters, with WAVE_SPEC as the one source of their defaults."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.agentfleet.rollout.plugins.module_utils import _argspecs
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import AGENT_TOKENS
from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import NOT_READ
from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import ConnectionOptions
from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import GateOptions
from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import WaveOptions

NESTED = ("connection", "health")
WAVE = {"index": 1, "name": "canary", "members": [{"name": "a", "agent_url": "http://127.0.0.1:1/"}]}


def option_names():
    """Every option a WaveOptions holds (its own fields and its nested ones' fields), but ``agent_tokens``."""
    names = [f.name for f in dataclasses.fields(WaveOptions) if f.name not in NESTED]
    names += [f.name for f in dataclasses.fields(ConnectionOptions) if f.name != AGENT_TOKENS]
    names += [f.name for f in dataclasses.fields(GateOptions)]
    return names


def validated(**args):
    args = dict(dict(state_path="/tmp/state.db", deployment_id="d1", wave=WAVE, wave_count=1), **args)
    result = ArgumentSpecValidator(_argspecs.WAVE_SPEC).validate(args)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def test_every_wave_spec_option_is_a_field_or_listed_as_not_read():
    names = option_names()
    assert len(names) == len(set(names)), "an option held twice"
    assert set(names) | set(NOT_READ) == set(_argspecs.WAVE_SPEC)
    assert not set(names) & set(NOT_READ)


def test_defaults_are_the_argspecs():
    opts = WaveOptions.from_params({"state_path": "s", "deployment_id": "d", "wave": WAVE, "wave_count": 1})
    params = opts.as_params()
    for name, spec in _argspecs.WAVE_SPEC.items():
        if name in NOT_READ or spec.get("required"):
            continue
        assert params[name] == spec.get("default"), name
    assert opts.health.healthy_deadline == 300.0 and opts.connection.max_workers == 32
    assert opts.stop_timeout == 600.0 and opts.phase == "all" and opts.driver == "none"
    # a default is copied: no call shares (or changes) the spec's lists
    assert opts.update_hosts == [] and opts.update_hosts is not _argspecs.WAVE_SPEC["update_hosts"]["default"]


def test_as_params_is_the_validated_parameters():
    params = validated(phase="ask", driver="tasks", stop_timeout=30, grace=5.0, token="t", analysis=[{"name": "x"}])
    opts = WaveOptions.from_params(params)
    assert opts.as_params() == dict((k, v) for k, v in params.items() if k not in NOT_READ)
    assert opts.stop_timeout == 30.0 and opts.health.grace == 5.0 and opts.connection.token == "t"
    assert AGENT_TOKENS not in opts.as_params()
    # values are the parameters' own (nothing copied but the defaults)
    assert opts.wave is params["wave"]


def test_agent_tokens_of_the_action_plugin_pass_through():
    params = dict(validated(), **{AGENT_TOKENS: {"http://127.0.0.1:1": "own"}})
    opts = WaveOptions.from_params(params)
    assert opts.connection.agent_tokens == {"http://127.0.0.1:1": "own"}
    assert opts.as_params()[AGENT_TOKENS] == {"http://127.0.0.1:1": "own"}


def test_a_null_option_has_its_default_and_one_without_default_stays_null():
    opts = WaveOptions.from_params(dict(validated(), stop_timeout=None, round=None, grace=None))
    assert opts.stop_timeout == 600.0 and opts.round == {} and opts.health.grace is None


def test_with_gate_replaces_the_gates_deadline_only():
    opts = WaveOptions.from_params(validated(healthy_deadline=100.0, grace=50.0))
    cut = opts.with_gate(healthy_deadline=10.0, grace=10.0)
    assert (cut.health.healthy_deadline, cut.health.grace) == (10.0, 10.0)
    assert (opts.health.healthy_deadline, opts.health.grace) == (100.0, 50.0)
    assert dict(cut.as_params(), healthy_deadline=100.0, grace=50.0) == opts.as_params()


def test_options_are_frozen():
    opts = WaveOptions.from_params(validated())
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.phase = "round"


def test_a_required_option_left_out_is_an_error():
    with pytest.raises(KeyError):
        WaveOptions.from_params({"deployment_id": "d", "wave": WAVE, "wave_count": 1})


def test_a_blue_green_finish_without_its_gate_says_so(tmp_path, monkeypatch):
    """The gate of phase finish (WAVE_REQUIRED_IF) read from the options: left out, the wave stops with a message
    that says what is missing (it used to be ``'NoneType' object is not iterable``)."""
    from ansible_collections.agentfleet.rollout.plugins.module_utils import _wave
    from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.errors import RolloutError
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import open_store

    state = str(tmp_path / "state.db")
    with open_store(state) as store:
        store.create_or_resume("d1", "fleet", "blue_green", "2.0.0", [WAVE], {}, owner_pid=999999)
    monkeypatch.setattr(_wave, "client_from_params", lambda params, run=None: contextlib.nullcontext(object()))
    params = validated(state_path=state, strategy="blue_green", driver="tasks", phase="finish", allow_insecure_http=True)
    with pytest.raises(RolloutError, match="phase=finish needs the gate returned by phase retire"):
        _wave.run_wave(params)
