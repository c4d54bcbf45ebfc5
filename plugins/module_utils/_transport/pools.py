# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The urllib3 machinery under the agent client: tracked connections, pools, the deadline watchdog.

* connections that note on the request's :class:`RequestState` when they connect and which socket
  carries the request (so a failure tells "never reached the agent" from "may have reached it");
* pools whose idle connections draw on one :class:`IdleBudget` per client, and the PoolManager and
  ProxyManager that build them (the SSL context only once an https pool is needed);
* :data:`WATCHDOG`, one daemon thread that cuts the socket of every request past its deadline.
"""

from __future__ import annotations

import queue
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, cast

from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.compat import U3HTTPConnection
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.compat import U3HTTPPool
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.compat import U3HTTPSConnection
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.compat import U3HTTPSPool
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.compat import U3PoolManager
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.compat import U3ProxyManager

if TYPE_CHECKING:
    # what the mixins below are mixed into (at run time they are plain classes, see the classes under them)
    _ConnectionBase = U3HTTPConnection
    _PoolBase = U3HTTPPool
    _ManagerBase = U3PoolManager
    _SlotsBase = queue.LifoQueue[Optional[U3HTTPConnection]]
else:
    _ConnectionBase = _PoolBase = _ManagerBase = object
    _SlotsBase = queue.LifoQueue

# What the request running on this thread is doing: the connection classes
# below note here when they connect (so a failure can tell "never reached the
# agent" from "may have reached it") and which connection carries it (so the
# deadline watchdog can cut it).
CURRENT = threading.local()


class RequestState:
    __slots__ = ("conn", "sock", "connecting", "reused", "expired", "done", "deadline", "lock")

    def __init__(self, deadline: float) -> None:
        self.lock = threading.Lock()
        self.conn: Optional[U3HTTPConnection] = None
        # the socket the request goes over, kept apart from the connection: once the answer's
        # headers are in, urllib3 hands the socket to the response and ``conn.sock`` is None
        self.sock: Optional[socket.socket] = None
        self.connecting = False
        self.reused = True
        self.expired = False
        self.done = False
        self.deadline = deadline


class _TrackedConnect(_ConnectionBase):
    def connect(self) -> None:
        state = getattr(CURRENT, "state", None)
        if state is None:
            return super().connect()
        state.conn = self
        state.reused = False
        state.connecting = True
        super().connect()
        state.sock = self.sock
        state.connecting = False
        if state.expired:
            # the deadline passed while connecting (the watchdog found no socket to cut yet)
            _cut_socket(self.sock)
        return None

    def request(self, *args: Any, **kwargs: Any) -> None:
        state = getattr(CURRENT, "state", None)
        if state is not None:
            state.conn = self
            if self.sock is not None:
                state.sock = self.sock
        out = super().request(*args, **kwargs)
        if state is not None and self.sock is not None:
            state.sock = self.sock
        return out


class _HTTPConnection(_TrackedConnect, U3HTTPConnection):
    pass


class _HTTPSConnection(_TrackedConnect, U3HTTPSConnection):
    pass


class _Slots(_SlotsBase):
    """A pool's queue of idle connections plus a count of free slots.

    urllib3 keeps a free slot as a ``None`` in the queue and fills a new
    pool's queue with one locked ``put(None)`` per slot; a pool is emptied
    (when closed, or collected after the PoolManager dropped it) by
    non-blocking gets until the queue is empty. With ``maxsize`` 32 both were
    most of the cost of a pool, and a fleet with one host per agent makes a
    pool per agent. Here a free slot is a number: urllib3's filling puts are
    no-ops (the slots are free from the start) and a non-blocking get, which
    only emptying does (our pools block), returns idle connections only.
    """

    budget: Optional[IdleBudget] = None

    def _init(self, maxsize: int) -> None:
        self.queue = []
        self.free = maxsize
        self.filling = maxsize

    def _qsize(self) -> int:
        return len(self.queue) + self.free

    def _put(self, item: Optional[U3HTTPConnection]) -> None:
        if item is None:
            self.free += 1
        else:
            self.queue.append(item)

    def _get(self) -> Optional[U3HTTPConnection]:
        if self.queue:
            if self.budget is not None:
                self.budget.release()
            return self.queue.pop()
        self.free -= 1
        return None

    def put(self, item: Optional[U3HTTPConnection], block: bool = True, timeout: Optional[float] = None) -> None:
        if item is None:
            if self.filling:
                self.filling -= 1
                return
        elif self.budget is not None and not self.budget.take():
            # idle connections of the whole client at their bound: close this one, free its slot
            item.close()
            item = None
        try:
            super().put(item, block, timeout)
        except queue.Full:
            if item is not None and self.budget is not None:
                self.budget.release()
            raise

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Optional[U3HTTPConnection]:
        if block:
            return super().get(block, timeout)
        with self.mutex:
            if not self.queue:
                raise queue.Empty
            item = self._get()
            self.not_full.notify()
            return item


class IdleBudget:
    """How many idle keep-alive connections a client keeps, over all its pools."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.idle = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.idle >= self.limit:
                return False
            self.idle += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.idle -= 1


class _FastPool(_PoolBase):
    # urllib3 declares QueueCls as the bare LifoQueue class (type[LifoQueue[_T]]): no subclass fits that for mypy
    QueueCls = _Slots  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.block:
            raise ValueError("agentfleet pools block (a non-blocking get means emptying the pool)")
        # had urllib3 not filled the queue itself, real puts must not be skipped
        cast(_Slots, self.pool).filling = 0  # QueueCls: the queue of our pools is a _Slots


class _HTTPPool(_FastPool, U3HTTPPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_FastPool, U3HTTPSPool):
    ConnectionCls = _HTTPSConnection


class _Pools(_ManagerBase):
    """PoolManager / ProxyManager with our pool classes; every pool draws on one idle budget."""

    budget: Optional[IdleBudget] = None
    ssl_context: Optional[Callable[[], ssl.SSLContext]] = None

    def _new_pool(self, scheme: str, host: str, port: int,
                  request_context: Optional[Dict[str, Any]] = None) -> U3HTTPPool:
        if scheme == "https" and self.ssl_context is not None:
            # the SSL context is built when the first https pool is (plain-http fleets never pay for it)
            request_context = dict(self.connection_pool_kw if request_context is None else request_context)
            if request_context.get("ssl_context") is None:
                request_context["ssl_context"] = self.ssl_context()
        pool = super()._new_pool(scheme, host, port, request_context)
        cast(_Slots, pool.pool).budget = self.budget  # a pool of ours (POOL_CLASSES): its queue is a _Slots
        return pool


class PoolManager(_Pools, U3PoolManager):
    pass


class ProxyManager(_Pools, U3ProxyManager):
    pass


POOL_CLASSES: Dict[str, type] = {"http": _HTTPPool, "https": _HTTPSPool}


class _Watchdog:
    """One daemon thread cutting the connection of every request that outlives its deadline.

    A read timeout bounds each wait for bytes; a server that trickles a byte
    now and then resets it every time. Every ``PERIOD`` seconds the watchdog
    shuts down the socket of each request past its deadline, whatever the
    request is reading (status line, headers or body), and marks it
    ``expired``. Registering costs a dict insert: no lock shared by the
    requests (under the GIL a dict insert or pop is atomic).
    """

    PERIOD = 0.1

    def __init__(self) -> None:
        self._active: Dict[int, RequestState] = {}
        self._thread: Optional[threading.Thread] = None
        self._start = threading.Lock()

    def watch(self, state: RequestState) -> None:
        self._active[id(state)] = state
        if self._thread is None:
            with self._start:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="agentfleet-deadline", daemon=True)
                    self._thread.start()

    def done(self, state: RequestState) -> None:
        if not state.done:
            with state.lock:
                state.done = True
            self._active.pop(id(state), None)

    def _run(self) -> None:
        while True:
            time.sleep(self.PERIOD)
            now = time.monotonic()
            for state in list(self._active.values()):
                if state.deadline <= now:
                    with state.lock:
                        if not state.done:
                            state.expired = True
                            _cut(state)
                    self._active.pop(id(state), None)


def _cut(state: RequestState) -> None:
    """Cut the socket of an expired request (whatever it is reading: status line, headers or body)."""
    sock = state.sock
    if sock is None:
        sock = getattr(state.conn, "sock", None)
    _cut_socket(sock)


def _cut_socket(sock: Optional[socket.socket]) -> None:
    if sock is None:
        return
    try:
        # the plain socket call, also for an SSLSocket: wakes up the reading thread
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


WATCHDOG = _Watchdog()
