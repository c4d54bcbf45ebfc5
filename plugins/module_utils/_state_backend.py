# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which rollout state a ``state_path`` names, and opening it.

A plain path or ``sqlite:///path`` is a local SQLite file (:class:`._state.StateStore`);
``s3://bucket/prefix`` is the same database kept in S3 (:class:`._state_s3.S3StateStore`). Every caller that
opens, probes or unlocks a state goes through here; the stores themselves never pick a backend.

``_state_s3`` is imported only when an ``s3://`` state is used: it loads boto3 (about 0.1 s), which a run on a
SQLite file never needs. The imports run one way: this module -> ``_state_s3`` -> ``_state``.
"""

from __future__ import annotations

import os
import re
import socket
from typing import TYPE_CHECKING

from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateError
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateStore

if TYPE_CHECKING:
    from typing import Any
    from typing import Mapping
    from typing import Optional
    from typing import Tuple
    from typing import Union

BACKENDS = ("sqlite", "s3")
# the keyword arguments a SQLite store takes (the others are the S3 store's)
SQLITE_OPTIONS = ("clock", "lease_timeout")


def parse_state_url(url: Union[str, os.PathLike[str], None]) -> Tuple[str, str]:
    """``(backend, location)`` of a state path: a plain path or ``sqlite:///path`` -> ``("sqlite", path)``,
    ``s3://bucket/prefix`` -> ``("s3", url)``. ValueError naming ``state_path`` for anything else."""
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not url or not isinstance(url, str):
        raise ValueError("state_path: a path, sqlite:///path or s3://bucket/prefix is required")
    if url.startswith("s3://"):
        return "s3", url
    if url.startswith("sqlite://"):
        path = url[len("sqlite://"):]
        if not path.startswith("/"):
            raise ValueError("state_path: %r: write sqlite:///absolute/path (three slashes)" % url)
        return "sqlite", path
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url)
    if scheme:
        raise ValueError("state_path: unknown scheme %r (use a path, sqlite:///path or s3://bucket/prefix)"
                         % scheme.group(1))
    return "sqlite", os.path.expanduser(url)


def _sqlite_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return dict((k, v) for k, v in kwargs.items() if k in SQLITE_OPTIONS)


def _s3_client_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return dict((k, v) for k, v in kwargs.items() if k not in SQLITE_OPTIONS + ("lock_ttl", "run_id"))


def state_exists(url: Union[str, os.PathLike[str]], **kwargs: Any) -> bool:
    """Whether the state at ``url`` exists (reading it then creates nothing)."""
    backend, location = parse_state_url(url)
    if backend == "sqlite":
        return os.path.exists(location)
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state_s3 import s3_object_exists

    return s3_object_exists(location, **_s3_client_kwargs(kwargs))


def open_store(path: Union[str, os.PathLike[str]], backend: Optional[str] = None, **kwargs: Any) -> StateStore:
    """Open the rollout state at ``path``: a SQLite file (a path or ``sqlite:///path``) or ``s3://bucket/prefix``.

    Both give the same :class:`._state.StateStore` interface. ``kwargs``: ``clock``, ``lease_timeout``; for S3 also
    ``lock_ttl``, ``run_id``, ``endpoint_url``, ``region``, ``profile``, ``access_key``, ``secret_key``,
    ``session_token`` (see ``_state_s3``).
    """
    kind, location = parse_state_url(path)
    if backend is not None and backend != kind:
        raise StateError("unknown state backend %r for %s (available: %s)" % (backend, kind, ", ".join(BACKENDS)))
    if kind == "sqlite":
        return StateStore(location, **_sqlite_kwargs(kwargs))
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state_s3 import S3StateStore

    return S3StateStore(location, **kwargs)


def lock_breaker() -> str:
    """Who breaks a lock, for the record: ``AGENTFLEET_RUN_ID`` (a CI or AWX job) else user@host."""
    run = os.environ.get("AGENTFLEET_RUN_ID")
    try:
        import getpass

        user = getpass.getuser()
    except (KeyError, OSError, ImportError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    who = "%s@%s" % (user, socket.gethostname())
    return "%s (run %s)" % (who, run) if run else who


def break_lock(url: Union[str, os.PathLike[str]], key: str, reason: str, who: Optional[str], **kwargs: Any) -> dict[str, Any]:
    """Break the one-active-deployment lock of fleet (deployment) key ``key``, with a reason; audited in the state.

    S3: the lock object is removed, whoever holds it. SQLite: the lease of the fleet's active deployment is
    cleared (owner and heartbeat) and its generation moves on, so a run still alive writes nothing more.
    Returns a dict describing what was broken (``broken`` False when nothing held the key).
    """
    if not reason or not str(reason).strip():
        raise ValueError("reason: breaking a lock needs a reason (it is recorded)")
    if not key:
        raise ValueError("key: the fleet (deployment) key whose lock to break is required")
    who = who or "unknown"
    kind, location = parse_state_url(url)
    if kind == "s3":
        from ansible_collections.agentfleet.rollout.plugins.module_utils._state_s3 import break_lock as s3_break_lock

        holder = s3_break_lock(location, key, reason, who, **kwargs)
        return {"broken": holder is not None, "key": key, "reason": reason, "by": who,
                "deployment_id": (holder or {}).get("deployment_id"), "holder": holder}
    with StateStore(location, **_sqlite_kwargs(kwargs)) as store:
        broken = store.break_fleet_lease(key, reason, who)
    holder = broken[0] if broken else None
    return {"broken": bool(broken), "key": key, "reason": reason, "by": who,
            "deployment_id": holder["deployment_id"] if holder else None,
            "holder": {"owner_pid": holder.get("owner_pid"), "owner_host": holder.get("owner_host")} if holder else None}
