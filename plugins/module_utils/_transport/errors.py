# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What went wrong when a request got no HTTP answer: :class:`TransportError` and its ``kind``.

:func:`transport_failure` reads an exception out of urllib3 (with the causes it wraps) and the
request's state (was it still connecting? did its deadline pass?) and says whether the request
may have reached the agent (``sent``) and what failed.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from typing import TYPE_CHECKING, List, Optional, Tuple, Type, Union

from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.compat import u3exc

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.pools import RequestState

# what isinstance takes
ExcTypes = Union[Type[BaseException], Tuple[Type[BaseException], ...]]


class ProtocolError(Exception):
    """A failure talking to an agent that is not a decision."""


class TransportError(ProtocolError):
    """The request did not produce an HTTP answer.

    ``sent`` tells whether the request may have reached the agent: False only
    when it failed before a connection to the agent was established (nothing
    was written). ``kind`` says what failed:

    - ``refused``: connection refused (nothing listens there);
    - ``reset``: the connection was reset or closed without an answer;
    - ``connect``: no connection for another reason (host unreachable, name
      not resolved);
    - ``timeout``: connect timeout (``sent`` False), read timeout or the
      request deadline (``sent`` True), or no free pooled connection in time;
    - ``tls``: TLS handshake or certificate verification failed;
    - ``proxy``: the proxy from the environment could not be reached or
      refused the tunnel (says nothing about the agent);
    - ``bad_url``: the URL is not a usable http(s) URL;
    - ``insecure``: refused to send a token over plain ``http://`` to a host
      other than this machine (see ``allow_insecure_http``);
    - ``error``: any other failure (an oversized or malformed answer).

    ``refused``, ``reset`` and ``connect`` are what ``_protocol.classify_liveness``
    takes as "nothing is listening any more".
    """

    def __init__(self, message: str, sent: bool = True, kind: str = "error") -> None:
        super().__init__(message)
        self.sent = sent
        self.kind = kind


def _chain(exc: BaseException) -> List[BaseException]:
    """``exc`` and the exceptions it wraps (urllib3 reasons and arguments, causes, contexts)."""
    seen: List[BaseException] = []
    todo: List[Optional[BaseException]] = [exc]
    while todo and len(seen) < 16:
        item = todo.pop(0)
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        for attr in ("reason", "original_error"):
            inner = getattr(item, attr, None)
            if isinstance(inner, BaseException):
                todo.append(inner)
        todo.extend(a for a in item.args if isinstance(a, BaseException))
        todo.append(item.__cause__)
        todo.append(item.__context__)
    return seen


def _find(chain: List[BaseException], types: ExcTypes) -> Optional[BaseException]:
    for exc in chain:
        if isinstance(exc, types):
            return exc
    return None


def transport_failure(exc: BaseException, state: RequestState, deadline: float, read_timeout: float,
                      connect_timeout: float) -> TransportError:
    """The :class:`TransportError` for an exception out of urllib3 (never with header values in it).

    ``state`` is the request's :class:`.pools.RequestState`; ``deadline``, ``read_timeout`` and
    ``connect_timeout`` (seconds) are what the messages name.
    """
    chain = _chain(exc)
    if state.expired:
        return TransportError("no complete answer within the request deadline of %.1fs" % deadline,
                              sent=not state.connecting, kind="timeout")
    if _find(chain, u3exc.EmptyPoolError):
        return TransportError("no free connection within %.1fs" % deadline, sent=False, kind="timeout")
    if _find(chain, u3exc.ProxyError) and (state.connecting or state.conn is None):
        cause = _find(chain[1:], (OSError,))
        return TransportError("proxy failure: %s" % (getattr(cause, "strerror", None) or type(chain[-1]).__name__),
                              sent=False, kind="proxy")
    if state.connecting or _find(chain, u3exc.NewConnectionError):
        if _find(chain, (u3exc.SSLError, ssl.SSLError, ssl.CertificateError)):
            return TransportError("TLS error: %s" % (_find(chain, (ssl.SSLError, ssl.CertificateError)) or exc),
                                  sent=False, kind="tls")
        if _find(chain, ConnectionRefusedError):
            return TransportError("connection refused", sent=False, kind="refused")
        if _find(chain, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
            return TransportError("connection reset while connecting", sent=False, kind="reset")
        if _find(chain, u3exc.NameResolutionError):
            return TransportError("connect failed: host name not resolved", sent=False, kind="connect")
        if _find(chain, (u3exc.ConnectTimeoutError, socket.timeout)) and not _find(chain, u3exc.NewConnectionError):
            return TransportError("connect timeout after %.1fs" % connect_timeout, sent=False, kind="timeout")
        oserr = _find(chain, OSError)
        if isinstance(oserr, socket.timeout):
            return TransportError("connect timeout after %.1fs" % connect_timeout, sent=False, kind="timeout")
        return TransportError("connect failed: %s" % (getattr(oserr, "strerror", None) or type(chain[-1]).__name__),
                              sent=False, kind="connect")
    if _find(chain, (u3exc.ReadTimeoutError, socket.timeout)):
        return TransportError("read timeout after %.1fs" % read_timeout, sent=True, kind="timeout")
    if _find(chain, (u3exc.SSLError, ssl.SSLError)):
        return TransportError("TLS error: %s" % (_find(chain, ssl.SSLError) or exc), sent=True, kind="tls")
    lost = _find(chain, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, http.client.RemoteDisconnected,
                         http.client.IncompleteRead, u3exc.ProtocolError))
    if lost is not None:
        return TransportError("connection lost: %s" % type(lost).__name__, sent=True, kind="reset")
    return TransportError("HTTP failure: %s" % type(exc).__name__, sent=True, kind="error")
