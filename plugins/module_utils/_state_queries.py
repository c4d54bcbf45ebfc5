# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deployments in the rollout state, read: one by id, a fleet's active, staged or promotable one, and a
deployment key's versions (its history and what a rollback returns to).

:class:`DeploymentQueries` is a part of :class:`._state.StateStore` (its base class), like
:class:`._state_progress.ProgressRecords`. It only reads, through the store's ``db`` (a :mod:`sqlite3`
connection with :class:`sqlite3.Row` rows); starting deployments, their status, lease and fencing are
the store's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3
    from typing import Optional
    from typing import Tuple
    from typing import Union

    from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import Deployment


class DeploymentQueries:
    """The queries of the ``deployments`` table of a :class:`._state.StateStore`."""

    # set up by the store (see the module's documentation)
    db: sqlite3.Connection

    def get_deployment(self, deployment_id: str) -> Optional[Deployment]:
        row = self.db.execute("SELECT * FROM deployments WHERE deployment_id=?", (deployment_id,)).fetchone()
        return _deployment(row) if row else None

    def list_deployments(self, fleet_key: Optional[str] = None, limit: int = 50) -> list[Deployment]:
        if fleet_key:
            rows = self.db.execute(
                "SELECT * FROM deployments WHERE fleet_key=? ORDER BY created_at DESC LIMIT ?", (fleet_key, limit)
            ).fetchall()
        else:
            rows = self.db.execute("SELECT * FROM deployments ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        return [_deployment(r) for r in rows]

    def active_for_fleet(self, fleet_key: str, exclude: Optional[str] = None) -> list[Deployment]:
        rows = self.db.execute(
            "SELECT * FROM deployments WHERE fleet_key=? AND status IN ('staged','running','paused','interrupted') "
            "AND deployment_id != ?",
            (fleet_key, exclude or ""),
        ).fetchall()
        return [_deployment(r) for r in rows]

    # -- deployment records (docs/lifecycle.md) ---------------------------------------
    def promotable_for_fleet(self, fleet_key: str) -> Optional[Deployment]:
        """The newest deployment of the fleet a promotion continues: staged, or paused (a canary waiting for
        its promotion, or an operator's pause), or one a killed or interrupted promotion left running (the
        rerun of the same promote command resumes it)."""
        row = self.db.execute(
            "SELECT * FROM deployments WHERE fleet_key=? AND status IN ('staged','paused','running','interrupted') "
            "ORDER BY created_at DESC LIMIT 1", (fleet_key,)).fetchone()
        return _deployment(row) if row else None

    def promoted_for_fleet(self, fleet_key: str) -> Optional[Deployment]:
        """The newest deployment of the fleet when a promotion finished it (a rerun of the same promote command
        then has nothing to do), else None."""
        newest = self.list_deployments(fleet_key=fleet_key, limit=1)
        if newest and newest[0]["status"] in ("completed", "completed_with_failures") \
                and (newest[0].get("params") or {}).get("promoted"):
            return newest[0]
        return None

    def history(self, deployment_key: str, limit: Optional[int] = None) -> list[Deployment]:
        """The versions of ``deployment_key``, newest first (only versioned deployments)."""
        sql = "SELECT * FROM deployments WHERE deployment_key=? AND version IS NOT NULL ORDER BY version DESC"
        args: list[Union[str, int]] = [deployment_key]
        if limit:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [_deployment(r) for r in self.db.execute(sql, args).fetchall()]

    def keys(self) -> list[Tuple[str, Deployment]]:
        """Every deployment key with its newest version: ``[(key, deployment)]``, keys in name order."""
        rows = self.db.execute(
            "SELECT d.* FROM deployments d JOIN (SELECT deployment_key, MAX(version) AS v FROM deployments "
            "WHERE version IS NOT NULL GROUP BY deployment_key) k ON d.deployment_key=k.deployment_key AND d.version=k.v "
            "ORDER BY d.deployment_key").fetchall()
        return [(r["deployment_key"], _deployment(r)) for r in rows]

    def version(self, deployment_key: str, version: int) -> Optional[Deployment]:
        row = self.db.execute("SELECT * FROM deployments WHERE deployment_key=? AND version=?",
                              (deployment_key, int(version))).fetchone()
        return _deployment(row) if row else None

    def _last_completed(self, deployment_key: str, before: Optional[int] = None) -> Optional[Deployment]:
        sql = "SELECT * FROM deployments WHERE deployment_key=? AND status='completed' AND version IS NOT NULL"
        args: list[Union[str, int]] = [deployment_key]
        if before is not None:
            sql += " AND version < ?"
            args.append(int(before))
        row = self.db.execute(sql + " ORDER BY version DESC LIMIT 1", args).fetchone()
        return _deployment(row) if row else None

    def rollback_target(self, deployment_key: str, before: Optional[int] = None) -> Optional[Deployment]:
        """The last version of ``deployment_key`` that completed (before version ``before``), or None."""
        return self._last_completed(deployment_key, before)


def _deployment(row: sqlite3.Row) -> Deployment:
    d = dict(row)
    d["plan"] = json.loads(d["plan"]) if d.get("plan") else []
    d["params"] = json.loads(d["params"]) if d.get("params") else {}
    d["policy"] = json.loads(d["policy"]) if d.get("policy") else {}
    return d
