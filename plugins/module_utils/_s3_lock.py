# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one-active-deployment lock of a fleet key in an S3 rollout state (``<prefix>/locks/<fleet key>.json``).

A :class:`FleetLock` is a lease taken with a conditional ``PUT`` (``If-None-Match: *``), renewed by the
running rollout (``If-Match`` on its ETag) and taken over only once expired (``If-Match`` on the expired
lock's ETag); see ``_state_s3``, whose store holds one per fleet key, and its ``break_lock``.
The S3 requests themselves are ``_s3_objects``'s.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import TYPE_CHECKING

from urllib.parse import quote

from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_objects import CONFLICT_RETRIES
from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_objects import ConflictError
from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_objects import S3Objects
from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_objects import backoff
from ansible_collections.agentfleet.rollout.plugins.module_utils._s3_objects import join_key
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import LockedError
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateError
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import default_owner_pid

if TYPE_CHECKING:
    from typing import Any
    from typing import Dict
    from typing import Mapping
    from typing import Optional
    from typing import Tuple
    from typing import Union

    from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import Clock

    # what a lock object holds (JSON): fleet_key, deployment_id, run, owner_host, owner_pid, acquired_at,
    # renewed_at, expires_at, ttl
    Holder = Dict[str, Any]

DEFAULT_LOCK_TTL = 600.0
MIN_LOCK_TTL = 2.0


def lock_ttl_from(value: Union[str, float, None], default: float = DEFAULT_LOCK_TTL) -> float:
    if value in (None, ""):
        value = os.environ.get("AGENTFLEET_LOCK_TTL") or default
    try:
        ttl = float(value)
    except (TypeError, ValueError):
        raise ValueError("lock_ttl: %r is not a number of seconds" % (value,))
    if ttl < MIN_LOCK_TTL:
        raise ValueError("lock_ttl: %s s is too short (at least %s s)" % (value, MIN_LOCK_TTL))
    return ttl


def lock_key(prefix: str, fleet_key: str) -> str:
    return join_key(prefix, "locks/%s.json" % quote(str(fleet_key), safe=""))


class FleetLock:
    """The lease object of one fleet key."""

    def __init__(self, objects: S3Objects, key: str, fleet_key: str, ttl: float, run_id: str, clock: Clock = time.time) -> None:
        self.objects = objects
        self.key = key
        self.fleet_key = fleet_key
        self.ttl = float(ttl)
        self.run_id = run_id
        self.clock = clock
        self.etag: Optional[str] = None
        self.acquired_at: Optional[float] = None
        self.expires_at = 0.0

    def read(self) -> Tuple[Optional[Holder], Optional[str]]:
        """``(holder dict, etag)`` or ``(None, None)``."""
        body, etag = self.objects.get(self.key)
        if body is None:
            return None, None
        try:
            return json.loads(body.decode("utf-8")), etag
        except ValueError:
            # an unreadable lock protects nobody; it is treated as expired
            return {"expires_at": 0, "run": None, "corrupt": True}, etag

    def expired(self, holder: Mapping[str, Any]) -> bool:
        return self.clock() >= float(holder.get("expires_at") or 0)

    def _body(self, deployment_id: str, acquired_at: Optional[float] = None) -> bytes:
        now = self.clock()
        self.acquired_at = acquired_at if acquired_at is not None else now
        self.expires_at = now + self.ttl
        return json.dumps({
            "fleet_key": self.fleet_key, "deployment_id": deployment_id, "run": self.run_id,
            "owner_host": socket.gethostname(), "owner_pid": default_owner_pid(),
            "acquired_at": self.acquired_at, "renewed_at": now, "expires_at": self.expires_at, "ttl": self.ttl,
        }, sort_keys=True).encode("utf-8")

    def acquire(self, deployment_id: str) -> Optional[Holder]:
        """Take (or renew) the lock for ``deployment_id``; returns the expired holder taken over, or None.

        Raises :class:`LockedError` while another run's lease is unexpired.
        """
        for attempt in range(CONFLICT_RETRIES):
            holder, etag = self.read()
            try:
                if holder is None:
                    self.etag = self.objects.put(self.key, self._body(deployment_id), if_none_match=True,
                                                 content_type="application/json")
                    return None
                if holder.get("run") == self.run_id:
                    self.etag = self.objects.put(self.key, self._body(deployment_id, holder.get("acquired_at")),
                                                 if_match=etag, content_type="application/json")
                    return None
                if not self.expired(holder):
                    raise LockedError(describe_holder(self.fleet_key, holder, self.clock()))
                self.etag = self.objects.put(self.key, self._body(deployment_id), if_match=etag,
                                             content_type="application/json")
                return holder
            except ConflictError:
                backoff(attempt)
        raise StateError("could not take the lock %s: it changed %d times in a row" % (self.objects.url(self.key),
                                                                                       CONFLICT_RETRIES))

    def renew(self, deployment_id: str) -> bool:
        """Extend this run's lease; False when the lock is no longer this run's (taken over or broken)."""
        for attempt in range(CONFLICT_RETRIES):
            if self.etag is None:
                holder, etag = self.read()
                if holder is None or holder.get("run") != self.run_id:
                    return False
                # another task of this same run wrote it last: adopt its ETag, and the TTL it was taken with
                self.etag, self.acquired_at = etag, holder.get("acquired_at")
                self.ttl = float(holder.get("ttl") or self.ttl)
            try:
                self.etag = self.objects.put(self.key, self._body(deployment_id, self.acquired_at),
                                             if_match=self.etag, content_type="application/json")
                return True
            except ConflictError:
                self.etag = None
                backoff(attempt)
        return False

    def release(self) -> bool:
        """Delete the lock when this run holds it (a no-op otherwise)."""
        for attempt in range(CONFLICT_RETRIES):
            holder, etag = self.read()
            if holder is None or holder.get("run") != self.run_id:
                return False
            try:
                self.objects.delete(self.key, if_match=etag)
                self.etag = None
                return True
            except ConflictError:
                backoff(attempt)
        return False


def describe_holder(fleet_key: str, holder: Mapping[str, Any], now: float) -> str:
    left = max(0.0, float(holder.get("expires_at") or 0) - now)
    return ("another rollout is active for fleet %r: deployment %s, run %s, pid %s on %s holds its lock "
            "(lease renewed %s s ago, expires in %.0f s unless renewed); one active deployment per fleet. "
            "If that controller is gone for good, wait for the lease to expire (lock_ttl %s s) or break the lock "
            "with a reason (rollout_break_lock_reason)" % (fleet_key, holder.get("deployment_id"), holder.get("run"), holder.get("owner_pid"),
                                                           holder.get("owner_host"), "%.0f" % max(0.0, now - float(holder.get("renewed_at") or 0)),
                                                           left, holder.get("ttl")))
