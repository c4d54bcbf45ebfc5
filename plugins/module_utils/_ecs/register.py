# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Register a task-definition revision only when something differs (the ecs_taskdef engine)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import ArgumentSpec
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import ClientFactory
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import EcsClient
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import EcsError
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import Params
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import Result
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import TaskDefinition
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import normalise
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import report as ecs_report
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import taskdef as td_lib
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs.aws import error_message, secrets_of
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import utcnow_iso

TASKDEF_ARGUMENT_SPEC: ArgumentSpec = dict(
    base=dict(type="str", default="template", choices=["template", "service"]),
    cluster=dict(type="str"),
    service=dict(type="str"),
    family=dict(type="str"),
    template=dict(type="path"),
    task_definition=dict(type="dict"),
    image=dict(type="str"),
    container_name=dict(type="str", default=td_lib.DEFAULT_CONTAINER_NAME),
    agent_env=dict(
        type="dict",
        options=dict(
            AGENT_APP_ID=dict(type="str"),
            PACKAGE_URL=dict(type="str"),
            DEPLOYMENT_ID=dict(type="str"),
            PACKAGE_SHA256=dict(type="str"),
            BASE_PATH=dict(type="str"),
            REST_PORT=dict(type="int", default=8080),
            A2A_PORT=dict(type="int", default=50051),
            UI_PORT=dict(type="int", default=3000),
            MULTIPLEXED=dict(type="bool", default=True),
            MAX_PACKAGE_SIZE_MB=dict(type="int", default=100),
            BOOT_BUDGET_MS=dict(type="int", default=5000),
            BOOT_HARD_LIMIT_MULTIPLIER=dict(type="float", default=2.0),
            GRACEFUL_SHUTDOWN_TIMEOUT_SEC=dict(type="int", default=30),
        ),
    ),
    force_create=dict(type="bool", default=False),
)


def latest_active(client: EcsClient, family: str) -> Optional[TaskDefinition]:
    """The latest ACTIVE revision of ``family`` (describe by family), or None."""
    try:
        return client.describe_task_definition(taskDefinition=family)["taskDefinition"]
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
        if code in ("ClientException", "InvalidParameterException", "ResourceNotFoundException"):
            return None
        raise EcsError("describe_task_definition failed: %s" % error_message(exc))


def service_task_definition(client: EcsClient, cluster: Optional[str], service: Optional[str]) -> TaskDefinition:
    """The task definition the service runs now (describe_services -> describe_task_definition)."""
    try:
        resp = client.describe_services(cluster=cluster, services=[service])
    except Exception as exc:
        raise EcsError("describe_services failed: %s" % error_message(exc))
    services = [svc for svc in resp.get("services") or [] if svc.get("status") != "INACTIVE"]
    if not services or not services[0].get("taskDefinition"):
        raise EcsError("service %s not found in cluster %s (base=service needs an existing service)" % (service, cluster))
    try:
        return client.describe_task_definition(taskDefinition=services[0]["taskDefinition"])["taskDefinition"]
    except Exception as exc:
        raise EcsError("describe_task_definition failed: %s" % error_message(exc))


def _from_service(client_factory: ClientFactory, params: Params, container_name: str
                  ) -> Tuple[EcsClient, TaskDefinition, Dict[str, Any], Optional[TaskDefinition], List[str]]:
    """base=service: the service's current task definition with the agent container's image swapped.

    Compared with that revision first, then with the family's latest ACTIVE one; either, when
    equal, is reused. Returns ``(client, desired, env, current, differences)``.
    """
    for name in ("template", "task_definition", "agent_env"):
        if params.get(name) is not None:
            raise EcsError("%s cannot be used with base=service: the service's task definition is taken as it is, "
                           "only the image of container %s changes" % (name, container_name))
    if not str(params.get("image") or "").strip():
        raise EcsError("image is required with base=service")
    client = client_factory()
    base = service_task_definition(client, params.get("cluster"), params.get("service"))
    desired = td_lib.swap_image(base, params["image"], container_name, family=params.get("family"))
    container = td_lib.agent_container(desired, container_name) or {}
    env = dict((e.get("name"), e.get("value")) for e in container.get("environment") or [])
    current = base if base.get("family") == desired.get("family") else None
    differences = normalise.compare_task_definitions(desired, current)
    if differences:
        latest = latest_active(client, desired["family"])
        if latest is not None and not normalise.compare_task_definitions(desired, latest):
            current, differences = latest, []
        elif current is None:
            current = latest
    return client, desired, env, current, differences


def ensure_task_definition(client_factory: ClientFactory, params: Params, check_mode: bool = False) -> Result:
    """Render + validate (no API call before this passes), compare, register if needed.

    With ``base=service`` the definition is the service's current one with a new image
    (see ``_from_service``). Returns the module result (changed, revision, arn, family,
    task_definition, differences, events, diff, started_at).
    """
    started_at = utcnow_iso()
    container_name = params.get("container_name") or td_lib.DEFAULT_CONTAINER_NAME
    if params.get("base") == "service":
        client, desired, env, current, differences = _from_service(client_factory, params, container_name)
    else:
        template = params.get("task_definition")
        if params.get("template"):
            template = td_lib.load_template(params["template"])
        if template is None:
            raise EcsError("one of template or task_definition is required")
        if params.get("agent_env") is None:
            raise EcsError("agent_env is required (AGENT_APP_ID, PACKAGE_URL...) with base=template")
        desired, env = td_lib.render_task_definition(
            template, family=params.get("family"), image=params.get("image"), agent_env=params.get("agent_env"),
            container_name=container_name)
        client = client_factory()
        current = latest_active(client, desired["family"])
        differences = normalise.compare_task_definitions(desired, current)
    family = desired["family"]
    changed = bool(differences) or bool(params.get("force_create"))
    if params.get("force_create") and not differences:
        differences = ["(force_create)"]
    result: Result = {
        "changed": changed,
        "family": family,
        "differences": differences if changed else [],
        "started_at": started_at,
        "diff": {"before": td_lib.diff_view(current), "after": td_lib.diff_view(desired)},
    }
    if changed and check_mode:
        registered = None
        result.update(revision=None, arn=None, task_definition=td_lib.diff_view(desired))
        name = "taskdef_register_planned"
    elif changed:
        try:
            registered = client.register_task_definition(**td_lib.register_kwargs(desired))["taskDefinition"]
        except Exception as exc:
            raise EcsError("register_task_definition failed: %s" % error_message(exc), family=family,
                           differences=differences)
        name = "taskdef_registered"
    else:
        registered = current
        name = "taskdef_unchanged"
    if registered is not None:
        result.update(revision=registered.get("revision"), arn=registered.get("taskDefinitionArn"),
                      task_definition=td_lib.diff_view(registered))
    container = td_lib.agent_container(desired, params.get("container_name") or td_lib.DEFAULT_CONTAINER_NAME) or {}
    result["image"] = container.get("image")
    result["events"] = [ecs_report.event(name, family=family, revision=result.get("revision"),
                                         image=result["image"], differences=result["differences"] or None,
                                         package_url=td_lib.redact_value(env.get("PACKAGE_URL")))]
    return result


def run(client_factory: ClientFactory, params: Params, check_mode: bool = False) -> Result:
    """ecs_taskdef's one engine call: ensure + report/audit. Raises EcsError on failure."""
    deployment_id = params.get("deployment_id")
    try:
        result = ensure_task_definition(client_factory, params, check_mode)
    except EcsError as exc:
        failed = [ecs_report.event("taskdef_failed", family=params.get("family"), message=exc.msg)]
        rep = ecs_report.build_report(deployment_id, None, {"family": params.get("family"), "revision": None,
                                                            "image": params.get("image")},
                                      None, None, None, failed, utcnow_iso(), "failed",
                                      extra=params.get("report_extra"), check_mode=check_mode)
        if not check_mode:  # check mode changes nothing, files included
            ecs_report.emit(params, rep, failed, secrets_of(params))
        raise
    rep = ecs_report.build_report(
        deployment_id, None, {"family": result["family"], "revision": result.get("revision"), "image": result["image"]},
        None, result.get("arn"), None, result["events"], result["started_at"],
        # in a full rollout the service step follows and rewrites the report
        "started" if (params.get("report_extra") or {}).get("mode") in ("full", "update_only") else "succeeded",
        extra=params.get("report_extra"), check_mode=check_mode)
    if not check_mode:  # check mode changes nothing, files included
        result.update(ecs_report.emit(params, rep, result["events"], secrets_of(params)))
    return result
