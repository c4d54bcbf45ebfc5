# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Task definitions as ECS stores them: normalise, compare (pure, unit-tested).

The reason community.aws ``ecs_taskdefinition`` churned revisions
(ansible/ansible#22547, community.aws#45) is that the desired definition and
the one ECS describes must be compared only *after* both have the API's
defaults filled in and read-only fields removed: this module does that and
nothing else. Rendering a definition (template, image, agent environment) and
redacting one for display are ``taskdef``'s.
"""

from __future__ import annotations

import copy
import json
import re
from typing import AbstractSet, Any, Dict, Iterable, List, Optional, TypeVar, Union

from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import TaskDefinition

_T = TypeVar("_T")


# Fields ECS adds to a described task definition that cannot be registered.
READ_ONLY_KEYS = frozenset((
    "taskDefinitionArn", "revision", "status", "requiresAttributes", "compatibilities",
    "registeredAt", "registeredBy", "deregisteredAt",
))
# Parameters register_task_definition accepts.
REGISTER_KEYS = (
    "family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions", "volumes",
    "placementConstraints", "requiresCompatibilities", "cpu", "memory", "tags", "pidMode", "ipcMode",
    "proxyConfiguration", "inferenceAccelerators", "ephemeralStorage", "runtimePlatform",
    "enableFaultInjection",
)
# Not part of the comparison: tags are not returned by describe without include=TAGS
# and changing them does not need a new revision.
NOT_COMPARED = frozenset(("tags",))
# Environment variables left out of the comparison: a new deployment id alone (the playbook's
# default changes every second) must not register a revision; it is written when one is registered.
NOT_COMPARED_ENV = frozenset(("DEPLOYMENT_ID",))

# API defaults that ECS reports as a falsy value when they were not set: absent == default.
_FALSY_DEFAULTS = frozenset(("enableFaultInjection",))
_CONTAINER_FALSY_DEFAULTS = frozenset(("privileged", "readonlyRootFilesystem", "interactive", "pseudoTerminal",
                                       "disableNetworking"))
_CPU_UNITS = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*vcpu\s*$", re.I)
_MEM_UNITS = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*gb\s*$", re.I)
_CONTAINER_INTS = ("cpu", "memory", "memoryReservation", "stopTimeout", "startTimeout")


# --------------------------------------------------------------------------- env
def env_value(value: object) -> str:
    """ECS environment values are strings: booleans lower-case, floats as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ------------------------------------------------------------------- normalise
def prune(obj: Any) -> Any:
    """Drop None, "" (ECS treats an empty string as unset), empty lists and empty dicts,
    recursively; keep False and 0."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            value = prune(value)
            if value is None or value == "" or value == [] or value == {}:
                continue
            out[key] = value
        return out
    if isinstance(obj, (list, tuple)):
        return [prune(v) for v in obj if v is not None]
    return obj


def _as_int(value: _T) -> Union[_T, int]:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


def task_size(value: object, kind: str) -> Optional[str]:
    """Task-level cpu/memory as the API stores them: strings of CPU units / MiB.

    ``"1 vCPU"`` -> ``"1024"``, ``"2 GB"`` -> ``"2048"``, ``512`` -> ``"512"``.
    """
    if value is None:
        return None
    text = str(value).strip()
    match = (_CPU_UNITS if kind == "cpu" else _MEM_UNITS).match(text)
    if match:
        return str(int(round(float(match.group(1)) * 1024)))
    return text


def _sorted_by(items: Optional[Iterable[Dict[str, Any]]], *keys: str) -> List[Dict[str, Any]]:
    return sorted(items or [], key=lambda item: tuple(json.dumps(item.get(k), sort_keys=True, default=str) for k in keys))


def _normalise_container(container: Dict[str, Any], network_mode: str) -> Dict[str, Any]:
    c = copy.deepcopy(container)
    for key in _CONTAINER_FALSY_DEFAULTS:
        if key in c and not c[key]:
            c.pop(key)
    c.setdefault("essential", True)
    c.setdefault("cpu", 0)
    for key in _CONTAINER_INTS:
        if key in c:
            c[key] = _as_int(c[key])
    mappings: List[Dict[str, Any]] = []
    for pm in c.get("portMappings") or []:
        pm = dict(pm)
        pm.setdefault("protocol", "tcp")
        pm["protocol"] = str(pm["protocol"]).lower()
        if "containerPort" in pm:
            pm["containerPort"] = _as_int(pm["containerPort"])
            if network_mode in ("awsvpc", "host"):
                pm.setdefault("hostPort", pm["containerPort"])
            elif network_mode == "bridge":
                pm.setdefault("hostPort", 0)
        if "hostPort" in pm:
            pm["hostPort"] = _as_int(pm["hostPort"])
        mappings.append(pm)
    c["portMappings"] = _sorted_by(mappings, "containerPort", "containerPortRange", "protocol", "hostPort", "name")
    env: Dict[Any, Optional[str]] = {}
    for item in c.get("environment") or []:
        env[item.get("name")] = env_value(item.get("value")) if item.get("value") is not None else None
    c["environment"] = [dict(name=n, value=env[n]) for n in sorted(env, key=str)]
    c["secrets"] = _sorted_by(c.get("secrets"), "name")
    c["environmentFiles"] = _sorted_by(c.get("environmentFiles"), "type", "value")
    c["mountPoints"] = _sorted_by([dict({"readOnly": False}, **m) for m in c.get("mountPoints") or []],
                                  "sourceVolume", "containerPath")
    c["volumesFrom"] = _sorted_by([dict({"readOnly": False}, **v) for v in c.get("volumesFrom") or []],
                                  "sourceContainer")
    c["ulimits"] = _sorted_by(c.get("ulimits"), "name")
    c["dependsOn"] = _sorted_by(c.get("dependsOn"), "containerName")
    c["systemControls"] = _sorted_by(c.get("systemControls"), "namespace")
    c["resourceRequirements"] = _sorted_by(c.get("resourceRequirements"), "type")
    if c.get("dockerLabels"):
        c["dockerLabels"] = dict((k, str(v)) for k, v in c["dockerLabels"].items())
    if c.get("logConfiguration"):
        log = dict(c["logConfiguration"])
        log["secretOptions"] = _sorted_by(log.get("secretOptions"), "name")
        if log.get("options"):
            log["options"] = dict((k, str(v)) for k, v in log["options"].items())
        c["logConfiguration"] = log
    if c.get("healthCheck"):
        hc = dict(c["healthCheck"])
        for key, default in (("interval", 30), ("timeout", 5), ("retries", 3), ("startPeriod", 0)):
            hc[key] = _as_int(hc.get(key, default))
        c["healthCheck"] = hc
    return c


def normalise_task_definition(td: Optional[TaskDefinition]) -> TaskDefinition:
    """A canonical form of a task definition for comparison (pure).

    Read-only fields and tags removed, API defaults filled in (essential, port
    protocol and host port, container cpu 0, network mode, health check timers,
    read-only flags), task cpu/memory as strings, unordered lists sorted, empty
    values dropped. Two definitions ECS would treat as the same compare equal.
    """
    td = copy.deepcopy(td or {})
    for key in list(td):
        if key in READ_ONLY_KEYS or key in NOT_COMPARED or key not in REGISTER_KEYS:
            td.pop(key)
        elif key in _FALSY_DEFAULTS and not td[key]:
            td.pop(key)
    compat = sorted(set(td.get("requiresCompatibilities") or []))
    td["requiresCompatibilities"] = compat
    if not td.get("networkMode"):
        td["networkMode"] = "awsvpc" if "FARGATE" in compat else "bridge"
    network_mode = td["networkMode"]
    for key in ("cpu", "memory"):
        if td.get(key) is not None:
            td[key] = task_size(td[key], key)
    td["containerDefinitions"] = sorted(
        (_normalise_container(c, network_mode) for c in td.get("containerDefinitions") or []),
        key=lambda c: str(c.get("name")),
    )
    volumes: List[Dict[str, Any]] = []
    for volume in td.get("volumes") or []:
        volume = copy.deepcopy(volume)
        efs = volume.get("efsVolumeConfiguration")
        if isinstance(efs, dict):
            efs.setdefault("rootDirectory", "/")
        volumes.append(volume)
    td["volumes"] = _sorted_by(volumes, "name")
    td["placementConstraints"] = _sorted_by(td.get("placementConstraints"), "type", "expression")
    normalised: TaskDefinition = prune(td)  # a dict stays a dict
    return normalised


def _label(item: object, index: int) -> str:
    if isinstance(item, dict):
        for key in ("name", "containerName", "sourceVolume", "containerPort"):
            if key in item:
                return "%s" % item[key]
    return str(index)


def compare(a: Any, b: Any, path: str = "") -> List[str]:
    """Paths where normalised ``a`` and ``b`` differ (empty list = equal); pure."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: List[str] = []
        for key in sorted(set(a) | set(b), key=str):
            sub = "%s.%s" % (path, key) if path else str(key)
            if key not in a or key not in b:
                out.append(sub)
            else:
                out.extend(compare(a[key], b[key], sub))
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [path]
        out = []
        for index, (x, y) in enumerate(zip(a, b)):
            out.extend(compare(x, y, "%s[%s]" % (path, _label(x, index))))
        return out
    return [] if a == b else [path]


def _without_env(td: TaskDefinition, names: AbstractSet[str]) -> TaskDefinition:
    for container in td.get("containerDefinitions") or []:
        if "environment" in container:
            container["environment"] = [e for e in container["environment"] if e.get("name") not in names]
            if not container["environment"]:
                container.pop("environment")
    return td


def compare_task_definitions(desired: TaskDefinition, current: Optional[TaskDefinition],
                             ignore_env: Optional[Iterable[str]] = NOT_COMPARED_ENV) -> List[str]:
    """Differences between a desired and a described task definition (both normalised here).

    Environment variables named in ``ignore_env`` (``DEPLOYMENT_ID``) are not compared.
    """
    if current is None:
        return ["(no ACTIVE revision)"]
    names = frozenset(ignore_env or ())
    return compare(_without_env(normalise_task_definition(desired), names),
                   _without_env(normalise_task_definition(current), names))
