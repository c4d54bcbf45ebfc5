# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Notifications (``rollout_notify_url``): one JSON POST per event of a deployment -- started, a wave passed, a
wave failed, paused, staged for promotion, finished -- with the deployment id, strategy, target version, wave,
counts and a human ``text`` (so a Slack or Mattermost incoming webhook shows it as it is).

A receiver that fails is a warning, never an error: every event gets a few tries within what is left of the run's
budget (``budget`` seconds, 5 by default, over the whole run), so a slow or dead receiver never slows the rollout
by more than that. Nothing secret goes into a payload (no token, no header); the URL (an incoming webhook's URL
is a secret) and the headers are never printed: a warning names the receiver's host only."""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, TypedDict
from urllib.parse import urlsplit

# urllib3 from the one place the collection imports it (None without it: the import sanity test)
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.compat import urllib3

# one event: the JSON body of one POST
Event = Dict[str, Any]


class PostResult(TypedDict):
    """What :func:`post_events` returns."""

    sent: List[str]
    undelivered: List[str]
    warnings: List[str]
    spent: float


WEBHOOK_SPEC = dict(
    url=dict(type="str", required=True, no_log=True),
    headers=dict(type="dict", default={}, no_log=True),
    source=dict(type="str", required=True, choices=["deployment", "wave"]),
    result=dict(type="dict", required=True),
    deployment_key=dict(type="str", no_log=False),
    strategy=dict(type="str"),
    target_version=dict(type="str"),
    budget=dict(type="float", default=5.0),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
)
# tries per event (within the budget), and the waits between them
TRIES = 3
BACKOFF = (0.25, 0.5)
# one request's timeouts at most (less when the budget has less left)
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 3.0
# the modes of agentfleet.rollout.deployment that start (or go on with) a run of waves
STARTING_MODES = ("new", "resumed", "retry", "promoted", "rolled_back")


def validate_webhook(params: Mapping[str, Any]) -> None:
    url = params.get("url") or ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url: rollout_notify_url must be an http:// or https:// URL (value not shown)")
    bad = [k for k, v in (params.get("headers") or {}).items() if not isinstance(v, str)]
    if bad:
        raise ValueError("headers: rollout_notify_headers values must be strings: %s" % ", ".join(sorted(bad)))
    if params.get("budget") is not None and params["budget"] < 0:
        raise ValueError("budget must be at least 0, got %s" % params["budget"])


def _base(result: Mapping[str, Any], known: Mapping[str, Optional[str]]) -> Event:
    return {"deployment_id": result.get("deployment_id"),
            "deployment_key": known.get("deployment_key") or result.get("deployment_key"),
            "strategy": result.get("strategy") or known.get("strategy"),
            "target_version": result.get("target_version") or known.get("target_version")}


def events_of(source: str, result: Optional[Mapping[str, Any]], deployment_key: Optional[str] = None,
              strategy: Optional[str] = None, target_version: Optional[str] = None) -> List[Event]:
    """The events a registered result stands for, each the JSON body of one POST. ``deployment_key``,
    ``strategy`` and ``target_version`` fill in what a wave's result does not say itself."""
    result = result or {}
    known: Dict[str, Optional[str]] = {"deployment_key": deployment_key, "strategy": strategy, "target_version": target_version}
    if source == "deployment":
        if result.get("mode") not in STARTING_MODES or result.get("already_complete"):
            return []
        body = _base(result, known)
        body.update(mode=result["mode"], waves=len(result.get("plan") or result.get("waves") or []))
        text = "deployment %s (%s, target %s) %s" % (body["deployment_id"], body["strategy"], body["target_version"],
                                                     "started" if result["mode"] == "new" else result["mode"])
        return [dict(event="deployment_started", text=text, **body)]
    events: List[Event] = []
    wave = result.get("rollout_wave_summary") or {}
    summary = result.get("rollout_deployment_summary") or {}
    common = _base(dict(summary, deployment_id=summary.get("deployment_id") or wave.get("deployment_id")), known)
    if wave:
        counts = dict((k, wave.get(k)) for k in ("size", "accepted", "declined", "deferred", "rejected", "unreachable",
                                                 "skipped", "healthy", "updated", "failed"))
        events.append(dict(event="wave_passed" if wave.get("passed") else "wave_failed", text=wave.get("line") or "",
                           wave={"index": wave.get("wave"), "count": wave.get("wave_count"), "name": wave.get("name")},
                           counts=counts, reason=wave.get("halt_reason"), **common))
    if summary:
        status = summary.get("status")
        names: Dict[Any, str] = {"paused": "deployment_paused", "staged": "deployment_staged"}
        event = names.get(status, "deployment_finished")
        reason = (": %s" % summary["message"]) if summary.get("message") else ""
        text = "deployment %s (%s -> %s): %s%s" % (common["deployment_id"], common["strategy"], common["target_version"],
                                                   status, reason)
        events.append(dict(event=event, text=text, status=status, counts=summary.get("totals") or {},
                           reason=summary.get("message"), **common))
    elif result.get("paused"):
        events.append(dict(event="deployment_paused", text=result.get("line") or "deployment paused",
                           status="paused", reason=result.get("halt_reason"), **common))
    return events


def receiver(url: Optional[str]) -> str:
    """What a message may say about the receiver: its scheme and host, never its path or query."""
    parts = urlsplit(url or "")
    return "%s://%s" % (parts.scheme, parts.hostname)


def post_events(url: str, headers: Optional[Mapping[str, str]], events: List[Event], budget: float,
                validate_certs: bool = True, ca_path: Optional[str] = None,
                clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                pool: Optional[urllib3.PoolManager] = None) -> PostResult:
    """POST each event; returns ``{sent, undelivered, warnings, spent}``. Never raises for the receiver's failures."""
    start = clock()
    out: PostResult = {"sent": [], "undelivered": [], "warnings": [], "spent": 0.0}
    if not events:
        return out
    if pool is None:
        kwargs: Dict[str, Any] = {"retries": False}
        if urlsplit(url).scheme == "https":
            kwargs["cert_reqs"] = "CERT_REQUIRED" if validate_certs else "CERT_NONE"
            if ca_path:
                kwargs["ca_certs"] = ca_path
        pool = urllib3.PoolManager(**kwargs)
    send_headers: Dict[str, str] = {"Content-Type": "application/json"}
    send_headers.update(headers or {})
    for body in events:
        cause: Optional[str] = None
        for attempt in range(TRIES):
            left = budget - (clock() - start)
            if left <= 0.05:
                cause = cause or "no time left of rollout_notify budget (%ss)" % budget
                break
            try:
                resp = pool.request("POST", url, body=json.dumps(body, sort_keys=True).encode("utf-8"),
                                    headers=send_headers, redirect=False,
                                    timeout=urllib3.Timeout(total=left, connect=min(CONNECT_TIMEOUT, left),
                                                            read=min(READ_TIMEOUT, left)))
            except urllib3.exceptions.HTTPError as exc:
                cause = _error(exc)
            else:
                if 200 <= resp.status < 300:
                    cause = None
                    break
                cause = "HTTP %d" % resp.status
                if resp.status < 500 and resp.status != 429:
                    break
            if attempt < TRIES - 1:
                wait = min(BACKOFF[min(attempt, len(BACKOFF) - 1)], max(0.0, budget - (clock() - start)))
                if wait > 0:
                    sleep(wait)
        if cause is None:
            out["sent"].append(body["event"])
        else:
            out["undelivered"].append(body["event"])
            out["warnings"].append("notification %s to %s not delivered: %s (the rollout goes on)"
                                   % (body["event"], receiver(url), cause))
    out["spent"] = round(clock() - start, 3)
    return out


def _error(exc: BaseException) -> str:
    """A transport error in words, without the URL (urllib3 puts the whole URL into some messages)."""
    reason = getattr(exc, "reason", None)
    text = type(reason or exc).__name__
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and reason is not None:
        exc = reason
    if isinstance(exc, urllib3.exceptions.NewConnectionError) or "Connection refused" in str(exc):
        return "connection refused or no route"
    if isinstance(exc, (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError)):
        return "timed out"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return "TLS error"
    return text
