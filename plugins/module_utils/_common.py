# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options shared by every module that talks to agents, and their client."""

from __future__ import annotations

import os
import time

from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient

TOKEN_ENV = "AGENTFLEET_TOKEN"
# Per-agent tokens ({agent_url: token}): not a task option but put into the validated
# parameters by the controller-side action plugins, read from each agent's hostvars
# (plugin_utils/_action.py); never logged.
AGENT_TOKENS = "agent_tokens"

CONNECTION_SPEC = dict(
    token=dict(type="str", no_log=True),
    connect_timeout=dict(type="float", default=3.0),
    read_timeout=dict(type="float", default=10.0),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    client_cert=dict(type="path"),
    client_key=dict(type="path", no_log=False),
    max_workers=dict(type="int", default=32),
)

AGENT_SPEC = dict(
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


def connection_spec(**extra):
    """CONNECTION_SPEC plus ``extra`` options, every option dict copied (specs never share one)."""
    spec = dict((k, dict(v)) for k, v in CONNECTION_SPEC.items())
    spec.update((k, dict(v)) for k, v in extra.items())
    return spec


def resolve_token(params):
    """The token from the task, else from ``AGENTFLEET_TOKEN``; never logged."""
    token = params.get("token")
    if not token:
        token = os.environ.get(TOKEN_ENV) or None
    return token


def token_secrets(params):
    """The secrets a report or audit line must never contain: the token and every agent's own token."""
    token = resolve_token(params)
    secrets = [token] if token else []
    for agent_token in (params.get(AGENT_TOKENS) or {}).values():
        if agent_token and agent_token not in secrets:
            secrets.append(agent_token)
    return secrets


def client_from_params(params, run=None):
    """The agent client of ``params``; with a :class:`._run.Run`, every request carries its id and checks it."""
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
    )


def validate_agent_urls(agents):
    """One clear error listing agents whose agent_url is not http(s)."""
    bad = [a["name"] for a in agents if not str(a.get("agent_url") or "").lower().startswith(("http://", "https://"))]
    if bad:
        shown = ", ".join(bad[:10]) + (" and %d more" % (len(bad) - 10) if len(bad) > 10 else "")
        raise ValueError("agent_url must be an http:// or https:// URL for: %s" % shown)
