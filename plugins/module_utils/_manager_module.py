# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The face of the CIRISManager client for ``manager_notify`` and ``manager_status``.

Their options (connection, notify, status), the checks of those options, and the two runners: each takes the
module's parameters, makes its calls through :mod:`._manager` (the client, the pure request and status
functions, the wait) and returns the task's result, one shape for a success and a failure. A deployment
waited for that did not complete is raised as :class:`._manager.DeploymentFailed` carrying that result.
:func:`run_manager_module` is the modules' ``main()``.

The deploy token is masked in every message and result that leaves here.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Mapping, Optional

from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import DEFAULT_CONNECT_TIMEOUT
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import DEFAULT_POLL_INTERVAL
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import DEFAULT_READ_TIMEOUT
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import DEFAULT_WAIT_TIMEOUT
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import HAS_REQUESTS
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import NOTIFY_PATH
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import REQUESTS_IMPORT_ERROR
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import STRATEGIES
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import TOKEN_ENV
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import DeploymentFailed
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import DeploymentStatus
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import ManagerClient
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import ManagerError
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import build_notify_body
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import clean_token
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import mask
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import normalize_base_url
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import outcome
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import summary_line
from ansible_collections.agentfleet.rollout.plugins.module_utils._manager import wait_for_deployment
from ansible_collections.agentfleet.rollout.plugins.module_utils._urls import token_in_clear

# an argument spec: option name -> its settings (type, default, choices, ...)
ArgumentSpec = Dict[str, Dict[str, Any]]
# a module's validated parameters
Params = Mapping[str, Any]
# the task's result (the keys of a success, a failure's too: see _give_result_keys)
Result = Dict[str, Any]

CONNECTION_SPEC: ArgumentSpec = dict(
    manager_url=dict(type="str", required=True),
    token=dict(type="str", no_log=True),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    connect_timeout=dict(type="float", default=DEFAULT_CONNECT_TIMEOUT),
    read_timeout=dict(type="float", default=DEFAULT_READ_TIMEOUT),
    wait=dict(type="bool", default=False),
    wait_timeout=dict(type="float", default=DEFAULT_WAIT_TIMEOUT),
    poll_interval=dict(type="float", default=DEFAULT_POLL_INTERVAL),
)

NOTIFY_SPEC: ArgumentSpec = dict(
    agent_image=dict(type="str"),
    gui_image=dict(type="str"),
    strategy=dict(type="str", default="canary", choices=list(STRATEGIES)),
    source=dict(type="str"),
    commit_sha=dict(type="str"),
    update_message=dict(type="str"),
    metadata=dict(type="dict"),
)

STATUS_SPEC: ArgumentSpec = dict(
    deployment_id=dict(type="str"),
)


def validate_connection(params: Params) -> None:
    """Raise ``ValueError`` naming the first bad connection option."""
    normalize_base_url(params.get("manager_url"))
    clean_token(params.get("token"))
    for key in ("connect_timeout", "read_timeout", "wait_timeout", "poll_interval"):
        value = params.get(key)
        if value is None and key in params:
            # an explicit null bypasses the option's default: the client would fail on float(None)
            raise ValueError("%s must be a number of seconds, got null" % key)
        if value is not None and (value <= 0 if key != "wait_timeout" else value < 0):
            raise ValueError("%s must be greater than 0, got %r" % (key, value))


def client_from_params(params: Params) -> ManagerClient:
    return ManagerClient(params["manager_url"], params.get("token"), validate_certs=params.get("validate_certs", True),
                         ca_path=params.get("ca_path"), connect_timeout=params["connect_timeout"],
                         read_timeout=params["read_timeout"])


def _result(status: Optional[DeploymentStatus], polls: int = 0, waited: bool = False, started: Optional[float] = None,
            clock: Callable[[], float] = time.monotonic) -> Result:
    verdict = outcome(status["status"]) if status else None
    return {
        "deployment": status,
        "deployment_id": status["deployment_id"] if status else None,
        "status": status["status"] if status else None,
        "finished": verdict is not None,
        "succeeded": verdict == "succeeded",
        "waited": waited,
        "polls": polls,
        "elapsed": round(clock() - started, 3) if started is not None else 0.0,
        "summary": summary_line(status),
    }


def _conclude(status: Optional[DeploymentStatus], polls: int, waited: bool, started: Optional[float], clock: Callable[[], float],
              **extra: Any) -> Result:
    """The task's result; when the task waited and the deployment ended without completing (``outcome`` says
    ``failed``: failed, cancelled, rejected, rolled_back), that result is raised as :class:`DeploymentFailed`, so
    the task fails the way amazon.aws and kubernetes.core waiters fail one, with the final status in it."""
    result = _result(status, polls, waited, started, clock)
    result.update(extra)
    if waited and outcome(result["status"]) == "failed":
        raise DeploymentFailed("the CIRISManager deployment ended %s, not completed: %s" % (result["status"], result["summary"]),
                               **result)
    return result


def _give_result_keys(exc: ManagerError, status: Optional[DeploymentStatus], polls: int, waited: bool, started: Optional[float],
                      clock: Callable[[], float], **extra: Any) -> None:
    """Give a failure every key a success returns (one shape per result): ``status`` is the last status in hand
    and ``polls`` the polls made before a wait; the failure's own keys (a wait's last status and polls, a
    timeout, an HTTP status) are kept."""
    own = dict(exc.result)
    last = own.pop("deployment", status)
    result = _result(last, polls + own.pop("polls", 0), waited, started, clock)
    result.update(extra)
    result.update(own)
    exc.result = result


def _warnings(params: Params) -> List[str]:
    if token_in_clear(params["manager_url"]):
        return ["manager_url is plain http://: the deploy token crosses the network unencrypted; use https://"]
    return []


def run_notify(params: Params, check_mode: bool = False, client_factory: Callable[[Params], ManagerClient] = client_from_params,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Result:
    """Notify the manager (once) and, with ``wait``, poll until the deployment has finished; a deployment waited
    for that did not complete raises :class:`DeploymentFailed`."""
    validate_connection(params)
    body = build_notify_body(params)
    base = normalize_base_url(params["manager_url"])
    secrets = (params.get("token"), (params.get("token") or "").strip())
    request = mask({"method": "POST", "url": base + NOTIFY_PATH, "body": body}, secrets)
    warns = _warnings(params)
    if check_mode:
        result = _result(None)
        result.update(changed=True, request=request, warnings=warns,
                      summary="check mode: would POST %s to %s" % (", ".join(sorted(body)), request["url"]))
        return result
    started = clock()
    status, polls, waited = None, 0, False
    with client_factory(params) as client:
        try:
            status = client.notify(body)
            if params.get("wait"):
                waited = True
                status, polls = wait_for_deployment(client.status, status["deployment_id"], params["wait_timeout"],
                                                    params["poll_interval"], first=status, clock=clock, sleep=sleep)
        except ManagerError as exc:
            _give_result_keys(exc, status, 0, waited, started, clock, changed=status is not None, request=request,
                              warnings=warns)
            raise
    return _conclude(status, polls, waited, started, clock, changed=True, request=request, warnings=warns)


def run_status(params: Params, check_mode: bool = False, client_factory: Callable[[Params], ManagerClient] = client_from_params,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Result:
    """Read a deployment's (or the current deployment's) status; with ``wait``, poll until it has finished, and a
    deployment that did not complete raises :class:`DeploymentFailed`."""
    validate_connection(params)
    started = clock()
    deployment_id = params.get("deployment_id") or None
    warns = _warnings(params)
    status, polls, waited = None, 0, False
    with client_factory(params) as client:
        try:
            status = client.status(deployment_id)
            polls = 1
            if status is None:
                if deployment_id:
                    raise ManagerError("the manager knows no deployment %s (the status answer is empty)"
                                       % deployment_id, deployment=None, found=False)
                result = _result(None, polls, False, started, clock)
                result.update(changed=False, found=False, warnings=warns, summary="no current deployment")
                return result
            if params.get("wait") and not check_mode:
                waited = True
                status, more = wait_for_deployment(client.status, status["deployment_id"], params["wait_timeout"],
                                                   params["poll_interval"], first=status, clock=clock, sleep=sleep)
                polls += more
        except ManagerError as exc:
            _give_result_keys(exc, status, polls, waited, started, clock, changed=False, found=status is not None,
                              warnings=warns)
            raise
    return _conclude(status, polls, waited, started, clock, changed=False, found=True, warnings=warns)


def run_manager_module(module_class: Callable[..., Any], argument_spec: ArgumentSpec, runner: Callable[..., Result],
                       **module_kwargs: Any) -> None:
    """The ``main()`` of the manager modules: connection options + ``argument_spec``, one engine call."""
    from ansible.module_utils.basic import env_fallback, missing_required_lib  # type: ignore[import-untyped]  # ansible-core has no py.typed

    spec = dict(CONNECTION_SPEC)
    spec["token"] = dict(spec["token"], fallback=(env_fallback, [TOKEN_ENV]))
    spec.update(argument_spec)
    module = module_class(argument_spec=spec, supports_check_mode=True, **module_kwargs)
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"), exception=str(REQUESTS_IMPORT_ERROR))
    secrets = (module.params.get("token"), (module.params.get("token") or "").strip())
    try:
        result = runner(module.params, check_mode=module.check_mode)
    except ValueError as exc:
        module.fail_json(msg=mask(str(exc), secrets))
    except ManagerError as exc:
        # a deployment waited for that did not complete, a timeout, a refusal: the keys of a success, and msg
        failure = dict(exc.result)
        for text in failure.pop("warnings", None) or ():
            module.warn(text)
        module.fail_json(msg=mask(exc.msg, secrets), **mask(failure, secrets))
    for text in result.pop("warnings", None) or ():
        module.warn(text)
    module.exit_json(**mask(result, secrets))
