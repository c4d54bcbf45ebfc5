# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Roll an ECS service onto a task-definition revision, prove it, roll back.

``evaluate_deployment`` is the pure readiness function (unit-tested on
describe_services shapes); ``rollout`` is the engine the module calls, with the
clock, sleep and HTTP GET injectable so tests drive it with botocore's Stubber.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import ArgumentSpec
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import ClientFactory
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import EcsClient
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import EcsError
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import Event
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import Params
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import Result
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import TaskDefinition
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import waiter
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.errors import TransportError
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs.taskdef import (
    DEFAULT_CONTAINER_NAME,
    agent_container,
)

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs.report import Target

# a GET of a health URL: (url, timeout) -> the HTTP status, or the error's text
HttpGet = Callable[[str, float], Union[int, str]]
# a describe_services service or one of its deployments (the API's JSON)
Service = Dict[str, Any]

COMPLETED = "COMPLETED"
IN_PROGRESS = waiter.IN_PROGRESS
FAILED = "FAILED"
TIMEOUT = waiter.TIMEOUT

_TD_ARN = re.compile(r"^arn:[^:]+:ecs:[^:]*:[^:]*:task-definition/(?P<ref>.+)$")

SERVICE_ARGUMENT_SPEC: ArgumentSpec = dict(
    cluster=dict(type="str", required=True),
    service=dict(type="str", required=True),
    task_definition=dict(type="str", required=True),
    deployment_configuration=dict(
        type="dict",
        options=dict(
            minimum_healthy_percent=dict(type="int"),
            maximum_percent=dict(type="int"),
            deployment_circuit_breaker=dict(
                type="dict",
                options=dict(enable=dict(type="bool", required=True), rollback=dict(type="bool", required=True)),
            ),
        ),
    ),
    force_new_deployment=dict(type="bool", default=False),
    wait=dict(type="bool", default=True),
    timeout=dict(type="int", default=900),
    rollback_timeout=dict(type="int"),
    delay=dict(type="int", default=15),
    max_failed_tasks=dict(type="int", default=0),
    rollback=dict(type="bool", default=True),
    health_urls=dict(type="list", elements="str"),
    health_timeout=dict(type="int", default=5),
    container_name=dict(type="str", default=DEFAULT_CONTAINER_NAME),
)


# --------------------------------------------------------------------- pure
def td_ref(value: object) -> Optional[str]:
    """``family:revision`` of a task-definition ARN or ``family:revision`` string."""
    if not value:
        return None
    match = _TD_ARN.match(str(value))
    return match.group("ref") if match else str(value)


def same_task_definition(a: object, b: object) -> bool:
    return a is not None and b is not None and td_ref(a) == td_ref(b)


def deployment_configuration_request(options: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The API's deploymentConfiguration from the module's snake_case options."""
    out: Dict[str, Any] = {}
    if not options:
        return out
    if options.get("minimum_healthy_percent") is not None:
        out["minimumHealthyPercent"] = options["minimum_healthy_percent"]
    if options.get("maximum_percent") is not None:
        out["maximumPercent"] = options["maximum_percent"]
    breaker = options.get("deployment_circuit_breaker")
    if breaker:
        out["deploymentCircuitBreaker"] = {"enable": bool(breaker["enable"]), "rollback": bool(breaker["rollback"])}
    return out


def deployment_configuration_changes(requested: Mapping[str, Any], current: Optional[Mapping[str, Any]]) -> List[str]:
    """Keys of the requested deploymentConfiguration that differ from the service's (pure)."""
    current = current or {}
    changes = []
    for key, value in sorted(requested.items()):
        have = current.get(key)
        if isinstance(value, dict):
            have = have or {}
            if any(have.get(k) != v for k, v in value.items()):
                changes.append("deploymentConfiguration.%s" % key)
        elif have != value:
            changes.append("deploymentConfiguration.%s" % key)
    return changes


def primary_deployment(service: Optional[Mapping[str, Any]]) -> Optional[Service]:
    deployment: Service
    for deployment in (service or {}).get("deployments") or []:
        if deployment.get("status") == "PRIMARY":
            return deployment
    return None


def _counts(deployment: Mapping[str, Any]) -> str:
    return "running %s/%s, pending %s, failed %s" % (
        deployment.get("runningCount", 0), deployment.get("desiredCount", 0),
        deployment.get("pendingCount", 0), deployment.get("failedTasks", 0))


def evaluate_deployment(service: Optional[Mapping[str, Any]], target: Optional[str], max_failed_tasks: int = 0) -> Tuple[str, str]:
    """Has the deployment of ``target`` succeeded?  Pure: ``(state, message)``.

    COMPLETED: the PRIMARY deployment runs ``target``, its ``rolloutState`` is
    COMPLETED and running count equals desired count (services without a
    rolloutState, i.e. not the ECS deployment controller, must instead be down
    to that single deployment). FAILED: rolloutState FAILED (the circuit
    breaker tripped), more failed tasks than ``max_failed_tasks``, or the
    service's primary deployment is no longer ``target`` (rolled back or
    replaced). Otherwise IN_PROGRESS.
    """
    if not service:
        return FAILED, "service not found"
    if service.get("status") not in (None, "ACTIVE"):
        return FAILED, "service status is %s" % service.get("status")
    primary = primary_deployment(service)
    if primary is None:
        return IN_PROGRESS, "no PRIMARY deployment yet"
    if not same_task_definition(primary.get("taskDefinition"), target):
        for deployment in service.get("deployments") or []:
            if same_task_definition(deployment.get("taskDefinition"), target) and deployment.get("rolloutState") == FAILED:
                return FAILED, "deployment %s of %s FAILED: %s; primary is now %s" % (
                    deployment.get("id"), td_ref(target), deployment.get("rolloutStateReason") or "circuit breaker",
                    td_ref(primary.get("taskDefinition")))
        return FAILED, "the service's PRIMARY deployment runs %s, not %s (rolled back or replaced)" % (
            td_ref(primary.get("taskDefinition")), td_ref(target))
    state = primary.get("rolloutState")
    reason = primary.get("rolloutStateReason") or ""
    failed = int(primary.get("failedTasks") or 0)
    if state == FAILED:
        return FAILED, "deployment %s FAILED: %s (%s)" % (primary.get("id"), reason or "circuit breaker", _counts(primary))
    if failed > max_failed_tasks:
        return FAILED, "deployment %s: %d task(s) failed to start, more than max_failed_tasks=%d (%s)" % (
            primary.get("id"), failed, max_failed_tasks, _counts(primary))
    running = int(primary.get("runningCount") or 0)
    desired = int(primary.get("desiredCount") or 0)
    if state is None:
        others = [d for d in service.get("deployments") or [] if d is not primary]
        if not others and running == desired:
            return COMPLETED, "steady: %s (no rolloutState: not the ECS deployment controller)" % _counts(primary)
        return IN_PROGRESS, "%d older deployment(s) still active; %s" % (len(others), _counts(primary))
    if state == COMPLETED and running == desired:
        return COMPLETED, "deployment %s COMPLETED: %s" % (primary.get("id"), _counts(primary))
    return IN_PROGRESS, "deployment %s %s: %s%s" % (
        primary.get("id"), state, _counts(primary), ("; " + reason) if reason else "")


def expand_health_urls(urls: Optional[Iterable[str]], addresses: Sequence[str]) -> List[str]:
    """URLs to probe: those with ``{address}`` once per task address, others as given."""
    out: List[str] = []
    for url in urls or []:
        if "{address}" in url:
            out.extend(url.replace("{address}", address) for address in addresses)
        else:
            out.append(url)
    return out


def evaluate_health(results: Sequence[Mapping[str, Any]]) -> Tuple[str, str]:
    """``results``: list of {url, status}. All 200 -> COMPLETED, else IN_PROGRESS."""
    if not results:
        return FAILED, "no health URL to check (no task address found)"
    bad = [r for r in results if r.get("status") != 200]
    if not bad:
        return COMPLETED, "%d health URL(s) returned 200" % len(results)
    return IN_PROGRESS, "; ".join("%s -> %s" % (r["url"], r.get("status")) for r in bad)


# --------------------------------------------------------------------- I/O
def default_http_get(validate_certs: bool = True) -> HttpGet:
    """A GET returning the status code (or the error's text), through the collection's one HTTP client.

    Redirects are followed (up to 5); the client is made on the first call (its
    timeouts are the health check's) and kept for the rollout's later polls.
    """
    clients: Dict[float, AgentClient] = {}

    def get(url: str, timeout: float) -> Union[int, str]:
        client = clients.get(timeout)
        if client is None:
            client = clients[timeout] = AgentClient(connect_timeout=timeout, read_timeout=timeout,
                                                    validate_certs=validate_certs, max_workers=1, connect_retries=0)
        try:
            status: int = client.request("GET", url, redirect=True).status
            return status
        except TransportError as exc:
            return "%s: %s" % (type(exc).__name__, exc)

    return get


class ServiceRollout:
    """One rollout of one service. ``run()`` returns the module's result dict
    or raises EcsError carrying it."""

    def __init__(self, client: EcsClient, params: Params, check_mode: bool = False, clock: Optional[Callable[[], float]] = None,
                 sleep: Optional[Callable[[float], None]] = None, http_get: Optional[HttpGet] = None,
                 now_iso: Optional[Callable[[], str]] = None) -> None:
        self.client = client
        self.params = params
        self.check_mode = check_mode
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.http_get = http_get or default_http_get(params.get("validate_certs", True))
        self.events: List[Event] = []
        self.deadline: Optional[float] = None
        self.timeout_label: Optional[float] = params.get("timeout")
        self.result: Result = {
            "changed": False, "previous_task_definition": None, "task_definition": None,
            "rollout_state": None, "result": None, "rolled_back": False, "differences": [],
            "health": [], "service_events": [], "deployment": None,
        }

    # ---- AWS calls (each wrapped so a botocore error becomes EcsError)
    def _call(self, name: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, name)(**kwargs)
        except Exception as exc:
            from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs.aws import error_message
            raise EcsError("%s failed: %s" % (name, error_message(exc)), **self.result)

    def describe_service(self) -> Service:
        resp = self._call("describe_services", cluster=self.params["cluster"], services=[self.params["service"]])
        services: List[Service] = [s for s in resp.get("services") or [] if s.get("status") != "INACTIVE"]
        if not services:
            failures = "; ".join("%s: %s" % (f.get("arn"), f.get("reason")) for f in resp.get("failures") or [])
            raise EcsError("service %s not found in cluster %s%s" % (
                self.params["service"], self.params["cluster"], (" (" + failures + ")") if failures else ""), **self.result)
        return services[0]

    def describe_task_definition(self, ref: str) -> TaskDefinition:
        described: TaskDefinition = self._call("describe_task_definition", taskDefinition=ref)["taskDefinition"]
        return described

    def task_addresses(self, target_arn: str) -> List[str]:
        addresses: List[str] = []
        arns: List[str] = []
        paginator = self.client.get_paginator("list_tasks")
        try:
            for page in paginator.paginate(cluster=self.params["cluster"], serviceName=self.params["service"],
                                           desiredStatus="RUNNING"):
                arns.extend(page.get("taskArns") or [])
        except Exception as exc:
            raise EcsError("list_tasks failed: %s" % exc, **self.result)
        for start in range(0, len(arns), 100):
            resp = self._call("describe_tasks", cluster=self.params["cluster"], tasks=arns[start:start + 100])
            for task in resp.get("tasks") or []:
                if not same_task_definition(task.get("taskDefinitionArn"), target_arn):
                    continue
                for container in task.get("containers") or []:
                    for nic in container.get("networkInterfaces") or []:
                        if nic.get("privateIpv4Address"):
                            addresses.append(nic["privateIpv4Address"])
        return sorted(set(addresses))

    # ---- steps
    def _event(self, name: str, **fields: Any) -> None:
        from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs.report import event
        self.events.append(event(name, **fields))

    def _remaining(self) -> float:
        """Seconds left until the overall deadline (wait + health check), at least 0."""
        if self.deadline is None:
            raise RuntimeError("ServiceRollout: no deadline before run() has set one")
        return max(self.deadline - self.clock(), 0.0)

    def _wait(self, target_arn: str, timeout: float) -> Tuple[str, str, Optional[str]]:
        """Poll the service until the deployment of ``target_arn`` leaves IN_PROGRESS or ``timeout`` passes:
        ``(state, message, the primary deployment's rolloutState)``."""
        last: Dict[str, Optional[str]] = {"state": None, "message": None}

        def on_poll(state: str, message: str, service: Service) -> None:
            if (state, message) != (last["state"], last["message"]):
                self._event("deployment_poll", state=state, message=message, task_definition=td_ref(target_arn))
                last.update(state=state, message=message)

        state, message, service = waiter.poll(
            self.describe_service,
            lambda svc: evaluate_deployment(svc, target_arn, self.params.get("max_failed_tasks") or 0),
            timeout, self.params["delay"], clock=self.clock, sleep=self.sleep, on_poll=on_poll)
        primary = primary_deployment(service) or {}
        self.result["deployment"] = primary
        self.result["service_events"] = [e.get("message") for e in (service.get("events") or [])[:5]]
        if state == TIMEOUT:
            message = "timed out after %ss waiting for %s; the service reported: %s%s" % (
                self.timeout_label, td_ref(target_arn), message,
                ("; last events: " + " | ".join(self.result["service_events"])) if self.result["service_events"] else "")
        rollout_state: Optional[str] = primary.get("rolloutState")
        return state, message, rollout_state

    def _health(self, target_arn: str) -> Tuple[str, str]:
        """Probe the health URLs until all answer 200 or the overall deadline passes: ``(state, message)``."""
        urls = self.params.get("health_urls") or []
        if not urls:
            return COMPLETED, "no health check configured"
        addresses = self.task_addresses(target_arn) if any("{address}" in u for u in urls) else []
        targets = expand_health_urls(urls, addresses)
        timeout = self.params.get("health_timeout") or 5

        def fetch() -> List[Dict[str, Any]]:
            return [{"url": url, "status": self.http_get(url, timeout)} for url in targets]

        state, message, results = waiter.poll(fetch, evaluate_health, self._remaining(), self.params["delay"],
                                              clock=self.clock, sleep=self.sleep)
        self.result["health"] = results
        self._event("health_check", state=state, message=message)
        if state == TIMEOUT:
            return FAILED, "health check timed out: %s" % message
        return state, message

    def _update(self, task_definition_arn: str, config: Optional[Mapping[str, Any]] = None,
                force: Optional[bool] = False) -> Service:
        kwargs: Dict[str, Any] = dict(cluster=self.params["cluster"], service=self.params["service"], taskDefinition=task_definition_arn)
        if config:
            kwargs["deploymentConfiguration"] = config
        if force:
            kwargs["forceNewDeployment"] = True
        updated: Service = self._call("update_service", **kwargs)["service"]
        return updated

    def run(self) -> Result:
        params = self.params
        service = self.describe_service()
        target = self.describe_task_definition(params["task_definition"])
        target_arn = target["taskDefinitionArn"]
        previous_ref = service.get("taskDefinition")
        # moto echoes family:revision unexpanded: resolve to an ARN through describe.
        previous_arn = self.describe_task_definition(previous_ref)["taskDefinitionArn"] if previous_ref else None
        container = agent_container(target, params.get("container_name") or DEFAULT_CONTAINER_NAME) or {}
        self.target: Target = {"family": target.get("family"), "revision": target.get("revision"), "image": container.get("image")}
        self.result.update(previous_task_definition=previous_arn, task_definition=target_arn)

        config = deployment_configuration_request(params.get("deployment_configuration"))
        differences: List[str] = []
        if not same_task_definition(previous_arn, target_arn):
            differences.append("taskDefinition")
        differences.extend(deployment_configuration_changes(config, service.get("deploymentConfiguration")))
        if params.get("force_new_deployment"):
            differences.append("forceNewDeployment")
        changed = bool(differences)
        self.result.update(changed=changed, differences=differences,
                           rollout_state=(primary_deployment(service) or {}).get("rolloutState"))

        if self.check_mode:
            self._event("service_update_planned" if changed else "service_unchanged",
                        previous=td_ref(previous_arn), task_definition=td_ref(target_arn), differences=differences)
            self.result["result"] = "succeeded"
            return self.result

        if changed:
            updated = self._update(target_arn, config, params.get("force_new_deployment"))
            self.result["rollout_state"] = (primary_deployment(updated) or {}).get("rolloutState")
            self._event("service_updated", previous=td_ref(previous_arn), task_definition=td_ref(target_arn),
                        differences=differences)
        else:
            self._event("service_unchanged", task_definition=td_ref(target_arn))

        if not params.get("wait"):
            self.result["result"] = "started" if changed else "succeeded"
            return self.result

        # One deadline for the deployment and the health check together.
        self.deadline = self.clock() + max(float(params["timeout"]), 0.0)
        self.timeout_label = params["timeout"]
        state, message, rollout_state = self._wait(target_arn, params["timeout"])
        self.result["rollout_state"] = rollout_state if state != TIMEOUT else TIMEOUT
        if state == COMPLETED:
            state, message = self._health(target_arn)
        self.result["message"] = message
        if state == COMPLETED:
            self._event("deployment_completed", task_definition=td_ref(target_arn), message=message)
            self.result["result"] = "succeeded"
            return self.result

        self._event("deployment_failed", task_definition=td_ref(target_arn), state=state, message=message)
        failure = message
        if params.get("rollback") and previous_arn and not same_task_definition(previous_arn, target_arn):
            self._event("rollback_started", task_definition=td_ref(previous_arn))
            self._update(previous_arn)
            self.result["changed"] = True
            rollback_timeout = params.get("rollback_timeout")
            if rollback_timeout is None:
                rollback_timeout = params["timeout"]
            self.timeout_label = rollback_timeout
            rb_state, rb_message, dummy = self._wait(previous_arn, rollback_timeout)
            if rb_state == COMPLETED:
                self._event("rollback_completed", task_definition=td_ref(previous_arn), message=rb_message)
                self.result.update(result="rolled_back", rolled_back=True)
                raise EcsError("deployment of %s failed (%s); rolled back to %s" % (
                    td_ref(target_arn), failure, td_ref(previous_arn)), **self.result)
            self._event("rollback_failed", task_definition=td_ref(previous_arn), state=rb_state, message=rb_message)
            self.result["result"] = "failed"
            raise EcsError("deployment of %s failed (%s) and the rollback to %s did not complete (%s)" % (
                td_ref(target_arn), failure, td_ref(previous_arn), rb_message), **self.result)
        self.result["result"] = "failed"
        raise EcsError("deployment of %s failed: %s" % (td_ref(target_arn), failure), **self.result)


def run(client_factory: ClientFactory, params: Params, check_mode: bool = False, clock: Optional[Callable[[], float]] = None,
        sleep: Optional[Callable[[float], None]] = None, http_get: Optional[HttpGet] = None) -> Result:
    """ecs_service_rollout's one engine call: roll out, then write report/audit.

    Returns the result dict; raises EcsError (carrying the same result) when the
    deployment failed, timed out or was rolled back.
    """
    from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import report as ecs_report
    from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs.aws import secrets_of
    from ansible_collections.agentfleet.rollout.plugins.module_utils._report import utcnow_iso

    started_at = utcnow_iso()
    error = None
    roll = None
    try:
        roll = ServiceRollout(client_factory(), params, check_mode=check_mode, clock=clock, sleep=sleep,
                              http_get=http_get)
        result = roll.run()
    except EcsError as exc:
        error = exc
        result = dict(exc.result)
        result["result"] = result.get("result") or "failed"
        if roll is not None and not result.get("message"):
            roll._event("rollout_failed", message=exc.msg)
    events = list(roll.events) if roll is not None else [ecs_report.event("rollout_failed", message=error.msg if error is not None else None)]
    result["events"] = events
    target: Target = getattr(roll, "target", None) or ecs_report.Target(family=None, revision=None, image=None)
    rep = ecs_report.build_report(
        params.get("deployment_id"), None, target, result.get("previous_task_definition"),
        result.get("task_definition"), result.get("rollout_state"), events, started_at, result["result"],
        extra=params.get("report_extra"), check_mode=check_mode)
    if (params.get("report_path") or params.get("audit_path")) and not check_mode:  # check mode writes nothing
        result.update(ecs_report.emit(params, rep, events, secrets_of(params)))
    if error is not None:
        error.result = result
        raise error
    return result
