# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 12 #2 and #6: tokens an agent echoes are masked as the answer arrives (no decision, cause or
note carries one), a token that cannot be sent names rollout_token without showing it, and a token
never goes over plain http:// to another machine unless allowed."""

from __future__ import annotations

import json

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils._common import check_plain_http
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import client_from_params
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.errors import TransportError
from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import is_loopback
from helpers import FakeAgent

TOKEN = "play-token-5f1e9a"
AGENT_TOKEN = "agent-own-token-c0ffee"


def echo_token(seen, handler):
    """Puts the request's Authorization header into every answer: a 400 detail, a reason, a health field."""
    del handler
    auth = seen.auth or ""
    if seen.method == "GET":
        return 200, {"data": {"status": "degraded (%s)" % auth, "cognitive_state": "work", "version": auth}}
    if seen.path.startswith("/defer"):
        return 200, {"data": {"decision": "defer", "reason": "you sent %s" % auth}}
    return 400, {"detail": "bad request, headers: {'Authorization': %s}" % json.dumps(auth)}


@pytest.fixture
def echo():
    srv = FakeAgent(answer=echo_token)
    yield srv.url
    srv.stop()


def test_an_echoed_token_is_masked_in_every_answer(echo):
    agent = echo + "/defer/agent-1"
    with AgentClient(token=TOKEN, tokens={agent: AGENT_TOKEN}) as client:
        rejected = client.ask(echo + "/other", {"reason": "r", "confirm": True})
        deferred = client.ask(agent, {"reason": "r", "confirm": True})
        probe = client.probe(agent)
        raw = client.request("GET", echo + "/v1/system/health")
    assert rejected["decision"] == "reject" and "********" in rejected["reason"]
    assert deferred["decision"] == "defer" and "********" in deferred["reason"]
    assert not probe["healthy"] and "********" in probe["cause"]
    text = json.dumps([rejected, deferred, probe]) + raw.body.decode()
    assert TOKEN not in text and AGENT_TOKEN not in text


@pytest.mark.parametrize("bad", ["tok\nen-value", "token-value\r", "tok\x00en-value"])
def test_a_token_that_cannot_be_sent_names_rollout_token_not_its_value(bad):
    with pytest.raises(ValueError) as err:
        AgentClient(token=bad)
    assert "rollout_token" in str(err.value) and bad.strip() not in str(err.value)
    with pytest.raises(ValueError) as err:
        AgentClient(tokens={"https://a.example/": bad})
    assert "rollout_token of the agent at https://a.example/" in str(err.value) and bad.strip() not in str(err.value)


@pytest.mark.parametrize("host,loop", [("127.0.0.1", True), ("127.8.0.2", True), ("localhost", True), ("::1", True),
                                       ("[::1]", True), ("10.0.0.1", False), ("agents.example.org", False),
                                       ("localhost.example.org", False)])
def test_loopback(host, loop):
    assert is_loopback(host) is loop


def agents(*urls):
    return [{"name": "a%d" % i, "agent_url": u} for i, u in enumerate(urls)]


def test_plain_http_with_a_token_to_another_machine_is_refused_before_sending(monkeypatch):
    monkeypatch.delenv("AGENTFLEET_TOKEN", raising=False)
    params = {"token": TOKEN, "agents": agents("https://a.example", "http://127.0.0.1:8080", "http://10.1.2.3:8080")}
    with pytest.raises(ValueError) as err:
        client_from_params(params)
    msg = str(err.value)
    assert "rollout_allow_insecure_http" in msg and "http://10.1.2.3:8080" in msg and TOKEN not in msg
    assert "127.0.0.1" not in msg and "a.example" not in msg
    # allowed on purpose; and without any token nothing secret goes anywhere
    check_plain_http(dict(params, allow_insecure_http=True))
    check_plain_http(dict(params, token=None))
    # an agent's own token counts too, even without a play-level token
    with pytest.raises(ValueError, match="http://10.9.9.9"):
        check_plain_http({"agents": agents("http://10.9.9.9"), "agent_tokens": {"http://10.9.9.9": AGENT_TOKEN}})


def test_the_client_itself_never_sends_a_token_over_plain_http_to_another_host():
    with AgentClient(token=TOKEN, connect_retries=0) as client:
        with pytest.raises(TransportError) as err:
            client.request("GET", "http://192.0.2.10:9/v1/system/health")
    assert err.value.kind == "insecure" and not err.value.sent and TOKEN not in str(err.value)
    # no token: nothing to protect, the request goes (and fails to connect, quickly)
    with AgentClient(connect_timeout=0.2, connect_retries=0) as client:
        with pytest.raises(TransportError) as err:
            client.request("GET", "http://192.0.2.10:9/v1/system/health")
    assert err.value.kind != "insecure"
