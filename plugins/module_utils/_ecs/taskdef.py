# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Task definitions for the agent runtime: render, inject, validate, normalise, compare.

Everything here is pure (no AWS calls) and unit-tested. The key idea, and the
reason community.aws ``ecs_taskdefinition`` churned revisions
(ansible/ansible#22547, community.aws#45), is that the desired definition and
the one ECS describes must be compared only *after* both have the API's
defaults filled in and read-only fields removed.
"""

from __future__ import annotations

import copy
import json
import re

from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import EcsError
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import REDACTED

DEFAULT_CONTAINER_NAME = "agent-runtime"

# The seed's environment table, in its order. ``None`` = no default (omitted
# when not given); BASE_PATH's default depends on AGENT_APP_ID.
AGENT_ENV_DEFAULTS = (
    ("AGENT_APP_ID", None),
    ("PACKAGE_URL", None),
    ("DEPLOYMENT_ID", None),
    ("PACKAGE_SHA256", None),
    ("BASE_PATH", None),
    ("REST_PORT", 8080),
    ("A2A_PORT", 50051),
    ("UI_PORT", 3000),
    ("MULTIPLEXED", True),
    ("MAX_PACKAGE_SIZE_MB", 100),
    ("BOOT_BUDGET_MS", 5000),
    ("BOOT_HARD_LIMIT_MULTIPLIER", 2.0),
    ("GRACEFUL_SHUTDOWN_TIMEOUT_SEC", 30),
)
AGENT_ENV_NAMES = tuple(pair[0] for pair in AGENT_ENV_DEFAULTS)
ECS_DEFAULT_STOP_TIMEOUT = 30

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

# Names (environment variables, log-driver option keys, docker labels) whose values are masked:
# anything ending in KEY (OPENAI_KEY, APIKEY, splunk-key), or containing one of these words.
_SECRET_NAME = re.compile(r"(KEY$|API[_-]?KEY|ACCESS[_-]?KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|AUTH)", re.I)
# API defaults that ECS reports as a falsy value when they were not set: absent == default.
_FALSY_DEFAULTS = frozenset(("enableFaultInjection",))
_CONTAINER_FALSY_DEFAULTS = frozenset(("privileged", "readonlyRootFilesystem", "interactive", "pseudoTerminal",
                                       "disableNetworking"))
_SIGNED_QUERY = re.compile(r"(signature|credential|token|sig=|key=)", re.I)
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_FAMILY = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_CPU_UNITS = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*vcpu\s*$", re.I)
_MEM_UNITS = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*gb\s*$", re.I)
_CONTAINER_INTS = ("cpu", "memory", "memoryReservation", "stopTimeout", "startTimeout")


# --------------------------------------------------------------------------- env
def env_value(value):
    """ECS environment values are strings: booleans lower-case, floats as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def agent_environment(agent_env):
    """The agent runtime's variables with the seed's defaults filled in (ordered dict)."""
    given = dict(agent_env or {})
    unknown = sorted(set(given) - set(AGENT_ENV_NAMES))
    if unknown:
        raise EcsError("agent_env: unknown variable(s) %s; known: %s" % (", ".join(unknown), ", ".join(AGENT_ENV_NAMES)))
    out = {}
    for name, default in AGENT_ENV_DEFAULTS:
        value = given.get(name)
        if value is None:
            value = default
        if name == "BASE_PATH" and value in (None, "") and given.get("AGENT_APP_ID"):
            value = "/agents/%s" % str(given["AGENT_APP_ID"]).strip()
        if name == "PACKAGE_SHA256" and isinstance(value, str):
            value = value.strip().lower() or None
        if value is None:
            continue
        out[name] = value
    return out


def _int_in(env, name, low, high=None):
    value = env.get(name)
    if value is None:
        return None
    try:
        number = int(str(value))
    except ValueError:
        return "%s must be an integer (got %r)" % (name, value)
    if number < low or (high is not None and number > high):
        return "%s must be between %d and %s (got %d)" % (name, low, high if high is not None else "unbounded", number)
    return None


def validate_agent_env(env):
    """Problems with the agent environment, as a list of messages (empty = valid).

    Wording follows the agent runtime's own boot errors (seed 003).
    """
    errors = []
    app_id = env.get("AGENT_APP_ID")
    if app_id is None or not str(app_id).strip():
        errors.append("AGENT_APP_ID missing or empty")
    url = env.get("PACKAGE_URL")
    if url is None or not str(url).strip():
        errors.append("PACKAGE_URL missing or empty")
    else:
        url = str(url).strip()
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme == "file":
            errors.append("PACKAGE_URL: file:// URLs are not allowed (only s3:// or https://)")
        elif scheme == "http":
            errors.append("PACKAGE_URL: http:// URLs are not allowed (only s3:// or https://)")
        elif scheme not in ("s3", "https"):
            errors.append("PACKAGE_URL must be an s3:// or https:// URL (got %r)" % redact_value(url))
        else:
            rest = url.split("://", 1)[1]
            host, dummy, path = rest.partition("/")
            if not host or (scheme == "s3" and not path):
                errors.append("PACKAGE_URL: %s:// URL needs a %s and a path" % (scheme, "bucket" if scheme == "s3" else "host"))
    sha = env.get("PACKAGE_SHA256")
    if sha is not None and not _SHA256.match(str(sha)):
        errors.append("PACKAGE_SHA256 must be 64 hexadecimal characters (got %d characters)" % len(str(sha)))
    for name in ("REST_PORT", "A2A_PORT", "UI_PORT"):
        errors.append(_int_in(env, name, 1, 65535))
    errors.append(_int_in(env, "MAX_PACKAGE_SIZE_MB", 1))
    errors.append(_int_in(env, "BOOT_BUDGET_MS", 1))
    errors.append(_int_in(env, "GRACEFUL_SHUTDOWN_TIMEOUT_SEC", 0))
    mult = env.get("BOOT_HARD_LIMIT_MULTIPLIER")
    if mult is not None:
        try:
            if float(mult) < 0:
                errors.append("BOOT_HARD_LIMIT_MULTIPLIER must be >= 0 (0 disables the hard limit)")
        except (TypeError, ValueError):
            errors.append("BOOT_HARD_LIMIT_MULTIPLIER must be a number (got %r)" % (mult,))
    base = env.get("BASE_PATH")
    if base is not None and not str(base).startswith("/"):
        errors.append("BASE_PATH must start with / (got %r)" % (base,))
    return [e for e in errors if e]


# ---------------------------------------------------------------------- render
def load_template(path):
    """Read a task-definition template: JSON or YAML (JSON is YAML)."""
    import yaml  # PyYAML ships with ansible-core

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise EcsError("cannot read template %s: %s" % (path, exc))
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise EcsError("template %s is neither JSON nor YAML: %s" % (path, exc))
    if not isinstance(data, dict):
        raise EcsError("template %s must hold a mapping (a task definition), not %s" % (path, type(data).__name__))
    # Accept the output of describe-task-definition as a template too.
    if "taskDefinition" in data and isinstance(data["taskDefinition"], dict):
        data = data["taskDefinition"]
    return data


def _find_container(containers, name):
    for container in containers:
        if container.get("name") == name:
            return container
    if len(containers) == 1:
        return containers[0]
    return None


def render_task_definition(template, family=None, image=None, agent_env=None,
                           container_name=DEFAULT_CONTAINER_NAME):
    """The task definition to register: template + family + image + agent env.

    Raises EcsError listing every problem found; makes no AWS call.
    Returns ``(task_definition, agent_env_with_defaults)``.
    """
    errors = []
    td = copy.deepcopy(template or {})
    for key in READ_ONLY_KEYS:
        td.pop(key, None)
    unknown = sorted(set(td) - set(REGISTER_KEYS))
    if unknown:
        errors.append("task definition: unknown top-level field(s) %s" % ", ".join(unknown))
    if family:
        td["family"] = family
    if not td.get("family"):
        errors.append("family is required (option or template)")
    elif not _FAMILY.match(str(td["family"])):
        errors.append("family %r may contain only letters, digits, - and _ (max 255)" % td["family"])

    env = {}
    try:
        env = agent_environment(agent_env)
    except EcsError as exc:
        errors.append(exc.msg)
    errors.extend(validate_agent_env(env))

    containers = td.get("containerDefinitions")
    if not isinstance(containers, list) or not containers:
        errors.append("task definition has no containerDefinitions")
        raise EcsError("; ".join(errors), errors=errors)
    container = _find_container(containers, container_name)
    if container is None:
        errors.append("no container named %r in the task definition (and more than one container)" % container_name)
        raise EcsError("; ".join(errors), errors=errors)

    if image:
        container["image"] = image
    if not str(container.get("image") or "").strip():
        errors.append("image is required: set the image option or the container's image in the template")

    graceful = env.get("GRACEFUL_SHUTDOWN_TIMEOUT_SEC")
    if graceful is not None:
        try:
            graceful = int(str(graceful))
        except ValueError:
            graceful = None
    if graceful is not None:
        stop = container.get("stopTimeout")
        if stop is None:
            if ECS_DEFAULT_STOP_TIMEOUT <= graceful:
                errors.append(
                    "container %s has no stopTimeout (ECS default %d s), which must be greater than "
                    "GRACEFUL_SHUTDOWN_TIMEOUT_SEC (%d): set stopTimeout in the template (e.g. %d)"
                    % (container.get("name"), ECS_DEFAULT_STOP_TIMEOUT, graceful, graceful + 5))
        else:
            try:
                if int(stop) <= graceful:
                    errors.append("stopTimeout (%s) of container %s must be greater than GRACEFUL_SHUTDOWN_TIMEOUT_SEC (%d)"
                                  % (stop, container.get("name"), graceful))
            except (TypeError, ValueError):
                errors.append("stopTimeout of container %s must be an integer (got %r)" % (container.get("name"), stop))

    if errors:
        raise EcsError("; ".join(errors), errors=errors)

    # Inject: agent variables override the template's of the same name, others are kept.
    injected = dict((e.get("name"), e.get("value")) for e in container.get("environment") or [])
    for name, value in env.items():
        injected[name] = value
    container["environment"] = [{"name": n, "value": env_value(v)} for n, v in injected.items()]
    return td, env


def swap_image(described, image, container_name=DEFAULT_CONTAINER_NAME, family=None):
    """A described task definition with the agent container's image replaced (pure).

    Read-only and unknown fields are dropped; everything else (environment included) is kept.
    """
    if not str(image or "").strip():
        raise EcsError("image is required to take the service's task definition with a new image")
    td = dict((k, copy.deepcopy(v)) for k, v in (described or {}).items() if k in REGISTER_KEYS)
    if family:
        td["family"] = family
    container = _find_container(td.get("containerDefinitions") or [], container_name)
    if container is None:
        raise EcsError("no container named %r in task definition %s (and more than one container)"
                       % (container_name, (described or {}).get("taskDefinitionArn")))
    container["image"] = image
    return td


def register_kwargs(td):
    """Keyword arguments for ``register_task_definition`` (None, "" and empty values dropped)."""
    return dict((k, v) for k, v in _prune(dict((k, td.get(k)) for k in REGISTER_KEYS)).items())


# ------------------------------------------------------------------- normalise
def _prune(obj):
    """Drop None, "" (ECS treats an empty string as unset), empty lists and empty dicts,
    recursively; keep False and 0."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            value = _prune(value)
            if value is None or value == "" or value == [] or value == {}:
                continue
            out[key] = value
        return out
    if isinstance(obj, (list, tuple)):
        return [_prune(v) for v in obj if v is not None]
    return obj


def _as_int(value):
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


def task_size(value, kind):
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


def _sorted_by(items, *keys):
    return sorted(items or [], key=lambda item: tuple(json.dumps(item.get(k), sort_keys=True, default=str) for k in keys))


def _normalise_container(container, network_mode):
    c = copy.deepcopy(container)
    for key in _CONTAINER_FALSY_DEFAULTS:
        if key in c and not c[key]:
            c.pop(key)
    c.setdefault("essential", True)
    c.setdefault("cpu", 0)
    for key in _CONTAINER_INTS:
        if key in c:
            c[key] = _as_int(c[key])
    mappings = []
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
    env = {}
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


def normalise_task_definition(td):
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
    volumes = []
    for volume in td.get("volumes") or []:
        volume = copy.deepcopy(volume)
        efs = volume.get("efsVolumeConfiguration")
        if isinstance(efs, dict):
            efs.setdefault("rootDirectory", "/")
        volumes.append(volume)
    td["volumes"] = _sorted_by(volumes, "name")
    td["placementConstraints"] = _sorted_by(td.get("placementConstraints"), "type", "expression")
    return _prune(td)


def _label(item, index):
    if isinstance(item, dict):
        for key in ("name", "containerName", "sourceVolume", "containerPort"):
            if key in item:
                return "%s" % item[key]
    return str(index)


def compare(a, b, path=""):
    """Paths where normalised ``a`` and ``b`` differ (empty list = equal); pure."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
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


def _without_env(td, names):
    for container in td.get("containerDefinitions") or []:
        if "environment" in container:
            container["environment"] = [e for e in container["environment"] if e.get("name") not in names]
            if not container["environment"]:
                container.pop("environment")
    return td


def compare_task_definitions(desired, current, ignore_env=NOT_COMPARED_ENV):
    """Differences between a desired and a described task definition (both normalised here).

    Environment variables named in ``ignore_env`` (``DEPLOYMENT_ID``) are not compared.
    """
    if current is None:
        return ["(no ACTIVE revision)"]
    names = frozenset(ignore_env or ())
    return compare(_without_env(normalise_task_definition(desired), names),
                   _without_env(normalise_task_definition(current), names))


# ------------------------------------------------------------------- redaction
def redact_value(value):
    """Mask credentials inside a URL (user:pass@, signed query strings)."""
    if not isinstance(value, str) or "://" not in value:
        return value
    scheme, rest = value.split("://", 1)
    host, slash, tail = rest.partition("/")
    if "@" in host:
        host = REDACTED + "@" + host.split("@", 1)[1]
    if "?" in tail and _SIGNED_QUERY.search(tail.split("?", 1)[1]):
        tail = tail.split("?", 1)[0] + "?" + REDACTED
    return scheme + "://" + host + slash + tail


def secret_name(name):
    """Whether a variable / option / label name looks like it holds a secret."""
    return bool(_SECRET_NAME.search(str(name or "")))


def _redact_mapping(mapping):
    """Mask values of secret-looking keys, credentials in URL values of the others."""
    return dict((k, REDACTED if secret_name(k) else redact_value(v)) for k, v in mapping.items())


def redact_task_definition(td):
    """Copy of a task definition safe to show.

    Masked: environment values whose names look secret (see ``secret_name``), log-driver
    ``options`` and ``dockerLabels`` values whose keys look secret, ``repositoryCredentials``,
    and credentials inside URLs elsewhere. Kept: ``secrets``/``secretOptions`` ``valueFrom``
    (ARNs of Secrets Manager / SSM parameters: references, not values).
    """
    td = copy.deepcopy(td)
    for container in td.get("containerDefinitions") or []:
        for item in container.get("environment") or []:
            if secret_name(item.get("name")):
                item["value"] = REDACTED
            else:
                item["value"] = redact_value(item.get("value"))
        log = container.get("logConfiguration")
        if isinstance(log, dict) and isinstance(log.get("options"), dict):
            log["options"] = _redact_mapping(log["options"])
        if isinstance(container.get("dockerLabels"), dict):
            container["dockerLabels"] = _redact_mapping(container["dockerLabels"])
        creds = container.get("repositoryCredentials")
        if isinstance(creds, dict):
            container["repositoryCredentials"] = dict((k, REDACTED) for k in creds)
    return td


def diff_view(td):
    """What diff mode shows for a task definition: normalised, redacted."""
    if td is None:
        return {}
    return redact_task_definition(normalise_task_definition(td))


def agent_container(td, container_name=DEFAULT_CONTAINER_NAME):
    """The agent container of a (described) task definition, or None."""
    return _find_container((td or {}).get("containerDefinitions") or [], container_name)
