# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 22, item 2: one answer per policy question, used everywhere.

Secret names and masking (``_secrets``: the reports, the audit lines, the manager's results, the ECS task
definitions and every action result mask alike), token validity (``_secrets.check_token``, also for
rollout_validate), the plain-http rule and agent URL identity (``_urls``: the inputs check, the client's
per-agent tokens, the inventory's tokens and the pre-check all agree)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.agentfleet.rollout.plugins.module_utils import _manager
from ansible_collections.agentfleet.rollout.plugins.module_utils import _report
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import check_plain_http
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import taskdef
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import MASK
from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import check_token
from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import is_secret_key
from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import mask_text
from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import mask_url
from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import redact
from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import secret_patterns
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.errors import TransportError
from ansible_collections.agentfleet.rollout.plugins.module_utils._urls import agent_url_key
from ansible_collections.agentfleet.rollout.plugins.module_utils._urls import refuses_token
from ansible_collections.agentfleet.rollout.plugins.module_utils._urls import same_agent_url
from ansible_collections.agentfleet.rollout.plugins.module_utils._urls import token_in_clear
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate import InputError
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate import check_agents
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate import shown
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate import validate_inputs


# ------------------------------------------------------------------ secret names: one list
@pytest.mark.parametrize("name, secret", [
    # the reports' list
    ("token", True), ("rollout_token", True), ("password", True), ("client_secret", True), ("Authorization", True),
    ("access_key", True), ("aws_session_token", True), ("session", True),
    # the ECS list
    ("OPENAI_KEY", True), ("APIKEY", True), ("api-key", True), ("DB_PASSWD", True), ("GCP_CREDENTIALS", True),
    ("PRIVATE_PEM", True), ("BASIC_AUTH", True), ("auth-header", True), ("authToken", True), ("SSH_KEY", True),
    ("client_key", True),
    # not secrets: the collection's identities, decisions counted, everyday names
    ("fleet_key", False), ("deployment_key", False), ("rollout_deployment_key", False), ("unauthorized", False),
    ("keys", False), ("AGENT_APP_ID", False), ("KEYCLOAK_REALM", False), ("agent_url", False), ("decision", False),
    (None, False),
])
def test_one_list_of_secret_names(name, secret):
    assert is_secret_key(name) is secret


def test_ecs_and_reports_ask_the_same_list():
    for name in ("splunk-token", "OPENAI_KEY", "session", "fleet_key", "unauthorized", "BASIC_AUTH"):
        assert taskdef.secret_name(name) is is_secret_key(name)
        masked = redact({name: "v4lue"})[name] == MASK
        assert masked is is_secret_key(name)


# ------------------------------------------------------------------ masking: one masker
def test_redact_masks_secret_names_known_secrets_escaped_forms_and_url_credentials():
    token = 'tok"en-with-quote'
    obj = {
        "password": "hunter2", "nested": {"api_key": 42, "list": ["a %s b" % token, ("t",)]},
        "raw": json.dumps({"echo": token}), "url": "https://user:pw@h.example/x", "fleet_key": "abc",
        "counts": {"unauthorized": 2}, "flag_token": True, "empty_secret": "", token: "key-with-secret",
    }
    out = redact(obj, [token, "", None])
    assert out["password"] == MASK and out["nested"]["api_key"] == MASK
    assert out["nested"]["list"] == ["a %s b" % MASK, ["t"]]
    assert token not in out["raw"] and json.dumps(token)[1:-1] not in out["raw"]
    assert out["url"] == "https://%s@h.example/x" % MASK
    assert out["fleet_key"] == "abc" and out["counts"] == {"unauthorized": 2}
    assert out["flag_token"] is True and out["empty_secret"] == ""
    assert MASK in out and token not in out
    assert obj["password"] == "hunter2"


def test_longest_secret_first():
    assert mask_text("abcdef", ["abc", "abcdef"]) == MASK


def test_text_unchanged_is_the_same_object():
    class Tagged(str):
        pass

    text = Tagged("nothing secret here")
    assert redact(text, ["zzz"]) is text


@pytest.mark.parametrize("value, expected", [
    ("https://u:p@h/x", "https://%s@h/x" % MASK),
    ("https://h/x?X-Amz-Signature=abc&X-Amz-Credential=k", "https://h/x?%s" % MASK),
    ("https://h/x?version=2", "https://h/x?version=2"),
    ("fetch https://u:p@h/x failed", "fetch https://%s@h/x failed" % MASK),
    ("plain", "plain"),
    (7, 7),
])
def test_mask_url(value, expected):
    assert mask_url(value) == expected
    assert taskdef.redact_value(value) == expected


def test_the_manager_the_reports_and_the_answers_mask_alike():
    token = "manager-token-123"
    value = {"msg": "echo %s" % token, "token": "x", "body": '{"t": "%s"}' % token}
    assert _manager.mask(value, [token]) == redact(value, [token]) == _report.redact(value, [token])
    assert token not in json.dumps(_manager.mask(value, [token]))
    # an answer body: the same forms, as bytes, but no token shorter than MIN_MASKED (it would break the JSON)
    assert secret_patterns('ab"cdefg', "t") == (b'ab\\"cdefg', b'ab"cdefg')


def test_reports_write_what_redact_gives(tmp_path):
    path = tmp_path / "r.json"
    _report.write_report(str(path), {"agent_url": "https://u:pw@h/", "note": "sk-secret-1"}, ["sk-secret-1"])
    data = json.loads(path.read_text())
    assert data == {"agent_url": "https://%s@h/" % MASK, "note": MASK}


# ------------------------------------------------------------------ token validity: one validator
@pytest.mark.parametrize("bad", ["se\ncret", "tab\there", "del\x7f", "caf\u00e9-\u20ac"])
def test_one_token_validator(bad):
    with pytest.raises(ValueError) as err:
        check_token(bad, "rollout_token")
    assert bad not in str(err.value)
    with pytest.raises(InputError) as err:
        validate_inputs("shutdown", {"shutdown_reason": "m", "rollout_token": bad})
    assert "rollout_token" in str(err.value) and bad not in str(err.value)


def test_valid_tokens():
    assert check_token(None) is None and check_token("") is None
    assert check_token("caf\u00e9") == "caf\u00e9"


def test_a_secret_name_is_never_shown_in_an_input_error():
    assert shown("rollout_notify_url", "https://hooks/x") == "(value not shown)"
    assert shown("rollout_client_key", "/k.pem") == "(value not shown)"
    assert shown("rollout_deployment_key", "k1") == "'k1'"


# ------------------------------------------------------------------ agent URL identity: one key
@pytest.mark.parametrize("a, b, same", [
    ("http://h/a", "http://h/a/", True),
    ("HTTP://Agent-1:80/a/", "http://agent-1/a", True),
    ("https://h:443", "https://h/", True),
    ("https://h:8443/", "https://h/", False),
    ("http://h/a", "https://h/a", False),
    ("http://h/a?x=1", "http://h/a", True),
    ("http://[::1]:8080/", "http://[::1]:8080", True),
])
def test_same_agent_url(a, b, same):
    assert same_agent_url(a, b) is same


def test_agent_url_key_keeps_the_written_form_and_survives_bad_urls():
    assert agent_url_key("http://h/a") == "http://h/a"
    assert agent_url_key("http://h:99999/x/") == "http://h:99999/x"
    assert agent_url_key(None) == ""


def test_the_inputs_check_finds_one_agent_written_twice():
    errors = check_agents([{"name": "a", "agent_url": "http://H:80/x/"}, {"name": "b", "agent_url": "http://h/x"}])
    assert len(errors) == 1 and "a and b" in errors[0]


def test_an_agent_token_follows_its_agent_however_its_url_is_written():
    client = AgentClient(token="play-token-1", tokens={"HTTP://Agent:80/a/": "own-token-1"})
    try:
        assert client._headers_for("http://agent/a/v1/system/health")["Authorization"] == "Bearer own-token-1"
        assert client._headers_for("http://agent/b/v1/system/health")["Authorization"] == "Bearer play-token-1"
    finally:
        client.close()


# ------------------------------------------------------------------ the plain-http rule: one decision
@pytest.mark.parametrize("url, clear", [
    ("http://agent.example.org:8080", True),
    ("http://10.0.0.5/", True),
    ("http://localhost:8080", False),
    ("http://x.localhost/", False),
    ("http://127.0.0.2/", False),
    ("http://[::1]:9/", False),
    ("https://agent.example.org", False),
    ("http://", False),
    ("http://h:notaport/", True),
    ("not a url", False),
])
def test_token_in_clear(url, clear):
    assert token_in_clear(url) is clear


def test_refuses_token():
    assert refuses_token("http://a.example/", True, False)
    assert not refuses_token("http://a.example/", False, False)
    assert not refuses_token("http://a.example/", True, True)
    assert not refuses_token("http://127.0.0.1/", True, False)


def test_the_pre_check_and_the_client_agree():
    url = "http://agent.example.org/a"
    own = {"HTTP://AGENT.example.org:80/a/": "own-token-2"}
    with pytest.raises(ValueError):
        check_plain_http({"agent_tokens": own}, urls=[url])
    client = AgentClient(tokens=own)
    try:
        with pytest.raises(TransportError) as err:
            client.request("GET", url + "/v1/system/health")
        assert err.value.kind == "insecure"
    finally:
        client.close()
    check_plain_http({"agent_tokens": own, "allow_insecure_http": True}, urls=[url])
    check_plain_http({}, urls=[url])
