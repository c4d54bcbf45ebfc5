# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-agent tokens: the client sends each agent its own ``Authorization`` (one
pool all the same), and the action plugins read each agent's ``rollout_token``
from the inventory, falling back to the play-level value and AGENTFLEET_TOKEN
without ever handing one agent's token to another."""

from __future__ import annotations

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._common import AGENT_TOKENS
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import client_from_params
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import token_secrets
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._action import agent_tokens
from helpers import FakeAgent

A, B, SHARED = "tok-agent-a-7f1", "tok-agent-b-2c9", "tok-shared-55e"


def healthy(seen, handler):
    """Health and shutdown both answer a healthy agent's health (what it answers is not under test here)."""
    del seen, handler
    return 200, {"data": {"status": "healthy", "cognitive_state": "work", "version": "1"}}


@pytest.fixture
def server():
    """An agent recording (method, path, Authorization, client port) of each request in ``seen``."""
    srv = FakeAgent(answer=healthy)
    yield srv
    srv.stop()


def base(srv):
    return srv.url


def test_each_agent_gets_its_own_token_over_one_pool(server):
    url = base(server)
    tokens = {url + "/agents/a": A, url + "/agents/ab/": B}
    with AgentClient(token=SHARED, tokens=tokens, max_workers=1) as client:
        client.probe(url + "/agents/a")
        client.probe(url + "/agents/abc")   # not below /agents/ab: a path segment must match whole
        client.probe(url + "/agents/a/")
        client.probe(url + "/other")
        client.ask(url + "/agents/ab", {"reason": "r", "confirm": True})
    auth = [(s.method, s.path, s.auth) for s in server.seen]
    assert auth == [
        ("GET", "/agents/a/v1/system/health", "Bearer " + A),
        ("GET", "/agents/abc/v1/system/health", "Bearer " + SHARED),
        ("GET", "/agents/a/v1/system/health", "Bearer " + A),
        ("GET", "/other/v1/system/health", "Bearer " + SHARED),
        ("POST", "/agents/ab/v1/system/shutdown", "Bearer " + B),
    ]
    # keep-alive: one connection carried every request, whatever its token
    assert len({s.port for s in server.seen}) == 1


def test_agent_without_own_token_and_no_default_sends_none(server):
    url = base(server)
    with AgentClient(tokens={url + "/a": A}) as client:
        client.probe(url + "/a")
        client.probe(url + "/b")
    assert [s.auth for s in server.seen] == ["Bearer " + A, None]


def test_bad_agent_token_names_the_agent_not_the_value():
    with pytest.raises(ValueError) as info:
        AgentClient(tokens={"http://127.0.0.1:9/a": "x\nsecret-part"})
    assert "http://127.0.0.1:9/a" in str(info.value)
    assert "secret-part" not in str(info.value)


def test_secrets_and_client_from_params_carry_every_agent_token(monkeypatch, server):
    monkeypatch.delenv("AGENTFLEET_TOKEN", raising=False)
    url = base(server)
    params = {"token": SHARED, AGENT_TOKENS: {url + "/a": A, url + "/b": B}}
    assert sorted(token_secrets(params)) == sorted([SHARED, A, B])
    with client_from_params(params) as client:
        client.probe(url + "/b")
    assert server.seen[0].auth == "Bearer " + B


def hostvars(**hosts):
    return {name: dict(values) for name, values in hosts.items()}


def task_vars(hv, current, play_hosts=None):
    return {"hostvars": hv, "inventory_hostname": current, "ansible_play_batch": play_hosts or list(hv)}


def test_agent_tokens_from_hostvars_fall_back_to_the_play_value(monkeypatch):
    monkeypatch.delenv("AGENTFLEET_TOKEN", raising=False)
    hv = hostvars(a={"agent_url": "http://h/a/", "rollout_token": A}, b={"agent_url": "http://h/b"},
                  c={"agent_url": "http://h/c", "rollout_token": ""})
    # the run-once host (b) has no token of its own: the task's token is the play-level value
    tokens, default = agent_tokens(task_vars(hv, "b"), SHARED)
    assert tokens == {"http://h/a": A}
    assert default == SHARED


def test_run_once_host_with_own_token_never_hands_it_to_others(monkeypatch):
    # the task was templated with host a's variables, so its token is a's: b and c get AGENTFLEET_TOKEN
    hv = hostvars(a={"agent_url": "http://h/a", "rollout_token": A}, b={"agent_url": "http://h/b", "rollout_token": B},
                  c={"agent_url": "http://h/c"})
    monkeypatch.delenv("AGENTFLEET_TOKEN", raising=False)
    tokens, default = agent_tokens(task_vars(hv, "a"), A)
    assert tokens == {"http://h/a": A, "http://h/b": B}
    assert default is None
    monkeypatch.setenv("AGENTFLEET_TOKEN", SHARED)
    assert agent_tokens(task_vars(hv, "a"), A)[1] == SHARED


def test_same_url_different_tokens_is_one_error_without_values():
    hv = hostvars(a={"agent_url": "http://h/x", "rollout_token": A}, b={"agent_url": "http://h/x/", "rollout_token": B})
    with pytest.raises(ValueError) as info:
        agent_tokens(task_vars(hv, "a"), None)
    assert "a and b" in str(info.value)
    assert A not in str(info.value) and B not in str(info.value)


def test_only_the_batch_is_read():
    hv = hostvars(a={"agent_url": "http://h/a", "rollout_token": A}, b={"agent_url": "http://h/b", "rollout_token": B})
    assert agent_tokens(task_vars(hv, "b", play_hosts=["b"]), B)[0] == {"http://h/b": B}


def test_the_next_wave_asked_ahead_is_read_too_and_nothing_else():
    # issue 20's ask-ahead: a wave asks the next wave's agents, which are not in its batch
    hv = hostvars(a={"agent_url": "http://h/a", "rollout_token": A}, b={"agent_url": "http://h/b", "rollout_token": B},
                  c={"agent_url": "http://h/c", "rollout_token": SHARED})
    tokens = agent_tokens(task_vars(hv, "b", play_hosts=["b"]), B, also=["b", "c", "not-in-inventory"])[0]
    assert tokens == {"http://h/b": B, "http://h/c": SHARED}


def test_no_hostvars_keeps_the_task_token():
    assert agent_tokens({}, SHARED) == ({}, SHARED)


def test_a_token_that_cannot_be_read_is_an_error_naming_the_host():
    class Broken(dict):
        def get(self, key, default=None):
            if key == "rollout_token":
                raise RuntimeError("vault password missing for service:abc-secret")
            return super().get(key, default)

    hv = {"a": Broken(agent_url="http://h/a"), "b": {"agent_url": "http://h/b"}}
    with pytest.raises(ValueError) as info:
        agent_tokens(task_vars(hv, "b"), SHARED)
    assert "rollout_token of host a cannot be read (RuntimeError)" in str(info.value)
    assert "abc-secret" not in str(info.value)


class CountingHostvars(dict):
    """hostvars that count their reads (Ansible's runs get_vars on each, ~0.3 ms a host)."""

    reads = 0

    def __getitem__(self, host):
        CountingHostvars.reads += 1
        return dict.__getitem__(self, host)


def test_a_task_reads_each_hosts_variables_once():
    from ansible_collections.agentfleet.rollout.plugins.plugin_utils._action import hostvars_once

    hv = CountingHostvars(a={"agent_url": "http://h/a", "rollout_token": A}, b={"agent_url": "http://h/b", "rollout_token": B})
    CountingHostvars.reads = 0
    tv = hostvars_once(task_vars(hv, "a"))
    # each host: its token, then its URL; the current host once more: three reads of a, two of b without the memo
    tokens, dummy = agent_tokens(tv, A)
    assert tokens == {"http://h/a": A, "http://h/b": B}
    assert CountingHostvars.reads == 2
    assert hostvars_once(tv) is tv and "a" in tv["hostvars"] and len(tv["hostvars"]) == 2
