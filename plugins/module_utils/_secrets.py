# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent tokens: checked before they go into a header, sent over plain http:// only to this machine
(:func:`is_loopback`, the one answer of the collection to "is this host this machine?"), masked in what the agents
answer.

:func:`check_token` refuses a token that cannot be sent as an HTTP header value (a control
character, a character outside latin-1) without ever showing it; :func:`secret_patterns` lists the
byte strings of the tokens an answer body may echo, which the agent client replaces with
:data:`MASK` as the body arrives.
"""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import urlsplit

# what replaces a token found in an agent's answer (the same mask as the reports')
MASK = "********"
MASK_BYTES = MASK.encode("ascii")
# tokens shorter than this are not masked in answers: "t" would mask every t of every answer (no real
# token is that short; reports and audit lines still mask them)
MIN_MASKED = 6


def secret_patterns(*tokens):
    """The byte strings of ``tokens`` an answer body may carry: as sent, and JSON-escaped (longest first)."""
    found = set()
    for token in tokens:
        if not token or len(token) < MIN_MASKED:
            continue
        found.add(token.encode("latin-1"))
        escaped = json.dumps(token)[1:-1]
        if escaped != token:
            found.add(escaped.encode("ascii"))
    return tuple(sorted(found, key=len, reverse=True))


# how an error names the play-level token: the option, the playbooks' variable, the environment variable
TOKEN_NAME = "rollout_token (the token option, or AGENTFLEET_TOKEN)"


def check_token(token, name=TOKEN_NAME):
    """``token`` as a str (None when empty), or ValueError naming ``name``, never showing the value."""
    if token is None:
        return None
    token = str(token)
    if not token:
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in token):
        raise ValueError("%s: contains a line break or another control character (its value is not shown); "
                         "check how it was set (a trailing newline from a file?)" % name)
    try:
        token.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("%s: contains characters that cannot be sent in an HTTP header (its value is not shown)"
                         % name) from None
    return token


def is_loopback(host):
    """Whether ``host`` (a URL's host name) is this machine: ``localhost`` (and ``*.localhost``, RFC 6761),
    127.0.0.0/8 or ::1."""
    host = (host or "").strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_is_loopback(url):
    """:func:`is_loopback` of ``url``'s host."""
    return is_loopback(urlsplit(url).hostname)
