# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options shared by every module that talks to agents, and their client."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
from ansible_collections.agentfleet.rollout.plugins.module_utils._urls import agent_url_key
from ansible_collections.agentfleet.rollout.plugins.module_utils._urls import refuses_token

if TYPE_CHECKING:
    from typing import Any
    from typing import Iterable
    from typing import Mapping
    from typing import Optional

    from ansible_collections.agentfleet.rollout.plugins.module_utils._run import Run

TOKEN_ENV = "AGENTFLEET_TOKEN"
# Per-agent tokens ({agent_url: token}): not a task option but put into the validated
# parameters by the controller-side action plugins, read from each agent's hostvars
# (plugin_utils/_action.py); never logged.
AGENT_TOKENS = "agent_tokens"

CONNECTION_SPEC: dict[str, dict[str, Any]] = dict(
    token=dict(type="str", no_log=True),
    connect_timeout=dict(type="float", default=3.0),
    read_timeout=dict(type="float", default=10.0),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    client_cert=dict(type="path"),
    client_key=dict(type="path", no_log=False),
    max_workers=dict(type="int", default=32),
    allow_insecure_http=dict(type="bool", default=False),
)

AGENT_SPEC: dict[str, Any] = dict(
    type="list",
    elements="dict",
    required=True,
    options=dict(
        name=dict(type="str", required=True),
        agent_url=dict(type="str", required=True),
        agent_id=dict(type="str"),
        occurrence_id=dict(type="str"),
        cohort=dict(type="str"),
        wave=dict(type="int"),
        version=dict(type="str"),
        version_before=dict(type="str"),
        canary_group=dict(type="str"),
    ),
)


def connection_spec(**extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """CONNECTION_SPEC plus ``extra`` options, every option dict copied (specs never share one)."""
    spec = dict((k, dict(v)) for k, v in CONNECTION_SPEC.items())
    spec.update((k, dict(v)) for k, v in extra.items())
    return spec


def resolve_token(params: Mapping[str, Any]) -> Optional[str]:
    """The token from the task, else from ``AGENTFLEET_TOKEN``; never logged."""
    token: Optional[str] = params.get("token")
    if not token:
        token = os.environ.get(TOKEN_ENV) or None
    return token


def token_secrets(params: Mapping[str, Any]) -> list[str]:
    """The secrets a report or audit line must never contain: the token and every agent's own token."""
    token = resolve_token(params)
    secrets = [token] if token else []
    for agent_token in (params.get(AGENT_TOKENS) or {}).values():
        if agent_token and agent_token not in secrets:
            secrets.append(agent_token)
    return secrets


def check_plain_http(params: Mapping[str, Any], urls: Optional[Iterable[Optional[str]]] = None) -> None:
    """ValueError when a bearer token would go over plain ``http://`` to a host other than this machine.

    ``urls``: the agent URLs the task talks to (default: its ``agents``' ``agent_url``), plus every URL
    that has a token of its own. Allowed with ``allow_insecure_http`` (``rollout_allow_insecure_http``).
    One error listing the agents, raised before any request is sent; no token is shown.
    """
    if params.get("allow_insecure_http"):
        return
    token = resolve_token(params)
    own = params.get(AGENT_TOKENS) or {}
    if urls is None:
        urls = [a.get("agent_url") for a in (params.get("agents") or [])]
    bad = []
    own_by_key = dict((agent_url_key(u), t) for u, t in own.items())
    for url in list(urls) + list(own):
        text = str(url or "")
        if refuses_token(text, bool(own_by_key.get(agent_url_key(text)) or token), False) and text not in bad:
            bad.append(text)
    if bad:
        shown = ", ".join(bad[:5]) + (" and %d more" % (len(bad) - 5) if len(bad) > 5 else "")
        raise ValueError("rollout_allow_insecure_http: the token would be sent over plain http:// to %s; use https:// "
                         "agent URLs (rollout_ca_path for a private CA), or set rollout_allow_insecure_http: true "
                         "(allow_insecure_http) to send it anyway. Nothing was sent." % shown)


def client_from_params(params: Mapping[str, Any], run: Optional[Run] = None) -> AgentClient:
    """The agent client of ``params``; with a :class:`._run.Run`, every request carries its id and checks it.

    Refuses (ValueError, before any request) a token bound for a plain-http agent that is not on this
    machine, unless ``allow_insecure_http`` (:func:`check_plain_http`).
    """
    check_plain_http(params)
    return AgentClient(
        run_id=run.run_id if run is not None else None,
        guard=run.check if run is not None else None,
        sleep=run.sleep if run is not None else time.sleep,
        token=resolve_token(params),
        connect_timeout=params.get("connect_timeout") or 3.0,
        read_timeout=params.get("read_timeout") or 10.0,
        validate_certs=params.get("validate_certs", True),
        ca_path=params.get("ca_path"),
        client_cert=params.get("client_cert"),
        client_key=params.get("client_key"),
        max_workers=params.get("max_workers") or 32,
        tokens=params.get(AGENT_TOKENS),
        allow_insecure_http=bool(params.get("allow_insecure_http")),
    )


def validate_agent_urls(agents: Iterable[Mapping[str, Any]]) -> None:
    """One clear error listing agents whose agent_url is not http(s)."""
    bad = [a["name"] for a in agents if not str(a.get("agent_url") or "").lower().startswith(("http://", "https://"))]
    if bad:
        shown = ", ".join(bad[:10]) + (" and %d more" % (len(bad) - 10) if len(bad) > 10 else "")
        raise ValueError("agent_url must be an http:// or https:// URL for: %s" % shown)
