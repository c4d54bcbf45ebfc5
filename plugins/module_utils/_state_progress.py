# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A deployment's progress in the rollout state: each agent's decision and result, the waves, the decisions
agents share across occurrences, and the event log.

:class:`ProgressRecords` is a part of :class:`._state.StateStore` (its base class), kept apart from the
deployments, their lease and fencing there. Its methods use the store's ``db`` (a :mod:`sqlite3` connection
with :class:`sqlite3.Row` rows), ``clock`` and ``_tx()`` (a write transaction, fenced), and nothing else.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3
    from typing import Any
    from typing import ContextManager
    from typing import Iterable
    from typing import Mapping
    from typing import Optional
    from typing import Sequence
    from typing import Union

    from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import AgentRow
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state_schema import Clock


# hosts looked up per query by :meth:`ProgressRecords.agents` (SQLite before 3.32 binds at most 999 parameters)
_HOSTS_PER_QUERY = 500


class ProgressRecords:
    """The ``agents``, ``waves``, ``shared_decisions`` and ``events`` tables of a :class:`._state.StateStore`."""

    # set up by the store (see the module's documentation)
    db: sqlite3.Connection
    clock: Clock

    if TYPE_CHECKING:
        def _tx(self) -> ContextManager[sqlite3.Connection]:
            """A write transaction (fenced): the store's."""

    # -- agents -----------------------------------------------------------------
    def agents(self, deployment_id: str, wave: Optional[int] = None, hosts: Optional[Iterable[str]] = None) -> list[AgentRow]:
        sql = "SELECT * FROM agents WHERE deployment_id=?"
        args: list[Union[str, int]] = [deployment_id]
        if wave is not None:
            sql += " AND wave=?"
            args.append(int(wave))
        if hosts is None:
            return [_agent(r) for r in self.db.execute(sql + " ORDER BY wave, host", args).fetchall()]
        # only the hosts asked for, looked up by the primary key (a wave's members, not the whole fleet's rows),
        # in chunks that stay under any SQLite's limit of bound parameters
        wanted = list(set(hosts))   # sorted below, with the rows found
        found: list[sqlite3.Row] = []
        for start in range(0, len(wanted), _HOSTS_PER_QUERY):
            chunk = wanted[start:start + _HOSTS_PER_QUERY]
            found.extend(self.db.execute(sql + " AND host IN (%s)" % ",".join("?" * len(chunk)),
                                         args + list(chunk)).fetchall())
        found.sort(key=lambda r: (r["wave"] if r["wave"] is not None else -1, r["host"]))
        return [_agent(r) for r in found]

    def result_counts(self, deployment_id: str) -> dict[Optional[str], int]:
        """How many agents of the deployment have each result (None: no result yet), in one query."""
        rows = self.db.execute("SELECT result, COUNT(*) FROM agents WHERE deployment_id=? GROUP BY result",
                               (deployment_id,)).fetchall()
        return dict((r[0], r[1]) for r in rows)

    def ensure_agents(self, deployment_id: str, members: Iterable[Mapping[str, Any]], wave: Optional[int] = None,
                      cohort: Optional[str] = None) -> None:
        """Add agents that are not yet recorded (for ad-hoc notify calls)."""
        with self._tx():
            self.db.executemany(
                "INSERT OR IGNORE INTO agents (deployment_id, host, agent_id, occurrence_id, agent_url, cohort, wave) "
                "VALUES (?,?,?,?,?,?,?)",
                [(deployment_id, m["name"], m.get("agent_id"), m.get("occurrence_id"), m.get("agent_url"),
                  m.get("cohort", cohort), m.get("wave", wave)) for m in members],
            )

    def mark_asked(self, deployment_id: str, hosts: Iterable[str]) -> None:
        now = self.clock()
        with self._tx():
            self.db.executemany(
                "UPDATE agents SET asked_count=asked_count+1, asked_at=? WHERE deployment_id=? AND host=?",
                [(now, deployment_id, h) for h in hosts],
            )

    def record_answers(self, deployment_id: str, answers: Sequence[Mapping[str, Any]]) -> None:
        """``answers``: list of dicts with host, decision, reason, defer_until, decision_id, version_before."""
        now = self.clock()
        with self._tx():
            self.db.executemany(
                "UPDATE agents SET decision=?, decision_reason=?, defer_until=?, decision_id=COALESCE(?, decision_id), "
                "answered_at=?, version_before=COALESCE(version_before, ?) WHERE deployment_id=? AND host=?",
                [(a["decision"], a.get("reason"), a.get("defer_until"), a.get("decision_id"), a.get("answered_at", now),
                  a.get("version_before"), deployment_id, a["host"]) for a in answers],
            )
            for a in answers:
                self._event(deployment_id, "decision", {k: a.get(k) for k in ("host", "decision", "reason", "wave", "cohort")})

    def set_results(self, deployment_id: str, results: Iterable[Mapping[str, Any]]) -> None:
        """``results``: list of dicts with host, result and optional detail / version_after / version_before."""
        now = self.clock()
        with self._tx():
            self.db.executemany(
                "UPDATE agents SET result=?, result_detail=?, version_after=COALESCE(?, version_after), "
                "version_before=COALESCE(version_before, ?), finished_at=?, "
                "updated_at=CASE WHEN ?='updated' THEN ? ELSE updated_at END WHERE deployment_id=? AND host=?",
                [(r["result"], r.get("detail"), r.get("version_after"), r.get("version_before"), now,
                  r["result"], now, deployment_id, r["host"]) for r in results],
            )

    def merge_agent_extra(self, deployment_id: str, items: Mapping[str, Mapping[str, Any]]) -> None:
        """Merge ``{host: {key: value}}`` into each agent's ``extra`` JSON (multi-occurrence shutdown/wakeup)."""
        with self._tx():
            for host, data in items.items():
                row = self.db.execute("SELECT extra FROM agents WHERE deployment_id=? AND host=?", (deployment_id, host)).fetchone()
                if row is None:
                    continue
                extra = json.loads(row["extra"]) if row["extra"] else {}
                extra.update(data)
                self.db.execute("UPDATE agents SET extra=? WHERE deployment_id=? AND host=?",
                                (json.dumps(extra), deployment_id, host))

    # -- waves ------------------------------------------------------------------
    def waves(self, deployment_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM waves WHERE deployment_id=? ORDER BY wave", (deployment_id,)).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["summary"] = json.loads(d["summary"]) if d["summary"] else None
            out.append(d)
        return out

    def wave_started(self, deployment_id: str, wave: int) -> None:
        now = self.clock()
        with self._tx():
            self.db.execute(
                "UPDATE waves SET status=CASE WHEN status='pending' THEN 'running' ELSE status END, "
                "started_at=COALESCE(started_at, ?) WHERE deployment_id=? AND wave=?",
                (now, deployment_id, int(wave)),
            )

    def wave_finished(self, deployment_id: str, wave: int, status: str, summary: Mapping[str, Any]) -> None:
        now = self.clock()
        with self._tx():
            self.db.execute(
                "UPDATE waves SET status=?, finished_at=?, summary=?, started_at=COALESCE(started_at, ?) WHERE deployment_id=? AND wave=?",
                (status, now, json.dumps(summary), now, deployment_id, int(wave)),
            )
            self._event(deployment_id, "wave_" + status, summary)

    # -- shared decisions (multi-occurrence agents) --------------------------------
    def record_shared_decision(self, agent_id: str, deployment_id: str, kind: str, decision: str, decision_id: Optional[str] = None,
                               decided_by: Optional[str] = None, reason: Optional[str] = None, defer_until: Optional[float] = None,
                               decided_at: Optional[float] = None) -> None:
        with self._tx():
            self.db.execute(
                "INSERT OR REPLACE INTO shared_decisions VALUES (?,?,?,?,?,?,?,?,?)",
                (agent_id, deployment_id, kind, decision, decision_id, decided_by,
                 decided_at if decided_at is not None else self.clock(), reason, defer_until),
            )
            self._event(deployment_id, "shared_decision", {"agent_id": agent_id, "kind": kind, "decision": decision,
                                                           "decision_id": decision_id, "decided_by": decided_by})

    def shared_decision(self, agent_id: str, kind: str, max_age: Optional[float] = None,
                        deployment_id: Optional[str] = None) -> Optional[dict[str, Any]]:
        """The newest shared decision of ``kind`` for an agent, younger than ``max_age`` seconds."""
        sql = "SELECT * FROM shared_decisions WHERE agent_id=? AND kind=?"
        args: list[Union[str, float]] = [agent_id, kind]
        if deployment_id is not None:
            sql += " AND deployment_id=?"
            args.append(deployment_id)
        if max_age is not None:
            sql += " AND decided_at >= ?"
            args.append(self.clock() - float(max_age))
        row = self.db.execute(sql + " ORDER BY decided_at DESC LIMIT 1", args).fetchone()
        return dict(row) if row else None

    # -- events -------------------------------------------------------------------
    def _event(self, deployment_id: str, event: str, data: Optional[Mapping[str, Any]] = None) -> None:
        self.db.execute(
            "INSERT INTO events (deployment_id, ts, event, data) VALUES (?,?,?,?)",
            (deployment_id, self.clock(), event, json.dumps(data) if data is not None else None),
        )

    def event(self, deployment_id: str, event: str, data: Optional[Mapping[str, Any]] = None) -> None:
        with self._tx():
            self._event(deployment_id, event, data)

    def events(self, deployment_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM events WHERE deployment_id=? ORDER BY seq", (deployment_id,)).fetchall()
        return [dict(r, data=json.loads(r["data"]) if r["data"] else None) for r in rows]


def _agent(row: sqlite3.Row) -> AgentRow:
    d = dict(row)
    d["extra"] = json.loads(d["extra"]) if d.get("extra") else None
    return d
