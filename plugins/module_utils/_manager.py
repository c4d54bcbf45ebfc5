# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A client for an existing CIRISManager's CD API (``manager_notify``, ``manager_status``).

CIRISManager orchestrates a deployment itself; CI only tells it about new images
(``POST /manager/v1/updates/notify``) and watches it (``GET /manager/v1/updates/status``),
both with ``Authorization: Bearer <deploy token>``. This module builds and parses those
requests (pure functions, unit-tested), talks to the manager over one ``requests`` session
(connect errors retried, nothing else: a notify that may have reached the manager is never
sent again), and waits for a deployment with an injectable clock. The modules' options and
runners, which turn this into a task's result, are ``_manager_module``'s.

This client is on ``requests`` (the library the design card names for it; one session, one manager, a
request every few seconds) rather than the agents' urllib3 client of ``_transport/client.py`` (STYLE.md point 10),
which is built for fanning out to many agents at once.

The deploy token never leaves this module in a message, a result or an exception: every
text taken from the manager (which may echo the request's headers) is masked first.
"""

from __future__ import annotations

import math
import re
import time
import warnings
from typing import Any, Callable, Dict, Iterable, Literal, Mapping, Optional, Tuple
from urllib.parse import urlsplit

try:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util import Retry
except ImportError as exc:
    # the import sanity test (and a controller without requests) must still import this file: the pure
    # functions work, and the modules fail with missing_required_lib("requests")
    requests = HTTPAdapter = Retry = None  # type: ignore[assignment,misc]  # absent library: the names exist, as None
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR: Optional[ImportError] = exc
else:
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None

from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import check_token
from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import redact
from ansible_collections.agentfleet.rollout.plugins.module_utils._version import USER_AGENT
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import Deadline
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import poll

NOTIFY_PATH = "/manager/v1/updates/notify"
STATUS_PATH = "/manager/v1/updates/status"
TOKEN_ENV = "CIRIS_DEPLOY_TOKEN"
STRATEGIES = ("canary", "immediate", "manual")
# the fields of the notify request, as CIRISManager's CD documentation lists them
BODY_FIELDS = ("agent_image", "gui_image", "strategy", "source", "commit_sha", "message", "metadata")
# the body fields whose manager_notify option has another name
OPTION_OF_FIELD = {"message": "update_message"}
# the fields of a deployment status (the notify answer and the status answer)
STATUS_FIELDS = ("deployment_id", "status", "agents_total", "agents_updated", "agents_deferred", "agents_rejected",
                 "started_at", "canary_phase", "message")
COUNT_FIELDS = ("agents_total", "agents_updated", "agents_deferred", "agents_rejected", "agents_failed")
SUCCEEDED = ("completed",)
# rolled_back: CIRISManager's status after a rollback, as final as failed
FAILED = ("failed", "cancelled", "rejected", "rolled_back")
TERMINAL = SUCCEEDED + FAILED

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_WAIT_TIMEOUT = 3600.0
DEFAULT_POLL_INTERVAL = 10.0
CONNECT_RETRIES = 3

_CONFLICT_ID = re.compile(r"[Dd]eployment\s+(\S+?)\s+(?:is\s+)?already in progress")

# a deployment status (parse_status): the documented fields, any other field the manager sent, and ``counts``
DeploymentStatus = Dict[str, Any]


class ManagerError(Exception):
    """A manager call failed; ``result`` holds what the task returns with the failure (already masked)."""

    def __init__(self, msg: str, **result: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result: Dict[str, Any] = result


class ManagerAuthError(ManagerError):
    """The manager refused the deploy token (401/403): polling again cannot help."""


class DeploymentFailed(ManagerError):
    """A deployment the task waited for ended without completing (failed, cancelled, rejected or rolled back);
    ``result`` is the whole task result, with the keys of a success."""


# ---------------------------------------------------------------------------- pure functions

def mask(value: Any, secrets: Optional[Iterable[Any]]) -> Any:
    """``value`` (a str, or dicts/lists of them) with every secret replaced by ``********``: :func:`._secrets.redact`."""
    return redact(value, secrets)


def normalize_base_url(url: Optional[str]) -> str:
    """The manager's base URL without a trailing slash; ``ValueError`` naming the field when unusable."""
    if not url or not str(url).strip():
        raise ValueError("manager_url is required (the manager's base URL, for example https://agents.example.org)")
    url = str(url).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("manager_url must be an http:// or https:// URL with a host, got %r" % url)
    if parts.query or parts.fragment:
        raise ValueError("manager_url must not carry a query or fragment, got %r" % url)
    if parts.path.endswith("/manager/v1") or "/updates/" in parts.path:
        raise ValueError("manager_url is the base URL (for example https://agents.example.org), without "
                         "/manager/v1/updates/...; got %r" % url)
    return url


def clean_token(token: Optional[str]) -> str:
    """The token without surrounding whitespace (a trailing newline from an env file is a classic); ``ValueError``
    when missing."""
    # the one token validator (control characters, latin-1), after the strip that forgives an env file's newline
    token = check_token((token or "").strip(), name="token (or %s)" % TOKEN_ENV) or ""
    if not token:
        raise ValueError("token is required: set the token option or the %s environment variable" % TOKEN_ENV)
    if any(c.isspace() for c in token):
        raise ValueError("token must not contain whitespace (check the value of token or %s)" % TOKEN_ENV)
    return token


def build_notify_body(params: Mapping[str, Any]) -> Dict[str, Any]:
    """The JSON body of ``POST /manager/v1/updates/notify`` from the module's options (unset ones are not sent)."""
    if not (params.get("agent_image") or params.get("gui_image")):
        raise ValueError("agent_image or gui_image is required: the manager deploys at least one new image")
    strategy = params.get("strategy") or "canary"
    if strategy not in STRATEGIES:
        raise ValueError("strategy must be one of %s, got %r" % (", ".join(STRATEGIES), strategy))
    metadata = params.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError("metadata must be a dictionary, got %s" % type(metadata).__name__)
    body: Dict[str, Any] = {}
    for key in BODY_FIELDS:
        # the body's "message" is the option update_message: ansible-test sanity (validate-modules) refuses an
        # argument or alias named "message" or "syslog_facility" (names ansible-core's module logging once used)
        value = strategy if key == "strategy" else params.get(OPTION_OF_FIELD.get(key, key))
        if value is None or (isinstance(value, str) and not value.strip() and key != "message"):
            continue
        if key == "metadata" and not value:
            continue
        body[key] = value
    return body


def parse_status(body: Any) -> Optional[DeploymentStatus]:
    """A deployment status from the manager's JSON answer: every documented field (``None`` when absent), every
    other field it sent, and ``counts`` (the ``agents_*`` numbers it sent). ``None`` for an empty answer (``null``:
    no such deployment, or no current one)."""
    if body is None:
        return None
    if not isinstance(body, dict):
        raise ManagerError("the manager answered with a JSON %s where a deployment status was expected"
                           % type(body).__name__)
    if not body.get("deployment_id") or not body.get("status"):
        raise ManagerError("the manager's answer is not a deployment status (no deployment_id or status): keys %s"
                           % (", ".join(sorted(str(k) for k in body)) or "none"))
    status = dict((key, body.get(key)) for key in STATUS_FIELDS)
    status.update(body)
    status["status"] = str(body["status"]).lower()
    status["counts"] = dict((key, body[key]) for key in COUNT_FIELDS if isinstance(body.get(key), int))
    return status


def outcome(status: Optional[str]) -> Optional[Literal["succeeded", "failed"]]:
    """``succeeded``, ``failed`` or ``None`` (still running, pending or staged) for a status string."""
    if status in SUCCEEDED:
        return "succeeded"
    if status in FAILED:
        return "failed"
    return None


def running_deployment_id(body: Any) -> Optional[str]:
    """The id of the deployment that holds the manager, from a 409 answer (a ``deployment_id`` field, or
    FastAPI's ``{"detail": "Deployment <id> already in progress"}``); ``None`` when it does not say."""
    if isinstance(body, dict):
        for key in ("deployment_id", "current_deployment", "running_deployment_id"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
        detail = body.get("detail")
        if isinstance(detail, dict):
            return running_deployment_id(detail)
        body = detail
    if isinstance(body, str):
        match = _CONFLICT_ID.search(body)
        if match:
            return match.group(1).rstrip(".,;:")
    return None


def error_detail(body: Any, text: Optional[str] = None, limit: int = 300) -> str:
    """A short human text from an error answer (FastAPI's ``detail``, a ``message``, or the raw text)."""
    detail = None
    if isinstance(body, dict):
        detail = body.get("detail", body.get("message", body.get("error")))
        if isinstance(detail, list):
            # a validation error: [{"loc": [...], "msg": ...}, ...]
            detail = "; ".join(
                "%s: %s" % (".".join(str(p) for p in d.get("loc", ()) if p != "body"), d.get("msg"))
                if isinstance(d, dict) else str(d) for d in detail)
    if detail is None:
        detail = text if text is not None else body
    detail = "" if detail is None else str(detail).strip()
    return detail if len(detail) <= limit else detail[:limit] + "..."


def summary_line(status: Optional[Mapping[str, Any]]) -> str:
    """``deploy-1: completed (phase general) - 7 total, 5 updated, 1 deferred, 1 rejected``."""
    if not status:
        return "no deployment"
    counts = status.get("counts") or {}
    names = (("agents_total", "total"), ("agents_updated", "updated"), ("agents_deferred", "deferred"),
             ("agents_rejected", "rejected"), ("agents_failed", "failed"))
    parts = ["%s %s" % (counts[key], label) for key, label in names if key in counts]
    text = "%s: %s" % (status.get("deployment_id"), status.get("status"))
    if status.get("canary_phase"):
        text += " (phase %s)" % status["canary_phase"]
    if parts:
        text += " - " + ", ".join(parts)
    if status.get("message"):
        text += " - %s" % status["message"]
    return text


# ---------------------------------------------------------------------------- the client

def connect_retry() -> Retry:
    """Retry what provably did not reach the manager (refused, connect timeout), nothing else: no read, status
    or other retries, so a notify that may have arrived is never sent twice."""
    return Retry(total=CONNECT_RETRIES, connect=CONNECT_RETRIES, read=0, status=0, other=0, redirect=0,
                 backoff_factor=0.5, raise_on_status=False, respect_retry_after_header=False)


class ManagerClient:
    """One ``requests`` session to one CIRISManager (keep-alive, TLS verified unless told otherwise)."""

    def __init__(self, base_url: Optional[str], token: Optional[str], validate_certs: bool = True, ca_path: Optional[str] = None,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, read_timeout: float = DEFAULT_READ_TIMEOUT) -> None:
        if not HAS_REQUESTS:
            raise ManagerError("the Python library requests is required to talk to CIRISManager")
        self.base_url = normalize_base_url(base_url)
        self._token = clean_token(token)
        self.secrets: Tuple[Optional[str], ...] = (self._token, token) if token != self._token else (self._token,)
        self.verify: str | bool = (ca_path or True) if validate_certs else False
        self.timeout = (float(connect_timeout), float(read_timeout))
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=connect_retry(), pool_connections=1, pool_maxsize=2)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT + " (manager client)"})

    def __enter__(self) -> ManagerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    def _mask(self, value: Any) -> Any:
        return mask(value, self.secrets)

    def _request(self, method: str, path: str, params: Optional[Dict[str, str]] = None,
                 body: Optional[Dict[str, Any]] = None) -> Tuple[int, Any, str, bool, str]:
        url = self.base_url + path
        what = "%s %s" % (method, url)
        try:
            with warnings.catch_warnings():
                if not self.verify:
                    warnings.simplefilter("ignore")
                resp = self.session.request(
                    method, url, params=params, json=body, timeout=self.timeout, verify=self.verify,
                    headers={"Authorization": "Bearer " + self._token}, allow_redirects=False)
        except requests.exceptions.SSLError as exc:
            raise ManagerError(self._mask(
                "TLS verification failed for %s: %s. Give the manager's CA with ca_path (or, for a test host only, "
                "validate_certs=false)" % (what, _reason(exc))), url=url)
        except requests.exceptions.ConnectTimeout as exc:
            raise ManagerError(self._mask("could not connect to the manager (%s): connect timeout after %s tries: %s"
                                          % (what, CONNECT_RETRIES + 1, _reason(exc))), url=url)
        except requests.exceptions.ReadTimeout:
            if method == "POST":
                msg = ("the manager did not answer %s within %s s; the notification may have been received: check "
                       "%s (manager_status) before notifying again - it is not sent twice"
                       % (what, self.timeout[1], STATUS_PATH))
                raise ManagerError(self._mask(msg), url=url, maybe_sent=True)
            raise ManagerError(self._mask("the manager did not answer %s within %s s" % (what, self.timeout[1])),
                               url=url)
        except requests.exceptions.ConnectionError as exc:
            raise ManagerError(self._mask("could not reach the manager (%s): %s" % (what, _reason(exc))), url=url)
        except requests.exceptions.RequestException as exc:
            raise ManagerError(self._mask("request to the manager failed (%s): %s" % (what, _reason(exc))), url=url)
        try:
            text = resp.text
        except Exception:  # pylint: disable=broad-except
            text = ""
        try:
            data = resp.json() if text.strip() else None
            parsed = True
        except ValueError:
            data, parsed = None, False
        return resp.status_code, self._mask(data), self._mask(text), parsed, url

    def _check(self, code: int, data: Any, text: str, parsed: bool, url: str, action: str) -> Any:
        if code in (401, 403):
            raise ManagerAuthError(
                "the manager refused the deploy token for %s (HTTP %s: %s); check the token option or %s"
                % (action, code, error_detail(data, text) or "no detail", TOKEN_ENV), http_status=code, url=url)
        if code in (301, 302, 303, 307, 308):
            raise ManagerError("the manager redirected %s (HTTP %s); point manager_url at the manager's base URL "
                               "(a redirect is not followed with the token)" % (action, code), http_status=code, url=url)
        if code == 404:
            raise ManagerError("the manager answered %s with HTTP 404 (%s): is manager_url the manager's base URL "
                               "(%s)?" % (action, error_detail(data, text) or "not found", self.base_url),
                               http_status=code, url=url)
        if code == 429:
            raise ManagerError("the manager rate-limited %s (HTTP 429: %s); try again later"
                               % (action, error_detail(data, text)), http_status=code, url=url)
        if not 200 <= code < 300:
            detail = error_detail(data, text) or "no detail"
            raise ManagerError("the manager answered %s with HTTP %s: %s" % (action, code, detail),
                               http_status=code, url=url, response=data if parsed else text[:300])
        if not parsed:
            raise ManagerError("the manager's answer to %s is not JSON: %s" % (action, error_detail(None, text)),
                               http_status=code, url=url)
        return data

    def notify(self, body: Dict[str, Any]) -> DeploymentStatus:
        """POST the notification once; the manager's deployment status. A 409 (one deployment at a time) is an
        error naming the deployment that holds the manager, when the answer says which."""
        code, data, text, parsed, url = self._request("POST", NOTIFY_PATH, body=body)
        if code == 409:
            running = running_deployment_id(data if parsed else text)
            raise ManagerError(
                "CIRISManager has a deployment in progress already%s and runs one at a time (HTTP 409: %s). Wait for "
                "it (manager_status with wait=true%s) or cancel it, then notify again; the notification was not "
                "retried" % (" (%s)" % running if running else "", error_detail(data, text) or "no detail",
                             ", deployment_id=%s" % running if running else ""),
                http_status=409, url=url, running_deployment_id=running)
        if code == 422 or code == 400:
            raise ManagerError("the manager refused the notification (HTTP %s): %s" % (code, error_detail(data, text)),
                               http_status=code, url=url, response=data if parsed else text[:300])
        status = parse_status(self._check(code, data, text, parsed, url, "the notify"))
        if status is None:
            raise ManagerError("the manager accepted the notify but returned no deployment status", http_status=code,
                               url=url)
        return status

    def status(self, deployment_id: Optional[str] = None) -> Optional[DeploymentStatus]:
        """The status of ``deployment_id`` (or of the current deployment); ``None`` when the manager has none."""
        params = {"deployment_id": deployment_id} if deployment_id else None
        code, data, text, parsed, url = self._request("GET", STATUS_PATH, params=params)
        # an unknown deployment is a 200 with null (CIRISManager); a 404 is a wrong URL, and _check says so
        return parse_status(self._check(code, data, text, parsed, url, "the status request"))


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests exception, without the pool's long preamble."""
    inner = exc
    for dummy in range(5):
        nxt = getattr(inner, "reason", None) or (inner.args[0] if getattr(inner, "args", None) else None)
        if nxt is None or nxt is inner or isinstance(nxt, str):
            break
        inner = nxt
    text = str(inner)
    return text if len(text) <= 300 else text[:300] + "..."


# ---------------------------------------------------------------------------- waiting

def wait_for_deployment(fetch: Callable[[str], Optional[Dict[str, Any]]], deployment_id: str, wait_timeout: float,
                        poll_interval: float, first: Optional[Dict[str, Any]] = None,
                        clock: Callable[[], float] = time.monotonic,
                        sleep: Callable[[float], None] = time.sleep) -> Tuple[Dict[str, Any], int]:
    """Poll ``fetch(deployment_id)`` until the deployment is completed, failed, cancelled, rejected or rolled back.

    Returns ``(status, polls)``. A poll that fails (the manager restarting, a proxy's 502) is tried again at the
    next interval until the deadline; a refused token fails at once. At the deadline a :class:`ManagerError`
    carries the last status seen. ``first`` is a status already in hand (the notify's answer).
    """
    deadline = Deadline(float(wait_timeout), clock)
    last, last_error, polls = first, None, 0
    # the first value the waiter judges is the status in hand, if any (then it sleeps before the first poll)
    in_hand = first is not None

    def poll_once() -> Optional[Dict[str, Any]]:
        nonlocal in_hand, last, last_error, polls
        if in_hand:
            in_hand = False
            return last
        try:
            status = fetch(deployment_id)
        except ManagerAuthError:
            raise
        except ManagerError as exc:
            polls += 1
            last_error = exc.msg
            return last
        polls += 1
        if status is None:
            raise ManagerError("the manager knows no deployment %s (the status answer is empty)" % deployment_id,
                               deployment=last, polls=polls)
        last, last_error = status, None
        return last

    finished = False
    if first is not None or not deadline.expired(clock()):
        finished = poll(poll_once, lambda status, now: status is not None and outcome(status["status"]) is not None,
                        deadline, float(poll_interval), sleep)[0]
    if not finished or last is None:
        raise ManagerError(
            "deployment %s did not finish within %s s; last status: %s%s"
            % (deployment_id, _seconds(wait_timeout), summary_line(last) if last else "none",
               "; last error: %s" % last_error if last_error else ""),
            deployment=last, timed_out=True, polls=polls)
    return last, polls


def _seconds(value: float) -> float:
    value = float(value)
    return int(value) if value == math.floor(value) else value
