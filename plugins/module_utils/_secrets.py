# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one answer to each secret question (issue 22): which token is valid, which host is this
machine, which key names a secret, and how a secret is masked.

- :func:`check_token`: a token that can go into a header (no control character, latin-1 only), never shown;
- :func:`is_loopback`: "is this host this machine?" (plain http:// may carry a token only there, ``_urls``);
- :data:`SECRET_KEY_PARTS` and :func:`is_secret_key`: the one list of the names that hold a secret (report
  keys, ECS environment variables, log options and labels);
- :func:`redact`: the one masker of values (reports, audit lines, the manager's results, every task result):
  values under secret names, every known secret (as given and JSON-escaped) and the credentials of URLs
  (:func:`mask_url`) become :data:`MASK`;
- :func:`secret_patterns`: the same secrets as the byte strings an agent's answer body may echo, which the agent
  client replaces with :data:`MASK_BYTES` as the body arrives.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from typing import TYPE_CHECKING, Any, Iterable, Optional, Tuple
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from re import Match

# what replaces a secret, everywhere (reports, audit lines, results, answers)
MASK = "********"
MASK_BYTES = MASK.encode("ascii")
# tokens shorter than this are not masked in answers: "t" would mask every t of every answer and break its JSON
# (no real token is that short; reports, audit lines and results still mask them)
MIN_MASKED = 6

# The one list of what names a secret (a report's key, an ECS environment variable, a log option, a label): a name
# holding one of these parts, once lower-cased with "-" read as "_" (session_token, DB_PASSWORD, splunk-token) ...
SECRET_KEY_PARTS = ("token", "password", "passwd", "secret", "credential", "private", "session", "authorization",
                    "api_key", "apikey", "access_key", "accesskey")
# ... or a word (between "_") that starts with one of these (BASIC_AUTH, auth-header, authToken, OAUTH_CLIENT: not
# unauthorized, a count of decisions) ...
SECRET_KEY_WORDS = ("auth", "oauth")
# ... or ending in "key" (OPENAI_KEY, SSH_KEY, client_key), except in the collection's own names of a fleet and a
# deployment (fleet_key, rollout_deployment_key), which are identities, not secrets
NOT_SECRET_KEYS = ("fleet_key", "deployment_key")

# a URL in a text, and the query of a signed URL (pre-signed S3, SAS tokens)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
_SIGNED_QUERY = re.compile(r"(signature|credential|token|sig=|key=)", re.I)


def is_secret_key(name: object) -> bool:
    """Whether a key, variable, option or label ``name`` holds a secret (:data:`SECRET_KEY_PARTS`)."""
    return _is_secret_name(str(name if name is not None else ""))


@functools.lru_cache(maxsize=4096)
def _is_secret_name(name: str) -> bool:
    # cached: reports and audit lines ask it of the same few dozen keys for every agent
    key = name.lower().replace("-", "_")
    if any(part in key for part in SECRET_KEY_PARTS):
        return True
    if any(word.startswith(SECRET_KEY_WORDS) for word in key.split("_")):
        return True
    return key.endswith("key") and not key.endswith(NOT_SECRET_KEYS)


def secret_forms(secret: str) -> Tuple[str, ...]:
    """How ``secret`` can stand in a text: as it is, and JSON-escaped when that differs."""
    escaped = json.dumps(secret)[1:-1]
    return (secret,) if escaped == secret else (secret, escaped)


def _mask_one_url(match: Match[str]) -> str:
    url = match.group(0)
    scheme, rest = url.split("://", 1)
    host, slash, tail = rest.partition("/")
    if "@" in host:
        host = MASK + "@" + host.split("@", 1)[1]
    if "?" in tail and _SIGNED_QUERY.search(tail.split("?", 1)[1]):
        tail = tail.split("?", 1)[0] + "?" + MASK
    return scheme + "://" + host + slash + tail


def mask_url(value: Any) -> Any:
    """``value`` with the credentials of every URL in it masked (``user:pass@``, a signed query string);
    anything but a str as it is."""
    if not isinstance(value, str):
        return value
    return _mask(value, ())


def _forms(secrets: Iterable[Any]) -> Tuple[str, ...]:
    """The forms (:func:`secret_forms`) of the non-empty str ``secrets``, longest first."""
    found = set(f for s in secrets if isinstance(s, str) and s for f in secret_forms(s))
    return tuple(sorted(found, key=len, reverse=True))


def _mask(text: str, forms: Tuple[str, ...]) -> str:
    """``text`` masked of ``forms`` and of URL credentials; ``text`` itself (its type kept) when nothing is."""
    out = text
    for form in forms:
        if form in out:
            out = out.replace(form, MASK)
    if "://" in out:
        out = _URL.sub(_mask_one_url, out)
    return text if out == text else out


def mask_text(text: str, secrets: Iterable[Any]) -> str:
    """``text`` with every one of ``secrets`` (as given and JSON-escaped, longest first) and every URL's
    credentials replaced by :data:`MASK`."""
    return _mask(text, _forms(secrets))


def redact(obj: Any, secrets: Optional[Iterable[Any]] = ()) -> Any:
    """A copy of ``obj`` (dicts, lists and tuples, as lists, of scalars) safe to show: the value under a key that
    names a secret (:func:`is_secret_key`; a non-empty scalar, not a bool) is :data:`MASK` whole, and every str, keys
    included, is :func:`mask_text` of ``secrets`` (the str ones; empty ones ignored)."""
    return _redact(obj, _forms(secrets or ()))


def _redact(obj: Any, forms: Tuple[str, ...]) -> Any:
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if is_secret_key(key) and value not in (None, "", False) and not isinstance(value, (dict, list, bool)):
                value = MASK
            else:
                value = _redact(value, forms)
            out[_redact(key, forms)] = value
        return out
    if isinstance(obj, (list, tuple)):
        return [_redact(v, forms) for v in obj]
    if isinstance(obj, str):
        return _mask(obj, forms)
    return obj


def secret_patterns(*tokens: Optional[str]) -> Tuple[bytes, ...]:
    """The byte strings of ``tokens`` an answer body may carry: as sent, and JSON-escaped (longest first);
    tokens shorter than :data:`MIN_MASKED` left out."""
    found = set()
    for token in tokens:
        if not token or len(token) < MIN_MASKED:
            continue
        for i, form in enumerate(secret_forms(token)):
            found.add(form.encode("latin-1" if i == 0 else "ascii"))
    return tuple(sorted(found, key=len, reverse=True))


# how an error names the play-level token: the option, the playbooks' variable, the environment variable
TOKEN_NAME = "rollout_token (the token option, or AGENTFLEET_TOKEN)"


def check_token(token: object, name: str = TOKEN_NAME) -> Optional[str]:
    """``token`` as a str (None when empty), or ValueError naming ``name``, never showing the value: the one
    token validator (a control character, a character outside latin-1 cannot go into an HTTP header)."""
    if token is None:
        return None
    text = str(token)
    if not text:
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError("%s: contains a line break or another control character (its value is not shown); "
                         "check how it was set (a trailing newline from a file?)" % name)
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("%s: contains characters that cannot be sent in an HTTP header (its value is not shown)"
                         % name) from None
    return text


def is_loopback(host: Optional[str]) -> bool:
    """Whether ``host`` (a URL's host name) is this machine: ``localhost`` (and ``*.localhost``, RFC 6761),
    127.0.0.0/8 or ::1."""
    host = (host or "").strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_is_loopback(url: str) -> bool:
    """:func:`is_loopback` of ``url``'s host."""
    return is_loopback(urlsplit(url).hostname)
