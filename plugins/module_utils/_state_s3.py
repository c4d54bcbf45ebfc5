# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout state kept in S3 (``s3://bucket/prefix``), for controllers that do not last (AWX, CI).

SQLite stays the engine; S3 is the durable home:

* ``<prefix>/state.db`` is the SQLite database. It is downloaded when the store opens. Before every
  write transaction the store asks S3 for the object's ETag and downloads it again when another
  controller wrote since; after the transaction it uploads the database with ``If-Match`` on the ETag
  it read (``If-None-Match: *`` for the first upload). Two writers cannot both win: the loser gets
  412, downloads the winner's database and runs its whole write again on it (bounded retries), so
  every write is serialised across controllers and sees the one before it -- including the fencing
  check of the lease generation, which runs inside the transaction.
* ``<prefix>/locks/<fleet key>.json`` is the one-active-deployment lock of a fleet key: a lease
  taken with a conditional ``PUT`` (``If-None-Match: *``), renewed by the running rollout every third
  of its TTL (``If-Match`` on its ETag) and taken over only once expired (``If-Match`` on the expired
  lock's ETag). A controller killed with SIGKILL stops renewing; its lock expires after the TTL and
  the next run of the deployment resumes it. :func:`break_lock` removes a lock explicitly, with a
  reason, recorded in the state's events.

The lease's clock is the controllers' own (``expires_at`` in the lock, epoch seconds): keep their
clocks in sync (NTP) to well within the TTL.

The S3 requests themselves (client, conditional get/put/delete) are ``_s3_objects``'s; the lock object,
:class:`._s3_lock.FleetLock`, is ``_s3_lock``'s.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
import time
from typing import TYPE_CHECKING

from ansible_collections.agentfleet.rollout.plugins.module_utils._run import controller_run_id
from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_lock import FleetLock
from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_lock import lock_key
from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_lock import lock_ttl_from
from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_objects import CLIENT_OPTIONS
from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_objects import CONFLICT_RETRIES
from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_objects import ConflictError
from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_objects import S3Objects
from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_objects import backoff
from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_objects import client_kwargs
from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_objects import join_key
from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_objects import parse_s3_url
from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_objects import s3_client
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import ACTIVE_STATUSES
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StaleRunError
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateError
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateStore
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import default_owner_pid
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any
    from typing import Callable
    from typing import Collection
    from typing import ContextManager
    from typing import Dict
    from typing import Literal
    from typing import Mapping
    from typing import Optional
    from typing import Tuple
    from typing import Type
    from typing import TypeVar
    from typing import Union

    from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_lock import Holder
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import Clock
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import Started

    _T = TypeVar("_T")

DB_NAME = "state.db"


def _retrying(method: Callable[..., _T]) -> Callable[..., _T]:
    """Run ``method`` again on a freshly downloaded state when its upload lost a race (outermost call only)."""
    def wrapper(self: S3StateStore, *args: Any, **kwargs: Any) -> _T:
        with self._s3_mutex:
            if self._s3_depth:
                return method(self, *args, **kwargs)
            for attempt in range(CONFLICT_RETRIES):
                self._s3_depth += 1
                try:
                    return method(self, *args, **kwargs)
                except ConflictError:
                    self._s3_reload()
                finally:
                    self._s3_depth -= 1
                backoff(attempt)
            raise StateError("the rollout state %s was changed by another controller during each of %d attempts "
                             "of %s: try again" % (self.url, CONFLICT_RETRIES, method.__name__))
    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


class S3StateStore(StateStore):
    """:class:`StateStore` whose database and fleet locks live in S3 (see the module documentation)."""

    def __init__(self, url: str, client: Any = None, lock_ttl: Union[str, float, None] = None, clock: Clock = time.time,
                 lease_timeout: float = 600.0, run_id: Optional[str] = None, **client_options: Optional[str]) -> None:
        bucket, prefix, options = parse_s3_url(url)
        for key, value in client_options.items():
            if key not in CLIENT_OPTIONS:
                raise ValueError("unknown S3 state option %r (known: %s)" % (key, ", ".join(CLIENT_OPTIONS)))
            if value not in (None, ""):
                options[key] = value
        self.url = "s3://%s/%s" % (bucket, prefix) if prefix else "s3://%s" % bucket
        self.prefix = prefix
        self.lock_ttl = lock_ttl_from(lock_ttl if lock_ttl not in (None, "") else options.get("lock_ttl"))
        if client is None:
            client = s3_client(**dict((k, options.get(k)) for k in CLIENT_OPTIONS))
        self.objects = S3Objects(client, bucket)
        self.db_key = join_key(prefix, DB_NAME)
        self.run_id = run_id or controller_run_id(default_owner_pid())
        self._s3_mutex = threading.RLock()
        self._s3_depth = 0
        self._locks: Dict[str, FleetLock] = {}
        self._lost: Optional[str] = None
        self._renewer: Optional[threading.Thread] = None
        self._stop_renewing = threading.Event()
        self._cache_dir = tempfile.mkdtemp(prefix="agentfleet-state-")
        local = os.path.join(self._cache_dir, DB_NAME)
        body, self._etag = self.objects.get(self.db_key)
        if body is not None:
            with open(local, "wb") as handle:
                handle.write(body)
        try:
            StateStore.__init__(self, local, clock=clock, lease_timeout=lease_timeout)
            # one self-contained file after every commit (no WAL beside it) is what gets uploaded
            self.db.execute("PRAGMA journal_mode=DELETE")
            if self._etag is None:
                try:
                    self._etag = self.objects.put(self.db_key, self._read_local(), if_none_match=True)
                except ConflictError:
                    self._s3_reload()
        except BaseException:
            self._cleanup()
            raise

    # -- the database object ---------------------------------------------------------
    def _read_local(self) -> bytes:
        with open(self.path, "rb") as handle:
            return handle.read()

    def _s3_reload(self) -> None:
        """Replace the local database with the one in S3 (the same connection, through SQLite's backup)."""
        body, etag = self.objects.get(self.db_key)
        if body is None:
            raise StateError("the rollout state %s disappeared while this run used it" % self.objects.url(self.db_key))
        tmp = os.path.join(self._cache_dir, "incoming.db")
        with open(tmp, "wb") as handle:
            handle.write(body)
        src = sqlite3.connect(tmp)
        try:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            src.backup(self.db)
        finally:
            src.close()
            os.unlink(tmp)
        self._etag = etag
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is not None and int(row[0]) < SCHEMA_VERSION:
            # written by an older collection since this store opened: migrate it as opening it would
            self._migrate()

    def _s3_refresh(self) -> None:
        """Before a write: fetch the database again if another controller wrote since."""
        if self.objects.etag(self.db_key) != self._etag:
            self._s3_reload()

    def _s3_push(self) -> None:
        self._etag = self.objects.put(self.db_key, self._read_local(), if_match=self._etag,
                                      if_none_match=self._etag is None)

    def _tx(self) -> ContextManager[sqlite3.Connection]:
        return _S3Tx(self, StateStore._tx(self))

    # -- locks and fencing -----------------------------------------------------------
    def _lock(self, fleet_key: str) -> FleetLock:
        lock = self._locks.get(fleet_key)
        if lock is None:
            lock = FleetLock(self.objects, lock_key(self.prefix, fleet_key), fleet_key, self.lock_ttl, self.run_id,
                             clock=self.clock)
            self._locks[fleet_key] = lock
        return lock

    def lease_live(self, dep: Mapping[str, Any]) -> bool:
        """A deployment's lease is live while another run holds its fleet's unexpired lock for it.

        Process ids say nothing across containers and CI runners that share a host name: the TTL decides.
        """
        if dep["status"] not in ACTIVE_STATUSES:
            return False
        holder, dummy = self._lock(dep["fleet_key"]).read()
        if holder is None or holder.get("run") == self.run_id:
            return False
        return holder.get("deployment_id") == dep["deployment_id"] and not self._lock(dep["fleet_key"]).expired(holder)

    def _holding_fleet(self, deployment_id: str, fleet_key: str, start: Callable[[], Started]) -> Started:
        """Start or resume a deployment holding its fleet's lock object (called by :meth:`StateStore.create_or_resume`,
        not to stage one): taken before, released again when the start fails or finds the deployment complete."""
        lock = self._lock(fleet_key)
        held_before = self._held_by_me(lock)
        previous = lock.acquire(deployment_id)
        try:
            dep, mode = start()
        except BaseException:
            if not held_before:
                lock.release()
            raise
        if mode == "complete":
            lock.release()
        elif previous is not None:
            self.event(deployment_id, "lock_taken_over", {
                "fleet_key": fleet_key, "previous_deployment_id": previous.get("deployment_id"),
                "previous_run": previous.get("run"), "previous_owner_host": previous.get("owner_host"),
                "expired_at": previous.get("expires_at")})
        return dep, mode

    def _held_by_me(self, lock: FleetLock) -> bool:
        holder, dummy = lock.read()
        return holder is not None and holder.get("run") == self.run_id

    def release_lease(self, deployment_id: str) -> None:
        StateStore.release_lease(self, deployment_id)
        dep = self.get_deployment(deployment_id)
        if dep is not None and dep["status"] == "paused":
            self._lock(dep["fleet_key"]).release()

    def set_status(self, deployment_id: str, status: str, message: Optional[str] = None, data: Optional[Mapping[str, Any]] = None,
                   only_from: Optional[Collection[str]] = None) -> bool:
        changed = StateStore.set_status(self, deployment_id, status, message, data=data, only_from=only_from)
        if changed and status != "running":
            dep = self.get_deployment(deployment_id)
            if dep is not None:
                # paused, interrupted or finished: the fleet is no longer driven by this run
                self._lock(dep["fleet_key"]).release()
        return changed

    def heartbeat(self, deployment_id: str) -> None:
        StateStore.heartbeat(self, deployment_id)
        dep = self.get_deployment(deployment_id)
        if dep is not None and dep["status"] == "running" and not self._lock(dep["fleet_key"]).renew(deployment_id):
            self._lost = self._lost_message(dep)

    def fence(self, deployment_id: str, generation: int) -> None:
        StateStore.fence(self, deployment_id, generation)
        dep = self.get_deployment(deployment_id)
        if dep is None or dep["status"] != "running":
            return
        lock = self._lock(dep["fleet_key"])
        if not lock.renew(deployment_id):
            self._lost = self._lost_message(dep)
            return
        if self._renewer is None:
            self._renewer = threading.Thread(target=self._renew_loop, args=(lock, dep), daemon=True,
                                             name="agentfleet-lock-renewer")
            self._renewer.start()

    def _lost_message(self, dep: Mapping[str, Any]) -> str:
        return ("the lock of fleet %r is no longer held by this run (it expired and another run took it over, or "
                "it was broken): deployment %s stops here and writes nothing" % (dep["fleet_key"], dep["deployment_id"]))

    def _renew_loop(self, lock: FleetLock, dep: Mapping[str, Any]) -> None:
        while not self._stop_renewing.wait(max(0.5, lock.ttl / 3.0)):
            try:
                if not lock.renew(dep["deployment_id"]):
                    self._lost = self._lost_message(dep)
                    return
            except StateError:
                # S3 unreachable for a moment: the next round tries again, until the lease this run
                # last wrote has run out (then another run may hold it: this one stops)
                if self.clock() >= lock.expires_at:
                    self._lost = self._lost_message(dep)
                    return

    def _check_fence_in_tx(self) -> None:
        if self._lost:
            raise StaleRunError(self._lost)
        StateStore._check_fence_in_tx(self)

    def _fenced_row(self, deployment_id: str, mine: int) -> Tuple[Optional[int], Optional[str], Optional[str]]:
        """For :meth:`StateStore.check_fence`, from any thread and with no S3 call: :class:`StaleRunError` once this
        run lost its fleet's lock, else this run's own generation and no status (reading the deployment's status as
        stored now would take an S3 request; writes check the generation, and each wave reads the status when it starts)."""
        if self._lost:
            raise StaleRunError(self._lost)
        return mine, None, None

    def close(self) -> None:
        self._stop_renewing.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
            self._renewer = None
        try:
            StateStore.close(self)
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self._cache_dir, ignore_errors=True)


class _S3Tx:
    """The SQLite transaction between a refresh from S3 and a conditional upload to it."""

    def __init__(self, store: S3StateStore, inner: ContextManager[sqlite3.Connection]) -> None:
        self.store = store
        self.inner = inner
        self.outer = False
        self.changes = 0

    def __enter__(self) -> sqlite3.Connection:
        self.outer = not self.store.db.in_transaction
        if self.outer:
            self.store._s3_refresh()
            self.changes = self.store.db.total_changes
        return self.inner.__enter__()

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> Literal[False]:
        self.inner.__exit__(exc_type, exc, tb)
        if self.outer and exc_type is None and self.store.db.total_changes != self.changes:
            self.store._s3_push()
        return False


for _name in dir(S3StateStore):
    if _name.startswith("_") or _name in ("close", "check_fence", "lease_live", "fence"):
        continue
    _method = getattr(S3StateStore, _name)
    if callable(_method):
        setattr(S3StateStore, _name, _retrying(_method))


def break_lock(url: str, fleet_key: str, reason: str, who: str, client: Any = None, **client_options: Any) -> Optional[Holder]:
    """Remove the lock of ``fleet_key`` in the S3 state at ``url``, whoever holds it; recorded in the state.

    Returns the holder that was removed (None when there was no lock). The deployment it held is left
    as it is (``running``): its run, if alive, loses its lease and stops at its next step; a rerun
    resumes it.
    """
    store = S3StateStore(url, client=client, **client_options)
    try:
        lock = store._lock(fleet_key)
        for attempt in range(CONFLICT_RETRIES):
            holder, etag = lock.read()
            if holder is None:
                return None
            try:
                store.objects.delete(lock.key, if_match=etag)
                break
            except ConflictError:
                backoff(attempt)
        else:
            raise StateError("the lock of fleet %r changed %d times while breaking it" % (fleet_key, CONFLICT_RETRIES))
        dep_id = holder.get("deployment_id")
        if dep_id and store.get_deployment(dep_id) is not None:
            store.event(dep_id, "lock_broken", {"fleet_key": fleet_key, "reason": reason, "by": who,
                                                "holder_run": holder.get("run"), "holder_host": holder.get("owner_host"),
                                                "holder_pid": holder.get("owner_pid"),
                                                "expired": lock.expired(holder)})
        return holder
    finally:
        store.close()


def s3_object_exists(url: str, client: Any = None, **client_options: Optional[str]) -> bool:
    """Whether the S3 state at ``url`` has a database yet."""
    bucket, prefix, options = parse_s3_url(url)
    objects = S3Objects(client or s3_client(**client_kwargs(options, client_options)), bucket)
    return objects.etag(join_key(prefix, DB_NAME)) is not None
