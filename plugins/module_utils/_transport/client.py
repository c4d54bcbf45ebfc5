# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTTP client of the agents (urllib3), under the protocol's verbs (``_protocol.AgentClient``).

One :class:`HTTPClient` serves a whole wave: keep-alive connection pools per
(scheme, host, port) bounded to ``max_workers`` connections each, one TLS
context built once (optionally with a client certificate), proxies from the
environment, separate connect and read timeouts plus a deadline per request,
retries of what provably did not reach the agent, a refusal to send a token
over plain http to another machine, and a cap on the answer's size. Every
answer body is masked of the tokens sent with the request.
"""

from __future__ import annotations

import json
import random
import ssl
import threading
import time
import urllib.request
import warnings
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, Type, TypeVar
from urllib.parse import urlsplit

from ansible_collections.agentfleet.rollout.plugins.module_utils._run import RUN_HEADER
from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import MASK_BYTES
from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import check_token
from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import secret_patterns
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.compat import HAS_URLLIB3
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.compat import Retry
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.compat import Timeout
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.compat import u3exc
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.compat import urllib3
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.errors import ProtocolError
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.errors import TransportError
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.errors import transport_failure
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.pools import CURRENT
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.pools import IdleBudget
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.pools import POOL_CLASSES
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.pools import PoolManager
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.pools import ProxyManager
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.pools import RequestState
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.pools import WATCHDOG
from ansible_collections.agentfleet.rollout.plugins.module_utils._urls import agent_url_key
from ansible_collections.agentfleet.rollout.plugins.module_utils._urls import refuses_token
from ansible_collections.agentfleet.rollout.plugins.module_utils._version import USER_AGENT

DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_READ_TIMEOUT = 10.0
DEFAULT_MAX_WORKERS = 32
DEFAULT_CONNECT_RETRIES = 4
DEFAULT_RETRY_DELAY = 0.2
DEFAULT_RETRY_DEADLINE = 10.0
# longest single back-off pause between two connect attempts
RETRY_DELAY_MAX = 3.0
# idle keep-alive connections kept per fan-out worker, over all pools: a connection coming
# back beyond max_workers x this is closed, so the open sockets stay bounded however many
# agent hosts there are
IDLE_PER_WORKER = 8
# connection pools (one per scheme, host, port) kept, least recently used dropped first;
# a pool without idle connections holds no socket
MAX_POOLS = 4096
# the largest answer body read (health and shutdown answers are a few hundred bytes; the
# simulator's batched start call answers about 1 kB per agent)
MAX_BODY = 64 * 1024 * 1024
# failures before the request was sent that are worth another attempt
RETRY_KINDS = ("refused", "reset", "connect", "timeout", "proxy")

# a request's headers; where it goes: (scheme, host, port, path)
Headers = Dict[str, str]
Target = Tuple[str, str, int, str]
_Manager = TypeVar("_Manager", PoolManager, ProxyManager)
_Client = TypeVar("_Client", bound="HTTPClient")


class Response:
    """A parsed HTTP answer: status, raw body, JSON (or None), elapsed seconds, headers."""

    __slots__ = ("status", "body", "json", "elapsed", "headers")

    def __init__(self, status: int, body: bytes, elapsed: float, headers: Optional[Mapping[str, str]] = None) -> None:
        self.status = status
        self.body = body
        self.elapsed = elapsed
        self.headers = headers if headers is not None else {}
        try:
            self.json: Any = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            self.json = None


class HTTPClient:
    """HTTP(S) client for the agents, shared by a wave's threads (urllib3).

    :class:`._protocol.AgentClient` adds the protocol's verbs and the fan-out. Options:

    - ``token``: sent as ``Authorization: Bearer``; never part of any message.
    - ``tokens``: per-agent tokens, ``{agent_url: token}`` (a real fleet gives
      each agent its own service token): a request to that agent URL (or
      below it) carries that agent's token instead of ``token``; the others
      carry ``token``. Matched on whole path segments of the URLs as
      ``_urls.agent_url_key`` has them (the same agent URL everywhere); one
      pool per host and port all the same (the header is per request).
    - ``connect_timeout``, ``read_timeout``: seconds, per connection attempt
      and per wait for bytes.
    - ``request_deadline``: the most seconds one attempt may take from start
      to the last byte of the answer (default ``connect_timeout +
      read_timeout``); a server that trickles its answer is cut off then
      (:class:`TransportError` kind ``timeout``, ``sent`` True).
    - ``validate_certs``, ``ca_path``: TLS verification (system store by
      default); ``client_cert``, ``client_key``: a client certificate (PEM
      files) for mutual TLS. One SSL context, built once.
    - ``max_workers``: the bound of connections per pool (per scheme, host,
      port; requests wait for a free one), and the fan-out threads.
    - ``connect_retries``, ``retry_delay``, ``retry_deadline``: failures
      before the request was sent (refused, connect timeout, reset while
      connecting, proxy unreachable) are retried with jittered exponential
      back-off (``retry_delay`` x 2^n, +-50 %), at most ``connect_retries``
      times and never past ``retry_deadline`` seconds after the first
      attempt. Nothing that may have reached the agent is sent again, except
      by :meth:`._protocol.AgentClient.ask` as it documents.
    - ``allow_insecure_http``: send a token over plain ``http://`` to hosts
      other than this machine (loopback: always); without it such a request
      is refused before anything is sent (:class:`TransportError` kind
      ``insecure``). Every answer body is masked of the tokens sent with the
      request (``********``) as it arrives, so no decision, cause, note or
      report carries a token an agent echoed.
    - ``sleep``, ``jitter``: injectable pause and random source (tests).
    - ``run_id``: sent as ``X-Agentfleet-Run`` with every request (which run
      of a deployment sent it); ``guard``: called before every request, it
      raises to stop the request from being sent (the run's liveness and
      fence, :meth:`._run.Run.check`).

    Proxies come from the environment like ``requests`` does: ``HTTPS_PROXY``
    / ``HTTP_PROXY`` / ``ALL_PROXY`` (either case), skipped for hosts in
    ``NO_PROXY``.
    """

    def __init__(
        self,
        token: Optional[str] = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        validate_certs: bool = True,
        ca_path: Optional[str] = None,
        max_workers: int = DEFAULT_MAX_WORKERS,
        connect_retries: int = DEFAULT_CONNECT_RETRIES,
        retry_delay: float = DEFAULT_RETRY_DELAY,
        sleep: Callable[[float], None] = time.sleep,
        client_cert: Optional[str] = None,
        client_key: Optional[str] = None,
        request_deadline: Optional[float] = None,
        retry_deadline: float = DEFAULT_RETRY_DEADLINE,
        jitter: Callable[[], float] = random.random,
        run_id: Optional[str] = None,
        guard: Optional[Callable[[], None]] = None,
        tokens: Optional[Mapping[str, Optional[str]]] = None,
        allow_insecure_http: bool = False,
    ) -> None:
        if not HAS_URLLIB3:
            raise ProtocolError("the agent client needs the Python package urllib3 on the controller "
                                "(pip install urllib3; it is in the collection's requirements.txt)")
        self._token = check_token(token)
        self.allow_insecure_http = bool(allow_insecure_http)
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.request_deadline = float(request_deadline) if request_deadline else self.connect_timeout + self.read_timeout
        self.max_workers = max(1, int(max_workers))
        self.connect_retries = max(0, int(connect_retries))
        self.retry_delay = float(retry_delay)
        self.retry_deadline = float(retry_deadline)
        self._sleep = sleep
        self._jitter = jitter
        self._guard = guard
        self._lock = threading.Lock()
        self._ssl_args = (validate_certs, ca_path, client_cert, client_key)
        # a CA bundle or a client certificate is checked now (a bad path is an error before anything is sent);
        # the system's default context (loading its CA store costs ~50 ms) only once an https agent is asked
        self._ssl = self._build_ssl_context(*self._ssl_args) if (ca_path or client_cert or client_key) else None
        self._timeout = Timeout(connect=self.connect_timeout, read=self.read_timeout)
        self._no_retry = Retry(total=False, redirect=False, raise_on_redirect=False)
        self._redirects = Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5,
                                raise_on_redirect=False, raise_on_status=False)
        self._pool_kw = dict(num_pools=MAX_POOLS, maxsize=self.max_workers, block=True, ssl_context=self._ssl)
        self._budget = IdleBudget(IDLE_PER_WORKER * self.max_workers)
        self._manager = self._new_manager(PoolManager)
        self._pools: Dict[Tuple[str, str, int], Any] = {}
        self._targets: Dict[str, Target] = {}
        self._proxies = urllib.request.getproxies_environment()
        self._proxy_managers: Dict[str, ProxyManager] = {}
        self._routes: Dict[Tuple[str, str, int], Optional[ProxyManager]] = {}
        headers: Headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self._token:
            headers["Authorization"] = "Bearer " + self._token
        if run_id:
            headers[RUN_HEADER] = str(run_id)
        self._headers = headers
        # what an answer must never carry on into a decision, a cause, a note or a report: the tokens
        # sent with the request (an agent or proxy that echoes the Authorization header in an error
        # body). Keyed by the identity of each headers dict built here; masked as the body arrives.
        self._secrets: Dict[int, Tuple[bytes, ...]] = {id(headers): secret_patterns(self._token)}
        # per-agent Authorization: base URL (no trailing slash) -> headers; request URL -> headers (cache)
        self._agent_headers: Dict[str, Headers] = {}
        for agent_url, agent_token in (tokens or {}).items():
            agent_token = check_token(agent_token, "rollout_token of the agent at %s" % agent_url)
            base = agent_url_key(agent_url)
            agent_headers = dict(self._headers)
            if agent_token:
                agent_headers["Authorization"] = "Bearer " + agent_token
            self._agent_headers[base] = agent_headers
            self._secrets[id(agent_headers)] = secret_patterns(agent_token, self._token)
        self._url_headers: Dict[str, Headers] = {}

    # -- plumbing ---------------------------------------------------------
    @staticmethod
    def _build_ssl_context(validate_certs: bool, ca_path: Optional[str], client_cert: Optional[str],
                           client_key: Optional[str]) -> ssl.SSLContext:
        if client_key and not client_cert:
            raise ValueError("client_key: needs client_cert too")
        try:
            if validate_certs:
                ctx = ssl.create_default_context(cafile=ca_path)
            else:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if not validate_certs:
                # the user chose not to verify (validate_certs: false): no warning per request
                warnings.filterwarnings("ignore", category=u3exc.InsecureRequestWarning)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError("ca_path: cannot load CA bundle %s: %s" % (ca_path, getattr(exc, "strerror", None) or exc)) from None
        if client_cert:
            try:
                ctx.load_cert_chain(client_cert, client_key or None)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError("client_cert/client_key: cannot load the client certificate %s: %s"
                                 % (client_cert, getattr(exc, "strerror", None) or exc)) from None
        return ctx

    def _ssl_context(self) -> ssl.SSLContext:
        """The client's SSL context, built on first use (see ``__init__``)."""
        with self._lock:
            if self._ssl is None:
                self._ssl = self._build_ssl_context(*self._ssl_args)
            return self._ssl

    def _new_manager(self, cls: Type[_Manager], **kw: Any) -> _Manager:
        kw.update(self._pool_kw)
        manager = cls(**kw)
        manager.pool_classes_by_scheme = POOL_CLASSES
        manager.budget = self._budget
        manager.ssl_context = self._ssl_context
        return manager

    def _route(self, scheme: str, host: str, port: int) -> Optional[ProxyManager]:
        """The ProxyManager for requests to (scheme, host, port), or None to go direct (cached)."""
        key = (scheme, host, port)
        try:
            return self._routes[key]
        except KeyError:
            pass
        manager = None
        proxy = self._proxies.get(scheme) or self._proxies.get("all")
        # proxy_bypass_environment: in urllib.request since Python 3.0, but not in typeshed
        if proxy and not (urllib.request.proxy_bypass_environment(host, self._proxies)  # type: ignore[attr-defined]
                          or urllib.request.proxy_bypass_environment("%s:%d" % (host, port), self._proxies)):  # type: ignore[attr-defined]
            with self._lock:
                manager = self._proxy_managers.get(proxy)
                if manager is None:
                    if "://" not in proxy:
                        proxy = "http://" + proxy
                    auth = urllib3.util.parse_url(proxy).auth
                    manager = self._new_manager(
                        ProxyManager, proxy_url=proxy,
                        proxy_headers=urllib3.make_headers(proxy_basic_auth=auth) if auth else None)
                    self._proxy_managers[proxy] = manager
        self._routes[key] = manager
        return manager

    def _target(self, url: str) -> Target:
        """``(scheme, host, port, path)`` of ``url`` (cached), or TransportError kind ``bad_url``."""
        scheme: Optional[str]
        host: Optional[str]
        try:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            host = parts.hostname
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            scheme = host = None
        if scheme is None or scheme not in ("http", "https") or not host:
            raise TransportError("invalid agent URL %r (an http:// or https:// URL is needed)" % url, sent=False,
                                 kind="bad_url")
        if refuses_token(url, "Authorization" in self._headers_for(url), self.allow_insecure_http):
            raise TransportError("refused to send the token over plain http:// to %s (not this machine): use https://, "
                                 "or allow_insecure_http (rollout_allow_insecure_http)" % host, sent=False, kind="insecure")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        if len(self._targets) >= MAX_POOLS * 4:
            self._targets = {}
        target = self._targets[url] = (scheme, host, port, path)
        return target

    def _headers_for(self, url: str) -> Headers:
        """The headers of a request to ``url``: those of the agent whose URL is its longest prefix
        (on a path-segment boundary), else the client's (cached per URL)."""
        if not self._agent_headers:
            return self._headers
        headers = self._url_headers.get(url)
        if headers is not None:
            return headers
        base = agent_url_key(url)
        headers = self._headers
        start = base.find("://")
        start = start + 3 if start >= 0 else 0
        while True:
            found = self._agent_headers.get(base)
            if found is not None:
                headers = found
                break
            cut = base.rfind("/")
            if cut < start:
                break
            base = base[:cut]
        if len(self._url_headers) >= MAX_POOLS * 4:
            self._url_headers = {}
        self._url_headers[url] = headers
        return headers

    def _backoff(self, attempt: int) -> float:
        base: float = min(self.retry_delay * (2 ** attempt), RETRY_DELAY_MAX)
        return base * (0.5 + self._jitter())

    def request(self, method: str, url: str, body: Any = None, fresh: bool = False, keep: bool = True,
                connect_retries: Optional[int] = 0, timeout: Optional[float] = None, redirect: bool = False,
                retry_kinds: Iterable[str] = RETRY_KINDS) -> Response:
        """One HTTP request. Raises :class:`TransportError` when no answer came.

        ``connect_retries``: how often a failure before sending is tried again
        (see the class; ``None`` = the client's ``connect_retries``). ``keep=False``
        closes the connection after the answer (an agent that accepted a
        shutdown is about to go away). ``timeout`` overrides both timeouts
        (and the deadline is then twice it); ``redirect`` follows up to 5
        redirects. ``retry_kinds``: the failure kinds (before sending) worth
        another attempt. ``fresh`` is accepted for compatibility: a pooled
        connection is checked to be alive before it is reused.
        """
        retries = self.connect_retries if connect_retries is None else max(0, int(connect_retries))
        start = time.monotonic()
        attempt = 0
        while True:
            try:
                return self._once(method, url, body, keep, timeout, redirect)
            except TransportError as exc:
                if exc.sent or exc.kind not in retry_kinds or attempt >= retries:
                    raise
                delay = self._backoff(attempt)
                if time.monotonic() - start + delay > self.retry_deadline:
                    raise
                attempt += 1
                self._sleep(delay)

    def _once(self, method: str, url: str, body: Any, keep: bool, timeout: Optional[float], redirect: bool,
              again: bool = True) -> Response:
        if self._guard is not None:
            # a stopped, orphaned or fenced-off run sends nothing more
            self._guard()
        target = self._targets.get(url)
        if target is None:
            target = self._target(url)
        scheme, host, port, path = target
        headers = self._headers_for(url)
        secrets = self._secrets.get(id(headers), ())
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers = dict(headers)
            headers["Content-Type"] = "application/json"
        if not keep:
            headers = dict(headers)
            headers["Connection"] = "close"
        if timeout is None:
            timeout_obj, deadline, read_timeout = self._timeout, self.request_deadline, self.read_timeout
        else:
            timeout_obj, deadline, read_timeout = Timeout(connect=timeout, read=timeout), 2.0 * timeout, timeout
        retries = self._redirects if redirect else self._no_retry
        proxy = self._route(scheme, host, port)
        start = time.monotonic()
        state = RequestState(start + deadline)
        CURRENT.state = state
        WATCHDOG.watch(state)
        resp = None
        try:
            # agents answer JSON without Content-Encoding (none is asked for): no decoder needed
            kw: Dict[str, Any] = dict(body=data, headers=headers, retries=retries, redirect=redirect, timeout=timeout_obj,
                                      pool_timeout=deadline, preload_content=False, release_conn=False, decode_content=False)
            if proxy is not None:
                resp = proxy.urlopen(method, url, **kw)
            elif redirect:
                resp = self._manager.urlopen(method, url, **kw)
            else:
                key = (scheme, host, port)
                pool = self._pools.get(key)
                if pool is None or pool.pool is None:
                    if len(self._pools) >= MAX_POOLS:
                        self._pools = {}
                    pool = self._pools[key] = self._manager.connection_from_host(host, port, scheme)
                try:
                    resp = pool.urlopen(method, path, assert_same_host=False, **kw)
                except u3exc.ClosedPoolError:
                    # the manager dropped that pool (least recently used) just now: take its new one
                    pool = self._pools[key] = self._manager.connection_from_host(host, port, scheme)
                    resp = pool.urlopen(method, path, assert_same_host=False, **kw)
            length = resp.length_remaining
            if length is not None and length <= MAX_BODY:
                payload = resp.read()
            else:
                chunks = []
                size = 0
                for chunk in resp.stream(65536):
                    size += len(chunk)
                    if size > MAX_BODY:
                        raise TransportError("answer larger than %d bytes" % MAX_BODY, sent=True, kind="error")
                    chunks.append(chunk)
                payload = b"".join(chunks)
            WATCHDOG.done(state)
            if state.expired:
                raise TransportError("no complete answer within the request deadline of %.1fs" % deadline,
                                     sent=True, kind="timeout")
            for secret in secrets:
                if secret in payload:
                    payload = payload.replace(secret, MASK_BYTES)
            result = Response(resp.status, payload, time.monotonic() - start, resp.headers)
            if not keep:
                conn = resp.connection
                if conn is not None:
                    conn.close()
            return result
        except TransportError:
            raise
        except Exception as exc:
            WATCHDOG.done(state)
            failure = transport_failure(exc, state, deadline, read_timeout, self.connect_timeout)
            if (again and failure.kind == "reset" and failure.sent and state.reused and method in ("GET", "HEAD")):
                # a keep-alive connection the server had just closed: a read-only request may go again
                CURRENT.state = None
                return self._once(method, url, body, keep, timeout, redirect, again=False)
            raise failure from exc
        finally:
            WATCHDOG.done(state)
            CURRENT.state = None
            if resp is not None:
                resp.release_conn()

    def close(self) -> None:
        with self._lock:
            managers = list(self._proxy_managers.values())
        self._pools = {}
        self._manager.clear()
        for manager in managers:
            manager.clear()

    def __enter__(self: _Client) -> _Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
