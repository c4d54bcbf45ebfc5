# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent control protocol (CIRIS-compatible), see PROTOCOL.md: its rules and its verbs.

Pure functions map HTTP answers to decisions (:func:`map_shutdown_answer`)
and health bodies to verdicts (:func:`evaluate_health`,
:func:`classify_liveness`); they hold the protocol's rules and are
unit-tested on their own.

One :class:`AgentClient` serves a whole wave: the verbs (:meth:`~AgentClient.probe`,
:meth:`~AgentClient.liveness`, :meth:`~AgentClient.shutdown`,
:meth:`~AgentClient.ask`) on the HTTP client of ``_transport/client.py``
(pools, TLS, proxies, timeouts and deadlines, retries of what provably did
not reach the agent), and a bounded thread pool for fan-out.
"""

from __future__ import annotations

import datetime
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, TypeVar

from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.client import HTTPClient
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.errors import ProtocolError
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.errors import TransportError

# a decision as map_shutdown_answer and the verbs give it (decision, reason, defer_until, decision_id, http_status,
# and from the verbs resent and note); what an agent said of itself (evaluate_health's info)
Decision = Dict[str, Any]
Info = Dict[str, Any]
# a judgement of one health answer: (state or healthy, cause, info)
Liveness = Tuple[str, Optional[str], Info]
_T = TypeVar("_T")
_R = TypeVar("_R")

HEALTH_PATH = "/v1/system/health"
SHUTDOWN_PATH = "/v1/system/shutdown"

ACCEPT = "accept"
DEFER = "defer"
REJECT = "reject"
UNREACHABLE = "unreachable"
# 401/403: the agent refused the credential (not a decision of the agent)
AUTH_ERROR = "unauthorized"
# 200/202 without ``data.decision``: the agent deliberates as a task and shows
# its decision by acting (PROTOCOL.md, "Observed consent")
PENDING = "pending"
# the result of an observed decline: still working when the stop timeout ended
DECLINED = "declined"
FINAL_DECISIONS = (ACCEPT, REJECT)
DECISIONS = (ACCEPT, PENDING, DEFER, REJECT, UNREACHABLE, AUTH_ERROR)

# what a health answer says about the agent's process (see classify_liveness)
WORKING = "working"
DRAINING = "draining"
STOPPED = "stopped"
NO_ANSWER = "no_answer"
GATEWAY_DOWN = (502, 503, 504)
# transport failures that prove nothing is listening any more
STOPPED_KINDS = ("refused", "reset", "connect")


class AuthError(ProtocolError):
    """401/403 from an agent: the token is wrong or missing."""


def _parse_iso(value: object) -> float:
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    dt = datetime.datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


def parse_defer_until(value: Any, now: float) -> Optional[float]:
    """``defer_until`` as a unix time: ISO-8601 time or seconds from ``now``.

    Returns None when absent or unparsable.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return now + float(value)
    text = str(value).strip()
    try:
        return now + float(text)
    except ValueError:
        pass
    try:
        return _parse_iso(text)
    except ValueError:
        return None


def map_shutdown_answer(status: int, payload: Any, now: float) -> Decision:
    """Map an HTTP answer to a shutdown request onto a decision (PROTOCOL.md).

    ``payload`` is the parsed JSON body (or None). Returns a dict with
    ``decision`` and, where given, ``reason``, ``defer_until`` (unix time),
    ``decision_id``. 401/403 map to ``unauthorized``.
    """
    data = payload.get("data") if isinstance(payload, dict) else None
    data = data if isinstance(data, dict) else {}
    out: Decision = {"decision": None, "reason": None, "defer_until": None, "decision_id": None, "http_status": status}
    if data.get("reason") is not None:
        out["reason"] = str(data.get("reason"))
    if data.get("decision_id") is not None:
        out["decision_id"] = str(data.get("decision_id"))
    if status in (200, 202):
        decision = data.get("decision")
        if decision is None:
            out["decision"] = PENDING
        else:
            decision = str(decision).lower()
            if decision not in (ACCEPT, DEFER, REJECT):
                out["decision"] = REJECT
                out["reason"] = "unknown decision %r%s" % (decision, (": " + out["reason"]) if out["reason"] else "")
            else:
                out["decision"] = decision
        if out["decision"] == DEFER:
            out["defer_until"] = parse_defer_until(data.get("defer_until"), now)
        return out
    if status == 409 and _already_requested(payload):
        # ciris-agent (routes/system/helpers.py, check_shutdown_already_requested): a shutdown is already under
        # way, ours or another's: an accept in progress, watched until the agent stops; never a deferral
        out["decision"] = PENDING
        out["reason"] = "shutdown already requested (409): %s" % _detail_text(payload)
        return out
    if status == 409:
        out["decision"] = DEFER
        retry = None
        if isinstance(payload, dict):
            retry = payload.get("retry_after_ms", data.get("retry_after_ms"))
        try:
            retry = float(retry) / 1000.0 if retry is not None else None
        except (TypeError, ValueError):
            retry = None
        out["defer_until"] = now + retry if retry is not None else parse_defer_until(data.get("defer_until"), now)
        out["reason"] = out["reason"] or "busy (409)"
        return out
    if status in (401, 403):
        out["decision"] = AUTH_ERROR
        out["reason"] = "authentication failed (HTTP %d): check the token" % status
        return out
    out["decision"] = REJECT
    if not out["reason"]:
        detail = payload.get("detail") if isinstance(payload, dict) else None
        out["reason"] = "HTTP %d%s" % (status, (": %s" % detail) if detail else "")
    return out


ALREADY_REQUESTED = "shutdown already requested"


def _detail_text(payload: Any) -> str:
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, dict):
        detail = detail.get("message") or detail.get("detail")
    return str(detail)[:200] if detail is not None else ""


def _already_requested(payload: Any) -> bool:
    """A 409 whose ``detail`` says a shutdown is already requested (ciris-agent 2.16.5)."""
    return _detail_text(payload).lower().startswith(ALREADY_REQUESTED)


# A CIRIS agent reports its release with its channel: version "2.16.5-stable" is release 2.16.5.
RELEASE_SUFFIXES = ("-stable",)


def version_matches(reported: object, target: object) -> bool:
    """Does the ``version`` an agent reports name the release ``target``?

    Equal strings, or ``target`` plus a release suffix (``2.16.5-stable`` is 2.16.5, as real CIRIS agents
    report it). A pre-release (``2.16.5-rc1``) is not the release.
    """
    if reported is None or target is None:
        return False
    reported, target = str(reported), str(target)
    if reported == target:
        return True
    return any(reported == target + suffix for suffix in RELEASE_SUFFIXES)


# the warning codes of a CIRIS agent's health (``data.warnings``) that make it unhealthy unless the user says
# otherwise (rollout_blocking_warnings): configured adapters that did not load (CIRISAgent #1057), a shared task
# stranded for a day (#1018), a shared-task claim that left no row, a rejected wakeup step (#1069). Not
# occurrence_identity: a multi-occurrence agent reports it on every probe as a plain state report.
DEFAULT_BLOCKING_WARNINGS = ("adapters_failed_to_load", "adapters_config_stale", "shared_task_stranded",
                             "shared_claim_not_persisted", "wakeup_step_rejected")
# the cognitive_state of a CIRIS agent that rejected a wakeup step: terminal, it never recovers by waiting
WAKEUP_ERROR = "wakeup_error"


def health_warnings(data: Optional[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """A health body's ``warnings`` as ``[{code, message, severity}]`` (CIRIS's SystemWarning; a bare string
    is a code); anything else in the list is ignored."""
    found = []
    for w in (data or {}).get("warnings") or []:
        if isinstance(w, str):
            w = {"code": w}
        if isinstance(w, dict) and w.get("code"):
            found.append({"code": str(w["code"]), "message": w.get("message"), "severity": w.get("severity")})
    return found


def blocking_warning(info: Optional[Mapping[str, Any]], blocking_warnings: Optional[Iterable[str]]) -> Optional[str]:
    """The cause an agent is unhealthy for when it reports one of ``blocking_warnings``, else None:
    ``warning adapters_failed_to_load: Configured adapter(s) failed to start: discord (ConnectionError)``."""
    codes = set(blocking_warnings or ())
    for w in (info or {}).get("warnings") or []:
        if w["code"] in codes:
            return "warning %s%s" % (w["code"], ": %s" % w["message"] if w.get("message") else "")
    return None


def is_wakeup_error(info: Optional[Mapping[str, Any]]) -> bool:
    """Whether the agent reports ``cognitive_state`` wakeup_error (CIRIS reports it as ``WAKEUP_ERROR``)."""
    return str((info or {}).get("cognitive_state") or "").lower() == WAKEUP_ERROR


def evaluate_health(status: Optional[int], payload: Any, expected_states: Sequence[str] = ("work",),
                    target_version: Optional[str] = None, error: Optional[str] = None,
                    blocking_warnings: Optional[Iterable[str]] = ()) -> Tuple[bool, Optional[str], Info]:
    """Judge one health probe. Returns ``(healthy, cause, info)``.

    ``info`` holds what the agent said (status, version, cognitive_state,
    occurrence_id, agent_id, warnings as :func:`health_warnings`) where it said it.
    An agent reporting one of ``blocking_warnings`` (codes) is not healthy.
    """
    info: Info = {}
    if error is not None:
        return False, error, info
    if status != 200:
        return False, "HTTP %s" % status, info
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        return False, "unparsable body", info
    for key in ("status", "version", "cognitive_state", "occurrence_id", "agent_id", "uptime_seconds", "initialization_complete"):
        if key in data:
            info[key] = data[key]
    if data.get("warnings"):
        info["warnings"] = health_warnings(data)
    missing = [k for k in ("status", "cognitive_state") if k not in data]
    if missing:
        return False, "missing fields: %s" % ", ".join(missing), info
    if data["status"] != "healthy":
        return False, "status %s" % data["status"], info
    if data["cognitive_state"] not in expected_states:
        return False, "cognitive_state %s (expected %s)" % (data["cognitive_state"], "|".join(expected_states)), info
    if target_version is not None and not version_matches(data.get("version"), target_version):
        return False, "version %s (expected %s)" % (data.get("version"), target_version), info
    blocked = blocking_warning(info, blocking_warnings)
    if blocked:
        return False, blocked, info
    return True, None, info


def probe_result(status: Optional[int], payload: Any, expected_states: Sequence[str] = ("work",),
                 target_version: Optional[str] = None) -> Dict[str, Any]:
    """One health answer as a probe's result: ``{healthy, cause, info, reachable: True}`` (:func:`evaluate_health`)."""
    healthy, cause, info = evaluate_health(status, payload, expected_states, target_version)
    return {"healthy": healthy, "cause": cause, "info": info, "reachable": True}


def classify_liveness(status: Optional[int] = None, payload: Any = None, error: Optional[BaseException] = None) -> Liveness:
    """What one health answer says about the agent's process: ``(state, cause, info)``.

    The one classifier of the collection for "has it stopped?" (updates,
    reverts, shutdown waves, wakeup):

    - :data:`STOPPED`: nothing listens (connection refused or reset, host
      unreachable) or its proxy answers 502/503/504 (backend gone);
    - :data:`DRAINING`: it answers with ``cognitive_state: shutdown`` (still
      finishing its work; not stopped);
    - :data:`WORKING`: it answers anything else (a 500 from the agent itself
      is an answering process too);
    - :data:`NO_ANSWER`: a timeout, a TLS or URL error: no evidence either way.
    """
    if error is not None:
        kind = getattr(error, "kind", None)
        if kind in STOPPED_KINDS:
            return STOPPED, str(error), {}
        return NO_ANSWER, str(error), {}
    if status in GATEWAY_DOWN:
        return STOPPED, "HTTP %d from the gateway (backend gone)" % status, {}
    cause, info = evaluate_health(status, payload, ("work",))[1:]
    if info.get("cognitive_state") == "shutdown":
        return DRAINING, "cognitive_state shutdown (draining)", info
    return WORKING, cause, info


def join_url(base: str, path: str) -> str:
    return base.rstrip("/") + path


class AgentClient(HTTPClient):
    """The agent protocol's client, shared by a wave's threads.

    The verbs on :class:`._transport.client.HTTPClient` (whose options it takes), and :meth:`fan_out` on a
    bounded thread pool (``max_workers`` threads, built on first use).
    """

    # the fan-out pool, built by the first fan_out that needs one, shut down by close
    _executor: Optional[ThreadPoolExecutor] = None

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        super().close()

    # -- protocol calls ---------------------------------------------------
    def probe(self, agent_url: str, expected_states: Sequence[str] = ("work",),
              target_version: Optional[str] = None) -> Dict[str, Any]:
        """GET health and judge it: ``{healthy, cause, info, reachable, elapsed}``.

        A failure before sending is retried (``connect_retries``).
        """
        try:
            resp = self.request("GET", join_url(agent_url, HEALTH_PATH), connect_retries=None)
        except TransportError as exc:
            return {"healthy": False, "cause": str(exc), "info": {}, "reachable": False}
        return dict(probe_result(resp.status, resp.json, expected_states, target_version), elapsed=resp.elapsed)

    def liveness(self, agent_url: str) -> Liveness:
        """Health GET classified by :func:`classify_liveness`: ``(state, cause, info)``.

        A refused connection (or a reset while connecting) is the answer
        (stopped), so it is not retried; a connect timeout or an unreachable
        proxy say nothing about the agent and are retried like other requests.
        """
        try:
            resp = self.request("GET", join_url(agent_url, HEALTH_PATH), connect_retries=None,
                                retry_kinds=("timeout", "proxy"))
        except TransportError as exc:
            return classify_liveness(error=exc)
        return classify_liveness(resp.status, resp.json)

    @staticmethod
    def _result(decision: str, reason: Optional[str], http_status: Optional[int] = None, resent: bool = False,
                note: Optional[str] = None) -> Decision:
        return {"decision": decision, "reason": reason, "defer_until": None, "decision_id": None,
                "http_status": http_status, "resent": resent, "note": note}

    def _post_shutdown(self, agent_url: str, body: Mapping[str, Any], now: Callable[[], float]) -> Decision:
        """POST shutdown once (failures before sending retried): a decision dict, or raises the
        :class:`TransportError` of a failure after sending."""
        try:
            resp = self.request("POST", join_url(agent_url, SHUTDOWN_PATH), body=body, keep=False, connect_retries=None)
        except TransportError as exc:
            if not exc.sent:
                return self._result(UNREACHABLE, str(exc))
            raise
        if resp.json is None and resp.status in (200, 202) and resp.body.strip():
            return self._result(UNREACHABLE, "unparsable answer (HTTP %d)" % resp.status, resp.status)
        out = map_shutdown_answer(resp.status, resp.json, now())
        out.setdefault("resent", False)
        out.setdefault("note", None)
        return out

    def shutdown(self, agent_url: str, body: Mapping[str, Any], now: Callable[[], float] = time.time) -> Decision:
        """POST shutdown; returns a decision dict (see :func:`map_shutdown_answer`).

        Failures before sending are retried (always the same body, so the same
        deployment_id); a failure after sending is never resolved here and
        gives ``unreachable``: :meth:`ask` resolves it.
        """
        try:
            return self._post_shutdown(agent_url, body, now)
        except TransportError as exc:
            return self._result(UNREACHABLE, str(exc))

    def ask(self, agent_url: str, body: Mapping[str, Any], now: Callable[[], float] = time.time) -> Decision:
        """POST shutdown and resolve a failure after sending; returns a decision dict.

        Keys: ``decision``, ``reason``, ``defer_until``, ``decision_id``,
        ``http_status`` (see :func:`map_shutdown_answer`), ``resent`` (the
        request went a second time) and ``note`` (for the audit log, or None).

        A failure before sending is retried like every request. When the POST
        fails after sending (connection reset, read timeout, request deadline)
        the request may or may not have arrived, so one health probe decides
        (:func:`classify_liveness`):

        - draining or stopped: it arrived; ``pending`` (the engine observes the
          agent, PROTOCOL.md "Observed consent"), ``reason`` says what was seen;
        - working: after a jittered pause (``retry_delay`` x 2, +-50 %) it is
          asked once more with the same body (same deployment_id: an agent
          that answered already answers the same again) and that answer is returned with ``resent`` True and a
          ``note``; should that fail after sending too, the agent is probed
          once more but never asked a third time;
        - no answer: ``unreachable``.

        With ``body["force"]`` true a read timeout (or the deadline) is not
        evidence of anything: a forced shutdown may never answer and its
        health may hang while the agent goes down (PROTOCOL.md), so the answer
        is ``pending`` at once, without a probe and without sending again.
        """
        try:
            return self._post_shutdown(agent_url, body, now)
        except TransportError as exc:
            first = exc
        if body.get("force") and first.kind == "timeout":
            return self._result(PENDING, "forced shutdown request sent, no answer (%s): a forced request may never "
                                "answer, so the agent is observed" % first)
        state, cause = self.liveness(agent_url)[:2]
        if state in (DRAINING, STOPPED):
            return self._result(PENDING, "the request was sent (%s), then the agent was seen %s (%s): it arrived"
                                % (first, state, cause))
        if state != WORKING:
            return self._result(UNREACHABLE, "%s; then the health probe got no answer (%s)" % (first, cause))
        note = ("shutdown request asked again with the same deployment_id: the first one failed after sending (%s) "
                "and the agent was still working" % first)
        # a jittered pause first: what lost the first request (an overloaded listener) may still be going on
        self._sleep(self._backoff(1))
        try:
            out = self._post_shutdown(agent_url, body, now)
        except TransportError as exc:
            state, cause = self.liveness(agent_url)[:2]
            if state in (DRAINING, STOPPED):
                return self._result(PENDING, "the request was sent twice (%s), then the agent was seen %s (%s)"
                                    % (exc, state, cause), resent=True, note=note)
            return self._result(UNREACHABLE, "asked twice, no answer (%s; then %s)" % (exc, state), resent=True, note=note)
        out["resent"] = True
        out["note"] = note
        return out

    def fan_out(self, fn: Callable[[_T], _R], items: Iterable[_T]) -> List[_R]:
        """Run ``fn(item)`` for every item on the bounded pool; results in input order."""
        items = list(items)
        if not items:
            return []
        if self.max_workers == 1 or len(items) == 1:
            return [fn(item) for item in items]
        with self._lock:
            if self._executor is None:
                # one pool for the client's life
                self._executor = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="agentfleet")
            executor = self._executor
        return list(executor.map(fn, items))
