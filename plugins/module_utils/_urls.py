# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one answer to two URL questions (issue 22): which agent URLs are the same agent
(:func:`agent_url_key`), and when a token would cross the network unencrypted (:func:`token_in_clear`, the
plain-http rule: asked before anyone is asked, by ``_common.check_plain_http``, and per request, by the agent
client; the manager's client warns on it).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import is_loopback

DEFAULT_PORTS = {"http": 80, "https": 443}


def agent_url_key(url: object) -> str:
    """What makes two agent URLs the same agent, as a URL: the scheme and the host in lower case, the port (left
    out when it is the scheme's default), the path without a trailing ``/``; user, query and fragment ignored.
    ``HTTP://Agent-1:80/a/`` and ``http://agent-1/a`` are one agent. A URL without a scheme or a host, or with a
    bad port, is its own key (without a trailing ``/``)."""
    text = str(url if url is not None else "")
    try:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        host = parts.hostname
        port = parts.port
    except ValueError:
        return text.rstrip("/")
    if not scheme or not host:
        return text.rstrip("/")
    if ":" in host:
        host = "[%s]" % host
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        host = "%s:%d" % (host, port)
    return "%s://%s%s" % (scheme, host, parts.path.rstrip("/"))


def same_agent_url(a: object, b: object) -> bool:
    """Whether agent URLs ``a`` and ``b`` name the same agent (:func:`agent_url_key`)."""
    return agent_url_key(a) == agent_url_key(b)


def token_in_clear(url: object) -> bool:
    """The plain-http rule: whether a token sent to ``url`` would cross the network unencrypted, that is a plain
    ``http://`` URL whose host is not this machine (:func:`._secrets.is_loopback`). False for anything else,
    an unusable URL included (its own check says what is wrong with it)."""
    try:
        parts = urlsplit(str(url if url is not None else ""))
        scheme, host = parts.scheme.lower(), parts.hostname
    except ValueError:
        return False
    return scheme == "http" and bool(host) and not is_loopback(host)


def refuses_token(url: object, sends_token: bool, allow_insecure_http: bool) -> bool:
    """Whether a request to ``url`` must not be sent: it carries a token (``sends_token``) that would cross the
    network unencrypted (:func:`token_in_clear`), and ``allow_insecure_http`` (rollout_allow_insecure_http) is
    off."""
    return bool(sends_token) and not allow_insecure_http and token_in_clear(url)
