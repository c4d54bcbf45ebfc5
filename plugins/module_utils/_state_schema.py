# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout state's SQLite schema and its migrations (used by :class:`._state.StateStore`).

``meta.schema_version`` says which schema a database has: a new database gets :data:`SCHEMA_VERSION`, an older one
is migrated when a store opens it (or, kept in S3, when a newer collection's store reloads it), and a newer one is
refused by the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any
from typing import Callable
from typing import Dict
from typing import Tuple

if TYPE_CHECKING:
    import sqlite3

SCHEMA_VERSION = 3

# A deployment as the stores return it: the ``deployments`` columns, ``plan``, ``params`` and ``policy``
# decoded from JSON. The rows are plain dicts (callers add keys and pass them on as JSON-like data).
Deployment = Dict[str, Any]
# An agent of a deployment as the stores return it: the ``agents`` columns (AGENT_COLUMNS), ``extra`` decoded.
AgentRow = Dict[str, Any]
# A store's clock: epoch seconds (``time.time``).
Clock = Callable[[], float]
# A start or resume of a deployment: ``(deployment, mode)`` (see ``StateStore.create_or_resume``).
Started = Tuple[Deployment, str]

# deployments that change no version have no place in a key's version history
UNVERSIONED_STRATEGIES = ("shutdown", "wakeup")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS deployments (
    deployment_id TEXT PRIMARY KEY,
    fleet_key TEXT NOT NULL,
    strategy TEXT NOT NULL,
    target_version TEXT,
    status TEXT NOT NULL,
    plan TEXT NOT NULL,
    params TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    updated_at REAL NOT NULL,
    owner_pid INTEGER,
    owner_host TEXT,
    heartbeat REAL,
    message TEXT,
    generation INTEGER NOT NULL DEFAULT 0,
    deployment_key TEXT,
    version INTEGER,
    source_version TEXT,
    policy TEXT,
    rollback_to INTEGER,
    actor TEXT,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS deployments_fleet ON deployments (fleet_key, status);
CREATE TABLE IF NOT EXISTS agents (
    deployment_id TEXT NOT NULL,
    host TEXT NOT NULL,
    agent_id TEXT,
    occurrence_id TEXT,
    agent_url TEXT,
    cohort TEXT,
    wave INTEGER,
    decision TEXT,
    decision_reason TEXT,
    decision_id TEXT,
    defer_until REAL,
    asked_count INTEGER NOT NULL DEFAULT 0,
    asked_at REAL,
    answered_at REAL,
    result TEXT,
    result_detail TEXT,
    version_before TEXT,
    version_after TEXT,
    updated_at REAL,
    finished_at REAL,
    extra TEXT,
    PRIMARY KEY (deployment_id, host)
);
CREATE TABLE IF NOT EXISTS waves (
    deployment_id TEXT NOT NULL,
    wave INTEGER NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL,
    finished_at REAL,
    summary TEXT,
    PRIMARY KEY (deployment_id, wave)
);
CREATE TABLE IF NOT EXISTS shared_decisions (
    agent_id TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    decision TEXT NOT NULL,
    decision_id TEXT,
    decided_by TEXT,
    decided_at REAL NOT NULL,
    reason TEXT,
    defer_until REAL,
    PRIMARY KEY (agent_id, deployment_id, kind)
);
CREATE INDEX IF NOT EXISTS shared_by_agent ON shared_decisions (agent_id, kind, decided_at);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id TEXT NOT NULL,
    ts REAL NOT NULL,
    event TEXT NOT NULL,
    data TEXT
);
"""

AGENT_COLUMNS = (
    "deployment_id", "host", "agent_id", "occurrence_id", "agent_url", "cohort", "wave", "decision",
    "decision_reason", "decision_id", "defer_until", "asked_count", "asked_at", "answered_at", "result",
    "result_detail", "version_before", "version_after", "updated_at", "finished_at", "extra",
)


def create_schema(db: sqlite3.Connection) -> int:
    """Create the tables and indexes a database lacks; returns its schema version (a new one is stamped with
    :data:`SCHEMA_VERSION`). The caller refuses a newer version and migrates an older one."""
    db.executescript(SCHEMA)
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        return SCHEMA_VERSION
    return int(row[0])


def create_version_index(db: sqlite3.Connection) -> None:
    """One version per deployment key (after a migration: the ``version`` column is new in schema 3)."""
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS deployments_version ON deployments (deployment_key, version)")


def migrate_schema(db: sqlite3.Connection) -> None:
    """Schema 1 -> 2: the lease generation. 2 -> 3: deployment records (key, version per key, source
    version, policy, rollback target, who and why); existing deployments get their fleet key as
    deployment key and versions 1, 2, ... in the order they were created. Run it inside a transaction."""
    columns = [r["name"] for r in db.execute("PRAGMA table_info(deployments)").fetchall()]
    if "generation" not in columns:
        db.execute("ALTER TABLE deployments ADD COLUMN generation INTEGER NOT NULL DEFAULT 0")
    for name, kind in (("deployment_key", "TEXT"), ("version", "INTEGER"), ("source_version", "TEXT"),
                       ("policy", "TEXT"), ("rollback_to", "INTEGER"), ("actor", "TEXT"), ("reason", "TEXT")):
        if name not in columns:
            db.execute("ALTER TABLE deployments ADD COLUMN %s %s" % (name, kind))
    db.execute("UPDATE deployments SET deployment_key=fleet_key WHERE deployment_key IS NULL")
    rows = db.execute(
        "SELECT deployment_id, deployment_key, strategy FROM deployments WHERE version IS NULL "
        "ORDER BY created_at, rowid").fetchall()
    for r in rows:
        if r["strategy"] in UNVERSIONED_STRATEGIES:
            continue
        db.execute(
            "UPDATE deployments SET version=(SELECT COALESCE(MAX(version), 0) + 1 FROM deployments "
            "WHERE deployment_key=?) WHERE deployment_id=?", (r["deployment_key"], r["deployment_id"]))
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
