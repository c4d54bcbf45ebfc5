# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Task definitions for the agent runtime: render, inject, validate, redact.

Everything here is pure (no AWS calls) and unit-tested. Normalising a definition
and comparing two (API defaults filled in first) are ``normalise``'s.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import EcsError
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import TaskDefinition
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import REDACTED
from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import is_secret_key
from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import mask_url
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs.normalise import READ_ONLY_KEYS
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs.normalise import REGISTER_KEYS
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs.normalise import env_value
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs.normalise import normalise_task_definition
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs.normalise import prune

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

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_FAMILY = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


# --------------------------------------------------------------------------- env
def agent_environment(agent_env: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The agent runtime's variables with the seed's defaults filled in (ordered dict)."""
    given = dict(agent_env or {})
    unknown = sorted(set(given) - set(AGENT_ENV_NAMES))
    if unknown:
        raise EcsError("agent_env: unknown variable(s) %s; known: %s" % (", ".join(unknown), ", ".join(AGENT_ENV_NAMES)))
    out: Dict[str, Any] = {}
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


def _int_in(env: Mapping[str, Any], name: str, low: int, high: Optional[int] = None) -> Optional[str]:
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


def validate_agent_env(env: Mapping[str, Any]) -> List[str]:
    """Problems with the agent environment, as a list of messages (empty = valid).

    Wording follows the agent runtime's own boot errors (seed 003).
    """
    errors: List[Optional[str]] = []
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
def load_template(path: str) -> TaskDefinition:
    """Read a task-definition template: JSON or YAML (JSON is YAML)."""
    import yaml  # type: ignore[import-untyped]  # PyYAML ships with ansible-core; types-PyYAML is not installed

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


def _find_container(containers: Sequence[Dict[str, Any]], name: str) -> Optional[Dict[str, Any]]:
    for container in containers:
        if container.get("name") == name:
            return container
    if len(containers) == 1:
        return containers[0]
    return None


def render_task_definition(template: Optional[TaskDefinition], family: Optional[str] = None, image: Optional[str] = None,
                           agent_env: Optional[Mapping[str, Any]] = None,
                           container_name: str = DEFAULT_CONTAINER_NAME) -> Tuple[TaskDefinition, Dict[str, Any]]:
    """The task definition to register: template + family + image + agent env.

    Raises EcsError listing every problem found; makes no AWS call.
    Returns ``(task_definition, agent_env_with_defaults)``.
    """
    errors: List[str] = []
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

    env: Dict[str, Any] = {}
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


def swap_image(described: Optional[Mapping[str, Any]], image: Optional[str], container_name: str = DEFAULT_CONTAINER_NAME,
               family: Optional[str] = None) -> TaskDefinition:
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


def register_kwargs(td: Mapping[str, Any]) -> Dict[str, Any]:
    """Keyword arguments for ``register_task_definition`` (None, "" and empty values dropped)."""
    return dict((k, v) for k, v in prune(dict((k, td.get(k)) for k in REGISTER_KEYS)).items())


# ------------------------------------------------------------------- redaction
def redact_value(value: object) -> object:
    """Mask credentials inside a URL (user:pass@, signed query strings): :func:`._secrets.mask_url`."""
    return mask_url(value)


def secret_name(name: object) -> bool:
    """Whether a variable / option / label name looks like it holds a secret: :func:`._secrets.is_secret_key`."""
    return is_secret_key(name)


def _redact_mapping(mapping: Mapping[Any, Any]) -> Dict[Any, Any]:
    """Mask values of secret-looking keys, credentials in URL values of the others."""
    return dict((k, REDACTED if secret_name(k) else redact_value(v)) for k, v in mapping.items())


def redact_task_definition(td: TaskDefinition) -> TaskDefinition:
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


def diff_view(td: Optional[TaskDefinition]) -> TaskDefinition:
    """What diff mode shows for a task definition: normalised, redacted."""
    if td is None:
        return {}
    return redact_task_definition(normalise_task_definition(td))


def agent_container(td: Optional[Mapping[str, Any]], container_name: str = DEFAULT_CONTAINER_NAME) -> Optional[Dict[str, Any]]:
    """The agent container of a (described) task definition, or None."""
    return _find_container((td or {}).get("containerDefinitions") or [], container_name)
