# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every input of a playbook checked before anyone is asked (issue 12, defect 5).

One place for the checks of the rollout, shutdown and wakeup playbooks: types
(from the roles' argument specs, passed in as ``spec``), ranges, finite numbers,
contradictions between variables, files that must exist or be writable, URL
schemes, duplicate ``agent_url`` values and the policy of the lifecycle
(``rollout_max_parallel``, ``rollout_canary``, ``rollout_auto_promote``,
``rollout_progress_deadline``, ``rollout_health_check``).

:func:`validate_inputs` returns the typed values or raises :class:`InputError`
whose message is one line naming each bad variable (a secret's value is never
shown). Nothing here talks to an agent or writes a file. The checks that look
at files are ``_validate_files``'; unknown variable names are ``_validate_names``'.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator  # type: ignore[import-untyped]  # ansible-core has no py.typed

from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import check_token
from ansible_collections.agentfleet.rollout.plugins.module_utils._secrets import is_secret_key
from ansible_collections.agentfleet.rollout.plugins.module_utils._urls import agent_url_key
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate_files import check_hooks
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate_files import check_state_path
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate_files import check_task_file
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate_files import check_writable_file

KINDS = ("rollout", "shutdown", "wakeup")
# the longest wait any variable may ask for: about 11.6 days (1e12 is a typo, not a deadline)
MAX_SECONDS = 1000000.0
MAX_TIMEOUT = 3600.0
MAX_WORKERS = 1024
COGNITIVE_STATES = ("wakeup", "work", "play", "solitude", "dream", "shutdown")
ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# a warning code of a CIRIS agent's health (adapters_failed_to_load)
WARNING_CODE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

# an argument spec option ({type, choices, elements, ...}); a number's range
Spec = Dict[str, Any]
Range = Tuple[float, float, bool, bool]

# name -> (minimum, maximum, minimum allowed itself, integer)
NUMBERS: Dict[str, Range] = {
    "rollout_success_threshold": (0.0, 1.0, True, False),
    "rollout_min_healthy_time": (0.0, MAX_SECONDS, True, False),
    "rollout_healthy_deadline": (0.0, MAX_SECONDS, False, False),
    "rollout_stop_timeout": (0.0, MAX_SECONDS, True, False),
    "rollout_poll_interval": (0.0, MAX_TIMEOUT, False, False),
    "rollout_wait_between_waves": (0.0, MAX_SECONDS, True, False),
    "rollout_defer_deadline": (0.0, MAX_SECONDS, True, False),
    "rollout_connect_timeout": (0.0, MAX_TIMEOUT, False, False),
    "rollout_read_timeout": (0.0, MAX_TIMEOUT, False, False),
    "rollout_max_workers": (1, MAX_WORKERS, True, True),
    "rollout_docker_stop_timeout": (0, MAX_SECONDS, True, True),
    "rollout_max_parallel": (1, 1000000, True, True),
    "rollout_progress_deadline": (0.0, MAX_SECONDS, True, False),
    "rollout_fail_fast_after": (0.0, MAX_SECONDS, True, False),
    "shutdown_wave_timeout": (0.0, MAX_SECONDS, False, False),
    "shutdown_stop_timeout": (0.0, MAX_SECONDS, True, False),
    "shutdown_decision_max_age": (0.0, MAX_SECONDS, True, False),
    "shutdown_min_serving_fraction": (0.0, 1.0, True, False),
    "shutdown_poll_interval": (0.0, MAX_TIMEOUT, False, False),
    "wakeup_wave_timeout": (0.0, MAX_SECONDS, False, False),
    "wakeup_min_healthy_time": (0.0, MAX_SECONDS, True, False),
    "wakeup_poll_interval": (0.0, MAX_TIMEOUT, False, False),
}
DELAY_LISTS = ("shutdown_wave_delays", "wakeup_wave_delays")
STATE_LISTS = ("rollout_expected_states", "wakeup_expected_states")
# variables of the lifecycle policy (issue 9) that an older role spec may not declare yet
POLICY_SPEC: Dict[str, Spec] = {
    "rollout_max_parallel": {"type": "int"},
    "rollout_canary": {"type": "raw"},
    "rollout_auto_promote": {"type": "bool"},
    "rollout_progress_deadline": {"type": "float"},
    "rollout_health_check": {"type": "str", "choices": ["checks", "agent_states"]},
    "rollout_min_healthy_time": {"type": "float"},
    "rollout_healthy_deadline": {"type": "float"},
    "rollout_auto_revert": {"type": "bool"},
    "rollout_fail_fast_after": {"type": "float"},
    "rollout_blocking_warnings": {"type": "list", "elements": "str"},
}
SECRETS = ("rollout_token", "rollout_notify_url", "rollout_notify_headers")
DRIVERS_WITH_TASKS = ("tasks",)


class InputError(ValueError):
    """Bad input: the message is one line naming every bad variable."""


def shown(name: str, value: object) -> str:
    """``value`` as an error shows it: never a secret's (:data:`SECRETS`, or a name that holds a secret:
    ``_secrets.is_secret_key``), at most 60 characters."""
    if name in SECRETS or is_secret_key(name):
        return "(value not shown)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_words(spec: Mapping[str, Any]) -> str:
    kind = spec.get("type", "str")
    words: str = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a string",
                  "list": "a list", "dict": "a mapping", "path": "a path"}.get(kind, kind)
    if spec.get("elements"):
        words += " of %s" % _type_words({"type": spec["elements"]})
    if spec.get("choices"):
        words = "one of %s" % ", ".join(str(c) for c in spec["choices"])
    return words


def typed_values(spec: Mapping[str, Spec], values: Mapping[str, Any]) -> Tuple[Dict[str, Any], List[str]]:
    """Convert each value to its spec type: ``(typed, errors)``; a value not in ``spec`` passes as it is."""
    typed: Dict[str, Any] = {}
    errors: List[str] = []
    for name, value in values.items():
        s = spec.get(name)
        if not s:
            typed[name] = value
            continue
        sub = dict((k, v) for k, v in s.items() if k in ("type", "choices", "elements"))
        if sub.get("type") in ("int", "float") and isinstance(value, bool):
            errors.append("%s: must be %s, got %s" % (name, _type_words(sub), shown(name, value)))
            continue
        result = ArgumentSpecValidator({name: sub}).validate({name: value})
        if result.error_messages:
            errors.append("%s: must be %s, got %s" % (name, _type_words(sub), shown(name, value)))
        else:
            typed[name] = result.validated_parameters[name]
    return typed, errors


def check_number(name: str, value: object, minimum: float, maximum: float, inclusive: bool = True,
                 integer: bool = False) -> Optional[str]:
    """An error text, or None: ``value`` must be a finite number in range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "%s: must be a number, got %s" % (name, shown(name, value))
    if not math.isfinite(value):
        return "%s: must be a finite number, got %s" % (name, value)
    if integer and int(value) != value:
        return "%s: must be a whole number, got %s" % (name, value)
    low_ok = value >= minimum if inclusive else value > minimum
    if not low_ok or value > maximum:
        return "%s: must be %s %s and at most %s, got %s" % (
            name, ">=" if inclusive else ">", _num(minimum), _num(maximum), _num(value))
    return None


def _num(value: float) -> str:
    return ("%d" % value) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


def check_url(name: str, url: object, where: Optional[str] = None) -> Optional[str]:
    """An error text, or None: ``url`` must be an http(s) URL with a host and a valid port."""
    label = name if where is None else "%s of host %s" % (name, where)
    if not isinstance(url, str) or not url.strip():
        return "%s: is missing (an http:// or https:// URL of the agent)" % label
    if url != url.strip() or CONTROL_RE.search(url) or " " in url:
        return "%s: contains spaces or control characters: %r" % (label, url[:80])
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return "%s: is not a valid URL (%s): %s" % (label, exc, url[:80])
    if parts.scheme.lower() not in ("http", "https"):
        return "%s: must start with http:// or https://, got %s" % (label, url[:80])
    if not parts.hostname:
        return "%s: has no host: %s" % (label, url[:80])
    if port is not None and not 0 < port < 65536:
        return "%s: port out of range: %s" % (label, url[:80])
    return None


def _check_states(name: str, value: object, errors: List[str]) -> None:
    if not isinstance(value, list) or not value:
        errors.append("%s: must be a non-empty list of cognitive states (%s)" % (name, ", ".join(COGNITIVE_STATES)))
        return
    bad = [v for v in value if v not in COGNITIVE_STATES]
    if bad:
        errors.append("%s: unknown cognitive state %s (one of %s)" % (name, ", ".join(repr(b) for b in bad[:5]),
                                                                      ", ".join(COGNITIVE_STATES)))


def _check_warning_codes(name: str, value: object, errors: List[str]) -> None:
    """``rollout_blocking_warnings``: a list (maybe empty) of warning codes such as adapters_failed_to_load."""
    if not isinstance(value, list):
        errors.append("%s: must be a list of warning codes (e.g. [adapters_failed_to_load]), got %s"
                      % (name, shown(name, value)))
        return
    bad = [v for v in value if not isinstance(v, str) or not WARNING_CODE_RE.match(v)]
    if bad:
        errors.append("%s: %s is not a warning code (letters, digits and '_', e.g. adapters_failed_to_load)"
                      % (name, ", ".join(shown(name, b) for b in bad[:5])))


def _check_canary(value: object, errors: List[str]) -> None:
    name = "rollout_canary"
    if isinstance(value, bool):
        errors.append("%s: must be a count >= 1 or a list of cohorts, got %r" % (name, value))
        return
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, (int, float)):
        error = check_number(name, value, 1, 1000000, True, True)
        if error:
            errors.append("%s: must be a count >= 1 or a list of cohorts, got %s" % (name, _num(value) if math.isfinite(value) else value))
        return
    if isinstance(value, list):
        if not value:
            errors.append("%s: an empty list of cohorts (give a count >= 1 or at least one cohort)" % name)
        elif not all(isinstance(c, dict) and c.get("name") for c in value):
            errors.append("%s: every cohort must be a mapping with a name" % name)
        return
    if isinstance(value, str) and value in ("ciris", "occurrences", "all"):
        return
    errors.append("%s: must be a count >= 1 or a list of cohorts, got %s" % (name, shown(name, value)))


def validate_inputs(kind: str, values: Mapping[str, Any], spec: Optional[Mapping[str, Spec]] = None,
                    agents: Optional[List[Dict[str, Any]]] = None, base_dir: Optional[str] = None) -> Dict[str, Any]:
    """Check every input of a ``kind`` (rollout, shutdown, wakeup) playbook before anyone is asked.

    ``values``: the variables as templated (only those defined); ``spec``: the role's argument
    spec options (``{name: {type, choices, elements}}``) for the types; ``agents``: the play's
    hosts as dicts (``name``, ``agent_url``); ``base_dir``: where
    relative paths start (the directory ansible-playbook runs in). Returns the typed values;
    raises :class:`InputError` naming every bad variable, in one line.
    """
    if kind not in KINDS:
        raise InputError("kind: must be one of %s, got %r" % (", ".join(KINDS), kind))
    full_spec: Dict[str, Spec] = dict(POLICY_SPEC)
    full_spec.update(spec or {})
    v, errors = typed_values(full_spec, values)
    bad = set(e.split(":", 1)[0] for e in errors)

    def have(name: str) -> bool:
        return name in v and name not in bad and v[name] is not None

    for name, (low, high, inclusive, integer) in NUMBERS.items():
        if have(name):
            error = check_number(name, v[name], low, high, inclusive, integer)
            if error:
                errors.append(error)
                bad.add(name)
    for name in DELAY_LISTS:
        if have(name):
            if not isinstance(v[name], list):
                errors.append("%s: must be a list of seconds" % name)
                continue
            for i, item in enumerate(v[name]):
                try:
                    item = float(item) if not isinstance(item, bool) else item
                except (TypeError, ValueError):
                    pass
                error = check_number("%s[%d]" % (name, i), item, 0.0, MAX_SECONDS)
                if error:
                    errors.append(error)
                    bad.add(name)
                    break
    for name in STATE_LISTS:
        if have(name):
            _check_states(name, v[name], errors)
    if have("rollout_canary"):
        _check_canary(v["rollout_canary"], errors)
    if have("rollout_blocking_warnings"):
        _check_warning_codes("rollout_blocking_warnings", v["rollout_blocking_warnings"], errors)

    # strings
    if kind == "rollout" and v.get("rollout_strategy", "canary") not in ("promote", "resume", "rollback") \
            and "rollout_target_version" not in bad:
        target = v.get("rollout_target_version")
        if target is None or not str(target).strip():
            errors.append("rollout_target_version: is required (e.g. -e rollout_target_version=2.0.0)")
        elif CONTROL_RE.search(str(target)) or " " in str(target) or len(str(target)) > 128:
            errors.append("rollout_target_version: must be a version without spaces or control characters, got %s"
                          % shown("rollout_target_version", target))
    if kind == "shutdown" and not str(v.get("shutdown_reason") or "").strip() and "shutdown_reason" not in bad:
        errors.append("shutdown_reason: is required (the text the agent deliberates on, e.g. -e shutdown_reason=maintenance)")
    if have("rollout_deployment_id") and v["rollout_deployment_id"] and not ID_RE.match(str(v["rollout_deployment_id"])):
        errors.append("rollout_deployment_id: only letters, digits, '.', '_' and '-' (at most 128), got %s"
                      % shown("rollout_deployment_id", v["rollout_deployment_id"]))
    if have("rollout_token"):
        try:
            check_token(v["rollout_token"], "rollout_token")
        except ValueError as exc:
            errors.append(str(exc))
    if have("rollout_analysis") and v["rollout_analysis"]:
        from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import normalize_checks
        errors.extend(normalize_checks(v["rollout_analysis"])[1])
    for name in ("rollout_analysis", "rollout_telemetry_check"):
        if have(name) and v[name] and kind == "rollout" and v.get("rollout_strategy") == "blue_green":
            errors.append("%s: not run for blue-green candidates yet (the tasks, docker and none drivers' waves of "
                          "the other strategies)" % name)
    if have("rollout_hooks") and v["rollout_hooks"]:
        check_hooks(v["rollout_hooks"], errors, base_dir)
    if have("rollout_notify_url") and v["rollout_notify_url"]:
        url = str(v["rollout_notify_url"])
        parts = urlsplit(url) if not CONTROL_RE.search(url) and " " not in url else None
        if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            errors.append("rollout_notify_url: must be an http:// or https:// URL (value not shown)")
    if have("rollout_notify_headers") and any(not isinstance(h, str) or not isinstance(x, str) or CONTROL_RE.search(x)
                                              for h, x in v["rollout_notify_headers"].items()):
        errors.append("rollout_notify_headers: must map header names to strings without line breaks (values not shown)")
    if have("rollout_hosts") and not str(v["rollout_hosts"]).strip():
        errors.append("rollout_hosts: must name the inventory group of the agents")

    # files
    for name in ("rollout_report_path", "rollout_audit_path"):
        if have(name):
            error = check_writable_file(name, v[name], base_dir)
            if error:
                errors.append(error)
    if "rollout_state_path" in v and "rollout_state_path" not in bad:
        error = check_state_path("rollout_state_path", v["rollout_state_path"], base_dir)
        if error:
            errors.append(error)
    driver = v.get("rollout_driver") if "rollout_driver" not in bad else None
    # blue-green with the tasks driver runs a start-candidate and a retire-old task file instead of update tasks
    task_files = ("rollout_candidate_tasks", "rollout_retire_tasks") \
        if kind == "rollout" and v.get("rollout_strategy") == "blue_green" and driver == "tasks" \
        else ("rollout_update_tasks",)
    if driver in DRIVERS_WITH_TASKS and not bad.intersection(task_files):
        for name in task_files:
            error = check_task_file(name, v.get(name), base_dir)
            if error:
                errors.append(error)

    # contradictions
    if kind == "rollout" and have("rollout_min_healthy_time") and have("rollout_healthy_deadline") \
            and v["rollout_min_healthy_time"] > v["rollout_healthy_deadline"]:
        errors.append("rollout_min_healthy_time: %s is longer than rollout_healthy_deadline (%s): no agent could be "
                      "stable in time" % (_num(v["rollout_min_healthy_time"]), _num(v["rollout_healthy_deadline"])))
    if have("rollout_progress_deadline") and have("rollout_healthy_deadline") \
            and 0 < v["rollout_progress_deadline"] < v["rollout_healthy_deadline"]:
        errors.append("rollout_progress_deadline: %s is shorter than rollout_healthy_deadline (%s): a wave could fail "
                      "its progress deadline while its gate still waits (0 turns it off)"
                      % (_num(v["rollout_progress_deadline"]), _num(v["rollout_healthy_deadline"])))
    if kind == "wakeup" and have("wakeup_min_healthy_time") and have("wakeup_wave_timeout") \
            and v["wakeup_min_healthy_time"] > v["wakeup_wave_timeout"]:
        errors.append("wakeup_min_healthy_time: %s is longer than wakeup_wave_timeout (%s): no occurrence could be "
                      "stable in time" % (_num(v["wakeup_min_healthy_time"]), _num(v["wakeup_wave_timeout"])))

    # the agents
    if agents is not None:
        errors.extend(check_agents(agents))
    if errors:
        raise InputError("; ".join(errors))
    return v


def check_agents(agents: List[Dict[str, Any]]) -> List[str]:
    """Errors about the play's hosts: a missing or bad ``agent_url``, two hosts with one URL, no hosts."""
    errors: List[str] = []
    if not agents:
        return ["rollout_hosts: the group has no agents (after --limit): nothing to roll out"]
    seen: Dict[str, str] = {}
    dupes: List[str] = []
    for a in agents:
        error = check_url("agent_url", a.get("agent_url"), a["name"])
        if error:
            errors.append(error)
            continue
        key = agent_url_key(a["agent_url"])
        if key in seen:
            dupes.append("%s and %s (%s)" % (seen[key], a["name"], a["agent_url"]))
        else:
            seen[key] = a["name"]
    if dupes:
        errors.append("agent_url: hosts share one agent_url (one agent would be asked twice): %s"
                      % "; ".join(dupes[:5]) + (" and %d more" % (len(dupes) - 5) if len(dupes) > 5 else ""))
    if len(errors) > 10:
        errors = errors[:10] + ["and %d more errors" % (len(errors) - 10)]
    return errors


VALIDATE_SPEC = dict(
    kind=dict(type="str", default="rollout", choices=list(KINDS)),
    variables=dict(type="dict"),
    agents=dict(type="list", elements="dict"),
    base_dir=dict(type="path"),
    hosts=dict(type="list", elements="str"),
)
VALIDATE_MUTUALLY_EXCLUSIVE = [["agents", "hosts"]]


# module options (the rollout_wave module's, the agent client's) -> the playbook variable they come from
OPTION_VARIABLES = {
    "success_threshold": "rollout_success_threshold", "min_healthy_time": "rollout_min_healthy_time",
    "healthy_deadline": "rollout_healthy_deadline", "stop_timeout": "rollout_stop_timeout",
    "poll_interval": "rollout_poll_interval", "connect_timeout": "rollout_connect_timeout",
    "read_timeout": "rollout_read_timeout", "max_workers": "rollout_max_workers",
    "fail_fast_after": "rollout_fail_fast_after",
}


def check_options(params: Mapping[str, Any]) -> None:
    """The same ranges for a module's own options (a module used outside the playbooks): raises
    :class:`InputError` naming the option."""
    errors: List[str] = []
    for option, variable in OPTION_VARIABLES.items():
        value = params.get(option)
        if value is None:
            continue
        low, high, inclusive, integer = NUMBERS[variable]
        error = check_number(option, value, low, high, inclusive, integer)
        if error:
            errors.append(error)
    states = params.get("expected_states")
    if states is not None:
        _check_states("expected_states", states, errors)
    if params.get("blocking_warnings") is not None:
        _check_warning_codes("blocking_warnings", params["blocking_warnings"], errors)
    if errors:
        raise InputError("; ".join(errors))


def run_validate(params: Mapping[str, Any], spec: Optional[Mapping[str, Spec]] = None,
                 check_mode: bool = False) -> Dict[str, Any]:
    """The ``rollout_validate`` module's engine: ``{"changed": False, "valid": True, "checked": [names]}``."""
    values = params.get("variables") or {}
    validate_inputs(params["kind"], values, spec=spec, agents=params.get("agents"),
                    base_dir=params.get("base_dir") or os.getcwd())
    return {"changed": False, "valid": True, "checked": sorted(values), "msg": "all inputs are valid"}
