# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reports and audit lines: JSON written atomically, secrets redacted.

Every writer takes the secrets it must never emit (tokens, AWS keys) and
scrubs them from keys named like secrets and from any string value.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import threading

REDACTED = "********"
SECRET_KEY_PARTS = ("token", "password", "secret", "authorization", "access_key", "session")

_audit_lock = threading.Lock()


def utcnow_iso(ts=None):
    """ISO-8601 UTC with a Z suffix; ``ts`` is a unix time (default now)."""
    if ts is None:
        dt = datetime.datetime.now(datetime.timezone.utc)
    else:
        dt = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _is_secret_key(key):
    k = str(key).lower()
    return any(part in k for part in SECRET_KEY_PARTS)


def redact(obj, secrets=()):
    """Return a deep copy of ``obj`` with secret values replaced.

    Values under keys that name a secret are replaced whole; every
    occurrence of a known secret string inside any other string is masked.
    """
    secrets = [s for s in (secrets or ()) if isinstance(s, str) and s]
    return _redact(obj, secrets)


def _redact(obj, secrets):
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if _is_secret_key(key) and value not in (None, "", False) and not isinstance(value, (dict, list, bool)):
                out[key] = REDACTED
            else:
                out[key] = _redact(value, secrets)
        return out
    if isinstance(obj, (list, tuple)):
        return [_redact(v, secrets) for v in obj]
    if isinstance(obj, str):
        for s in secrets:
            if s in obj:
                obj = obj.replace(s, REDACTED)
        return obj
    return obj


def _ensure_parent(path):
    parent = os.path.dirname(os.path.abspath(path))
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, exist_ok=True)


def write_json_atomic(path, data, secrets=()):
    """Write ``data`` as pretty JSON to ``path`` atomically (temp file + rename)."""
    _ensure_parent(path)
    payload = json.dumps(redact(data, secrets), indent=2, sort_keys=True, default=str)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_report(path, report, secrets=()):
    """Write a rollout report (a dict) to ``path``; returns the path."""
    write_json_atomic(path, report, secrets)
    return path


def append_audit(path, events, secrets=()):
    """Append one JSON line per event to the audit log at ``path``.

    ``events`` is a dict or a list of dicts; each gets a ``ts`` (ISO UTC)
    when it has none. Lines are appended under a lock and flushed.
    """
    if not path:
        return
    if isinstance(events, dict):
        events = [events]
    _ensure_parent(path)
    lines = []
    for event in events:
        event = dict(event)
        event.setdefault("ts", utcnow_iso())
        lines.append(json.dumps(redact(event, secrets), sort_keys=True, default=str))
    if not lines:
        return
    with _audit_lock:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
            handle.flush()


def decision_auditor(audit_path, deployment_id, agents, secrets):
    """An ``on_answers`` callback writing one audit line per decision (or None without an audit path)."""
    if not audit_path:
        return None
    members = dict((a["name"], a) for a in agents)

    def audit(round_answers):
        lines = []
        for name, ans in round_answers.items():
            m = members.get(name, {})
            lines.append({"event": "decision", "deployment_id": deployment_id, "host": name,
                          "agent_id": m.get("agent_id"), "cohort": m.get("cohort"), "wave": m.get("wave"),
                          "decision": ans.get("decision"), "reason": ans.get("reason"),
                          "defer_until": utcnow_iso(ans["defer_until"]) if ans.get("defer_until") else None,
                          "http_status": ans.get("http_status"),
                          # the transport's account: asked once more after a lost answer, and why
                          "resent": bool(ans.get("resent")), "note": ans.get("note")})
        append_audit(audit_path, lines, secrets)

    return audit
