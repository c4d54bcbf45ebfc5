# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rollout state that survives the controller.

A :class:`StateStore` records deployments, their wave plan, each agent's
decision and result, wave outcomes and agents' shared decisions. The
default backend is a local SQLite file (WAL mode); ``_state_s3`` keeps the
same database in S3, with a lock object per fleet key, for AWX and CI runners
that do not keep files. :func:`._state_backend.open_store` opens either from a
``state_path``. The store's reads of deployments are :class:`._state_queries.DeploymentQueries`, its
agents, waves and events :class:`._state_progress.ProgressRecords` (its base classes).

One active deployment per fleet key: a running deployment holds a lease
(owner pid, host name, heartbeat). A second rollout for the same fleet key
is refused while the lease's owner lives; the same deployment started again
after its owner died (kill -9) or was interrupted (SIGTERM, Ctrl-C) resumes
where it stopped.

The lease carries a generation (a fencing token): every start, resume, retry
or takeover of a deployment increments it. A run fences its store with the
generation it started under (:meth:`StateStore.fence`); from then on every
write of that run checks, in the same transaction, that the generation is
still current, and an older run's write is refused with
:class:`StaleRunError` (the run stops).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from typing import TYPE_CHECKING

from ansible_collections.agentfleet.rollout.plugins.module_utils._state_progress import ProgressRecords
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_queries import DeploymentQueries
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import SCHEMA_VERSION
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import UNVERSIONED_STRATEGIES
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import create_schema
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import create_version_index
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import migrate_schema

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any
    from typing import Callable
    from typing import Collection
    from typing import ContextManager
    from typing import Literal
    from typing import Mapping
    from typing import Optional
    from typing import Sequence
    from typing import Tuple
    from typing import Type
    from typing import TypeVar
    from typing import Union

    from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import Clock
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import Deployment
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import Started

    _Store = TypeVar("_Store", bound="StateStore")

ACTIVE_STATUSES = ("running", "paused")
FINISHED_STATUSES = ("completed", "completed_with_failures", "failed", "aborted", "cancelled", "rolled_back")
# "interrupted": stopped by SIGTERM/SIGINT between two steps; a rerun resumes it
OPEN_STATUSES = ("pending", "staged", "running", "paused", "interrupted")
# every status a deployment can have (docs/lifecycle.md)
STATUSES = ("pending", "staged", "running", "paused", "promoted", "interrupted", "completed", "completed_with_failures",
            "failed", "cancelled", "rolled_back", "aborted")
# the statuses of a version that a rollback may return to
ROLLBACK_STATUSES = ("completed", "completed_with_failures")


class StateError(Exception):
    """A state conflict or corruption the operator must see."""


class LockedError(StateError):
    """Another rollout holds the fleet key."""


class StaleRunError(StateError):
    """A newer run of the deployment has taken over (its lease generation moved on): this run stops."""


def _stale_message(deployment_id: str, mine: int, current: Optional[int]) -> str:
    if current is None:
        return "deployment %s is gone from the state: this run stops" % deployment_id
    return ("deployment %s was resumed or taken over by a newer run (lease generation %s, this run holds %s): "
            "this run stops and writes nothing" % (deployment_id, current, mine))


def _pid_alive(pid: Union[int, str, None]) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, ValueError):
        return False
    return True


def default_owner_pid() -> int:
    """The ansible-playbook process: action plugins run in its forked workers."""
    return os.getppid() if os.environ.get("AGENTFLEET_OWNER_IS_PARENT", "1") == "1" else os.getpid()


class StateStore(DeploymentQueries, ProgressRecords):
    """SQLite-backed rollout state. All methods are short transactions."""

    def __init__(self, path: Union[str, os.PathLike[str]], clock: Clock = time.time, lease_timeout: float = 600.0) -> None:
        self.path = os.path.abspath(os.path.expanduser(path))
        parent = os.path.dirname(self.path)
        if parent and not os.path.isdir(parent):
            os.makedirs(parent, exist_ok=True)
        self.clock = clock
        self.lease_timeout = float(lease_timeout)
        self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self._fence: Optional[Tuple[str, int]] = None
        self._fence_db: Optional[sqlite3.Connection] = None
        self._fence_lock = threading.Lock()
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        version = create_schema(self.db)
        if version > SCHEMA_VERSION:
            raise StateError("state file %s has schema %s, newer than this collection understands (%s)" % (self.path, version, SCHEMA_VERSION))
        if version < SCHEMA_VERSION:
            self._migrate()
        create_version_index(self.db)

    def _migrate(self) -> None:
        """Bring a database of an older schema to :data:`._state_schema.SCHEMA_VERSION`, in one transaction."""
        with self._tx():
            migrate_schema(self.db)

    def close(self) -> None:
        if self._fence_db is not None:
            self._fence_db.close()
            self._fence_db = None
        self.db.close()

    def __enter__(self: _Store) -> _Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions -------------------------------------------------------
    def _tx(self) -> ContextManager[sqlite3.Connection]:
        return _Tx(self.db, self._check_fence_in_tx if self._fence else None)

    # -- fencing --------------------------------------------------------------
    def fence(self, deployment_id: str, generation: int) -> None:
        """From now on every write of this store checks that ``deployment_id`` is still at ``generation``."""
        self._fence = (deployment_id, int(generation))

    def _check_fence_in_tx(self) -> None:
        if self._fence is None:
            # unfenced (a transaction of a fenced store only runs this check)
            return
        deployment_id, mine = self._fence
        row = self.db.execute("SELECT generation FROM deployments WHERE deployment_id=?", (deployment_id,)).fetchone()
        current = row["generation"] if row else None
        if current != mine:
            raise StaleRunError(_stale_message(deployment_id, mine, current))

    def check_fence(self) -> Optional[Tuple[str, Optional[str]]]:
        """Raise :class:`StaleRunError` when the fenced deployment's generation moved on (no-op unfenced).

        Safe from any thread (the agent client's fan-out threads call it before every request). Returns the
        deployment's ``(status, message)`` as stored right now (an operator's pause or fail, see :mod:`._lifecycle`),
        or None: unfenced, or where the backend cannot tell without a remote call (:meth:`_fenced_row`).
        """
        if not self._fence:
            return None
        deployment_id, mine = self._fence
        current, status, message = self._fenced_row(deployment_id, mine)
        if current != mine:
            raise StaleRunError(_stale_message(deployment_id, mine, current))
        return None if status is None else (status, message)

    def _fenced_row(self, deployment_id: str, mine: int) -> Tuple[Optional[int], Optional[str], Optional[str]]:
        """``(generation, status, message)`` of the fenced deployment for :meth:`check_fence` (all None when it is
        gone), read through a connection of its own: the calling thread may not be the store's."""
        with self._fence_lock:
            if self._fence_db is None:
                self._fence_db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            row = self._fence_db.execute("SELECT generation, status, message FROM deployments WHERE deployment_id=?",
                                         (deployment_id,)).fetchone()
        return tuple(row) if row else (None, None, None)

    # -- deployments ----------------------------------------------------------
    def lease_live(self, dep: Mapping[str, Any]) -> bool:
        """Whether the controller running ``dep`` (a deployment dict) is still alive.

        A finished or staged deployment holds no lease. On this host the owner
        pid must live; a deployment run from another host is trusted while its
        heartbeat is younger than ``lease_timeout``.
        """
        if dep["status"] not in ACTIVE_STATUSES:
            return False
        if dep.get("owner_host") == socket.gethostname():
            return _pid_alive(dep.get("owner_pid"))
        # another host: trust the heartbeat
        return (self.clock() - (dep.get("heartbeat") or 0)) < self.lease_timeout

    def release_lease(self, deployment_id: str) -> None:
        """This run stops driving a paused deployment (it saw the pause before a wave): its lease ends, so that
        agentfleet.rollout.resume runs the rest instead of lifting the pause for a run that will not go on."""
        with self._tx():
            self.db.execute("UPDATE deployments SET owner_pid=NULL, heartbeat=0 WHERE deployment_id=? AND status='paused'",
                            (deployment_id,))

    def create_or_resume(self, deployment_id: str, fleet_key: str, strategy: str, target_version: str,
                         plan: Sequence[Mapping[str, Any]], params: Mapping[str, Any], stage_only: bool = False,
                         owner_pid: Optional[int] = None, takeover: bool = False, record: Optional[Mapping[str, Any]] = None,
                         promote: bool = False) -> Started:
        """Start (or stage, or resume) a deployment.

        Returns ``(deployment, mode)`` with mode ``new``, ``staged``,
        ``resumed``, ``promoted`` or ``complete`` (already finished: nothing to do).
        Raises :class:`LockedError` when another rollout holds the fleet key.

        ``record`` (a new deployment only): ``deployment_key`` (default ``fleet_key``), ``policy``,
        ``source_version`` (default: the target of the key's last completed version), ``rollback_to``,
        ``actor`` and ``reason``. A new deployment gets the key's next ``version`` (1, 2, ...).
        ``promote``: the resumed deployment is promoted (mode ``promoted``). A start or resume runs in :meth:`_holding_fleet`.
        """
        record = dict(record or {})
        owner_pid = owner_pid or default_owner_pid()
        host = socket.gethostname()

        def start() -> Started:
            now = self.clock()
            with self._tx():
                for other in self.active_for_fleet(fleet_key, exclude=deployment_id):
                    if other["status"] == "staged" and not stage_only:
                        # a staged plan for another version is superseded only explicitly
                        raise LockedError(
                            "deployment %s (target %s) is staged for fleet %r: promote it or discard it first"
                            % (other["deployment_id"], other["target_version"], fleet_key)
                        )
                    if self.lease_live(other):
                        raise LockedError(
                            "another rollout is active for fleet %r: deployment %s (target %s), pid %s on %s; "
                            "one active deployment per fleet" % (fleet_key, other["deployment_id"], other["target_version"],
                                                                 other.get("owner_pid"), other.get("owner_host"))
                        )
                    if not takeover:
                        raise LockedError(
                            "deployment %s for fleet %r was interrupted (its controller is gone) and is not finished: "
                            "rerun it with rollout_deployment_id=%s to resume, or set rollout_takeover=true to abort it "
                            "and start %s" % (other["deployment_id"], fleet_key, other["deployment_id"], deployment_id)
                        )
                    # the generation moves on: an orphan of the aborted deployment's run writes nothing more
                    self.db.execute(
                        "UPDATE deployments SET status='aborted', finished_at=?, updated_at=?, message=?, "
                        "generation=generation+1 WHERE deployment_id=?",
                        (now, now, "taken over by %s" % deployment_id, other["deployment_id"]),
                    )
                existing = self.get_deployment(deployment_id)
                if existing:
                    if existing["fleet_key"] != fleet_key:
                        raise StateError("deployment id %s belongs to fleet %r, not %r" % (deployment_id, existing["fleet_key"], fleet_key))
                    if str(existing["target_version"]) != str(target_version):
                        raise StateError("deployment id %s targets version %s, not %s: choose another deployment id"
                                         % (deployment_id, existing["target_version"], target_version))
                    if existing["status"] in ("completed", "aborted"):
                        return existing, "complete"
                    if existing["status"] in ("completed_with_failures", "failed") and not stage_only:
                        # a rerun retries the agents that failed (and goes on after the wave that halted it)
                        self.db.execute(
                            "UPDATE deployments SET status='running', finished_at=NULL, updated_at=?, owner_pid=?, "
                            "owner_host=?, heartbeat=?, generation=generation+1 WHERE deployment_id=?",
                            (now, owner_pid, host, now, deployment_id),
                        )
                        self._event(deployment_id, "deployment_retry", {"previous_status": existing["status"]})
                        return self._written(deployment_id), "retry"
                    if existing["status"] in ACTIVE_STATUSES and self.lease_live(existing) and existing.get("owner_pid") != owner_pid:
                        raise LockedError("deployment %s is being run right now by pid %s on %s"
                                          % (deployment_id, existing.get("owner_pid"), existing.get("owner_host")))
                    if stage_only:
                        return existing, "staged"
                    mode = "promoted" if existing["status"] == "staged" or promote else "resumed"
                    self.db.execute(
                        "UPDATE deployments SET status='running', started_at=COALESCE(started_at, ?), updated_at=?, "
                        "owner_pid=?, owner_host=?, heartbeat=?, generation=generation+1 WHERE deployment_id=?",
                        (now, now, owner_pid, host, now, deployment_id),
                    )
                    self._event(deployment_id, "deployment_" + mode, {"strategy": strategy,
                                                                      "previous_status": existing["status"],
                                                                      "previous_message": existing.get("message")})
                    return self._written(deployment_id), mode
                status = "staged" if stage_only else "running"
                key = record.get("deployment_key") or fleet_key
                version: Optional[int] = None
                source = record.get("source_version")
                if strategy not in UNVERSIONED_STRATEGIES:
                    version = self.db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM deployments WHERE deployment_key=?",
                                              (key,)).fetchone()[0]
                    if source is None:
                        last = self._last_completed(key)
                        source = last["target_version"] if last else None
                self.db.execute(
                    "INSERT INTO deployments (deployment_id, fleet_key, strategy, target_version, status, plan, params, "
                    "created_at, started_at, updated_at, owner_pid, owner_host, heartbeat, generation, deployment_key, "
                    "version, source_version, policy, rollback_to, actor, reason) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (deployment_id, fleet_key, strategy, str(target_version), status, json.dumps(plan), json.dumps(params),
                     now, None if stage_only else now, now, None if stage_only else owner_pid,
                     None if stage_only else host, None if stage_only else now, 0 if stage_only else 1,
                     key, version, source, json.dumps(record.get("policy") or {}), record.get("rollback_to"),
                     record.get("actor"), record.get("reason")),
                )
                rows: list[Tuple[Any, ...]] = []
                for wave in plan:
                    self.db.execute(
                        "INSERT INTO waves (deployment_id, wave, name, status) VALUES (?,?,?,?)",
                        (deployment_id, wave["index"], wave["name"], "pending"),
                    )
                    for m in wave["members"]:
                        rows.append((deployment_id, m["name"], m.get("agent_id"), m.get("occurrence_id"), m.get("agent_url"),
                                     wave["name"], wave["index"]))
                self.db.executemany(
                    "INSERT INTO agents (deployment_id, host, agent_id, occurrence_id, agent_url, cohort, wave) VALUES (?,?,?,?,?,?,?)",
                    rows,
                )
                self._event(deployment_id, "deployment_" + status, {
                    "strategy": strategy, "target_version": target_version, "deployment_key": key, "version": version,
                    "source_version": source, "rollback_to": record.get("rollback_to"), "actor": record.get("actor"),
                    "reason": record.get("reason")})
            return self._written(deployment_id), ("staged" if stage_only else "new")

        # staging a deployment holds no lease: only its start or resume takes the fleet
        return start() if stage_only else self._holding_fleet(deployment_id, fleet_key, start)

    def _written(self, deployment_id: str) -> Deployment:
        """The deployment :meth:`create_or_resume` has just written (StateError in the impossible case it is gone)."""
        dep = self.get_deployment(deployment_id)
        if dep is None:
            raise StateError("deployment %s is missing from the state right after it was written" % deployment_id)
        return dep

    def _holding_fleet(self, deployment_id: str, fleet_key: str, start: Callable[[], Started]) -> Started:
        """Run ``start`` (the transaction starting or resuming ``deployment_id``, returns ``(deployment, mode)``) holding
        ``fleet_key``'s lock: here ``start`` takes the lease in the database; a lock kept elsewhere is taken around it (S3)."""
        return start()

    def update_params(self, deployment_id: str, changes: Mapping[str, Any]) -> None:
        """Merge ``changes`` into the deployment's recorded parameters (e.g. the --limit of this run)."""
        with self._tx():
            row = self.db.execute("SELECT params FROM deployments WHERE deployment_id=?", (deployment_id,)).fetchone()
            if row is None:
                return
            params = json.loads(row["params"]) if row["params"] else {}
            params.update(changes)
            self.db.execute("UPDATE deployments SET params=? WHERE deployment_id=?", (json.dumps(params), deployment_id))

    def heartbeat(self, deployment_id: str) -> None:
        now = self.clock()
        with self._tx():
            self.db.execute("UPDATE deployments SET heartbeat=?, updated_at=? WHERE deployment_id=?",
                            (now, now, deployment_id))

    def set_status(self, deployment_id: str, status: str, message: Optional[str] = None, data: Optional[Mapping[str, Any]] = None,
                   only_from: Optional[Collection[str]] = None) -> bool:
        """Set the deployment's status (and event ``deployment_<status>`` with ``message`` and ``data``).

        ``only_from``: change it only when its status is one of these (in the same transaction);
        returns whether it changed.
        """
        now = self.clock()
        finished = now if status in FINISHED_STATUSES else None
        with self._tx():
            if only_from is not None:
                row = self.db.execute("SELECT status FROM deployments WHERE deployment_id=?", (deployment_id,)).fetchone()
                if row is None or row["status"] not in only_from:
                    return False
            self.db.execute(
                "UPDATE deployments SET status=?, updated_at=?, finished_at=COALESCE(?, finished_at), "
                "message=COALESCE(?, message), owner_pid=CASE WHEN ? IS NULL THEN owner_pid ELSE NULL END "
                "WHERE deployment_id=?",
                (status, now, finished, message, finished, deployment_id),
            )
            event = dict(data or {})
            if message:
                event["message"] = message
            self._event(deployment_id, "deployment_" + status, event or None)
        return True

    # -- locks ----------------------------------------------------------------------
    def break_fleet_lease(self, fleet_key: str, reason: str, who: str) -> list[Deployment]:
        """Clear the lease (owner and heartbeat) of ``fleet_key``'s active deployments and move their generation on,
        so that a run still alive writes nothing more; audited. Returns the deployments whose lease was broken.
        The SQLite lock only: an S3 state's lock object is broken by ``_state_s3.break_lock`` (:mod:`._state_backend`)."""
        broken: list[Deployment] = []
        with self._tx():
            for dep in self.active_for_fleet(fleet_key):
                if dep["status"] not in ACTIVE_STATUSES:
                    continue
                self.db.execute("UPDATE deployments SET owner_pid=NULL, heartbeat=0, generation=generation+1, "
                                "updated_at=? WHERE deployment_id=?", (self.clock(), dep["deployment_id"]))
                self._event(dep["deployment_id"], "lock_broken", {
                    "fleet_key": fleet_key, "reason": reason, "by": who, "holder_pid": dep.get("owner_pid"),
                    "holder_host": dep.get("owner_host"), "lease_live": self.lease_live(dep)})
                broken.append(dep)
        return broken


class _Tx:
    """``BEGIN IMMEDIATE`` .. ``COMMIT`` (``ROLLBACK`` on an exception); ``fence`` runs first inside it."""

    def __init__(self, db: sqlite3.Connection, fence: Optional[Callable[[], None]] = None) -> None:
        self.db = db
        self.fence = fence
        self.nested = False

    def __enter__(self) -> sqlite3.Connection:
        self.nested = self.db.in_transaction
        if not self.nested:
            self.db.execute("BEGIN IMMEDIATE")
            if self.fence is not None:
                try:
                    self.fence()
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
        return self.db

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> Literal[False]:
        if self.nested:
            return False
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
        return False
