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
shown). Nothing here talks to an agent or writes a file.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import os
import re

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.six.moves.urllib.parse import urlsplit

KINDS = ("rollout", "shutdown", "wakeup")
# the longest wait any variable may ask for: about 11.6 days (1e12 is a typo, not a deadline)
MAX_SECONDS = 1000000.0
MAX_TIMEOUT = 3600.0
MAX_WORKERS = 1024
COGNITIVE_STATES = ("wakeup", "work", "play", "solitude", "dream", "shutdown")
SQLITE_MAGIC = b"SQLite format 3\x00"
ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# a warning code of a CIRIS agent's health (adapters_failed_to_load)
WARNING_CODE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

# name -> (minimum, maximum, minimum allowed itself, integer)
NUMBERS = {
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
POLICY_SPEC = {
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
# the prefixes of the collection's variables: one of them that the collection does not know is a typo (or a
# variable of the user's own, listed in rollout_extra_vars)
PREFIXES = ("rollout_", "shutdown_", "wakeup_")
EXTRA_VARS = "rollout_extra_vars"
# a name with one of the prefixes in a file of the collection: not part of a longer name (_rollout_plan), an
# attribute or a module name (result.rollout_state, agentfleet.rollout.rollout_wave) nor a YAML anchor or alias
VARIABLE_RE = re.compile(r"(?<![\w.&*])((?:rollout|shutdown|wakeup)_[A-Za-z0-9_]+)")
DRIVERS_WITH_TASKS = ("tasks",)


class InputError(ValueError):
    """Bad input: the message is one line naming every bad variable."""


def _shown(name, value):
    if name in SECRETS:
        return "(value not shown)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_words(spec):
    kind = spec.get("type", "str")
    words = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a string",
             "list": "a list", "dict": "a mapping", "path": "a path"}.get(kind, kind)
    if spec.get("elements"):
        words += " of %s" % _type_words({"type": spec["elements"]})
    if spec.get("choices"):
        words = "one of %s" % ", ".join(str(c) for c in spec["choices"])
    return words


def typed_values(spec, values):
    """Convert each value to its spec type: ``(typed, errors)``; a value not in ``spec`` passes as it is."""
    typed, errors = {}, []
    for name, value in values.items():
        s = spec.get(name)
        if not s:
            typed[name] = value
            continue
        sub = dict((k, v) for k, v in s.items() if k in ("type", "choices", "elements"))
        if sub.get("type") in ("int", "float") and isinstance(value, bool):
            errors.append("%s: must be %s, got %s" % (name, _type_words(sub), _shown(name, value)))
            continue
        result = ArgumentSpecValidator({name: sub}).validate({name: value})
        if result.error_messages:
            errors.append("%s: must be %s, got %s" % (name, _type_words(sub), _shown(name, value)))
        else:
            typed[name] = result.validated_parameters[name]
    return typed, errors


def check_number(name, value, minimum, maximum, inclusive=True, integer=False):
    """An error text, or None: ``value`` must be a finite number in range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "%s: must be a number, got %s" % (name, _shown(name, value))
    if not math.isfinite(value):
        return "%s: must be a finite number, got %s" % (name, value)
    if integer and int(value) != value:
        return "%s: must be a whole number, got %s" % (name, value)
    low_ok = value >= minimum if inclusive else value > minimum
    if not low_ok or value > maximum:
        return "%s: must be %s %s and at most %s, got %s" % (
            name, ">=" if inclusive else ">", _num(minimum), _num(maximum), _num(value))
    return None


def _num(value):
    return ("%d" % value) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


def check_url(name, url, where=None):
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


def url_key(url):
    """What makes two agent URLs the same agent: scheme, host, port (defaulted) and path without a trailing /."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port, parts.path.rstrip("/"))


def _nearest_dir(path):
    parent = os.path.dirname(path) or "."
    while parent and not os.path.exists(parent):
        up = os.path.dirname(parent)
        if up == parent:
            break
        parent = up
    return parent


def check_writable_file(name, path, base_dir=None):
    """An error text, or None: ``path`` must name a file this user can write (or create)."""
    if not isinstance(path, str) or not path:
        return None
    full = os.path.expanduser(path)
    if not os.path.isabs(full) and base_dir:
        full = os.path.join(base_dir, full)
    if os.path.isdir(full):
        return "%s: %s is a directory, not a file" % (name, path)
    if os.path.exists(full):
        if not os.access(full, os.W_OK):
            return "%s: %s is not writable" % (name, path)
        return None
    parent = _nearest_dir(full)
    if not os.path.isdir(parent):
        return "%s: %s cannot be created: %s is not a directory" % (name, path, parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        return "%s: %s cannot be created: %s is not writable" % (name, path, parent)
    return None


def check_state_path(name, path, base_dir=None):
    """An error text, or None: a writable path that is a SQLite state file or does not exist yet."""
    if not isinstance(path, str) or not path:
        return "%s: must be a path to the state file" % name
    if "://" in path:
        # a shared backend (s3://...): its own module checks it
        return None
    error = check_writable_file(name, path, base_dir)
    if error:
        return error
    full = os.path.expanduser(path)
    if not os.path.isabs(full) and base_dir:
        full = os.path.join(base_dir, full)
    if os.path.isfile(full) and os.path.getsize(full) > 0:
        try:
            with open(full, "rb") as fh:
                head = fh.read(len(SQLITE_MAGIC))
        except OSError as exc:
            return "%s: %s cannot be read: %s" % (name, path, exc.strerror)
        if head != SQLITE_MAGIC:
            return "%s: %s is not a rollout state file (not an SQLite database)" % (name, path)
    return None


def check_task_file(name, path, base_dir=None):
    """An error text, or None: ``path`` must be an existing YAML file holding a list of tasks."""
    if not isinstance(path, str) or not path:
        return "%s: the tasks driver needs a task file (e.g. -e %s=update.yml)" % (name, name)
    full = os.path.expanduser(path)
    if not os.path.isabs(full) and base_dir:
        full = os.path.join(base_dir, full)
    if not os.path.isfile(full):
        return "%s: no such file: %s" % (name, path)
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
        return None
    try:
        with open(full) as fh:
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return "%s: %s is not valid YAML: %s" % (name, path, first)
    if data is not None and not isinstance(data, list):
        return "%s: %s must hold a list of tasks, not a %s" % (name, path, type(data).__name__)
    return None


HOOK_POINTS = ("before_wave", "after_wave", "on_success", "on_failure", "on_pause")


def _check_hooks(value, errors, base_dir=None):
    """rollout_hooks: a mapping of hook points to task files that exist."""
    unknown = sorted(str(k) for k in value if k not in HOOK_POINTS)
    if unknown:
        errors.append("rollout_hooks: unknown hook point%s %s (one of %s)" % (
            "s" if len(unknown) > 1 else "", ", ".join(unknown), ", ".join(HOOK_POINTS)))
    for point in HOOK_POINTS:
        path = value.get(point)
        if path in (None, ""):
            continue
        error = check_task_file("rollout_hooks.%s" % point, path, base_dir)
        if error:
            errors.append(error)


def _check_states(name, value, errors):
    if not isinstance(value, list) or not value:
        errors.append("%s: must be a non-empty list of cognitive states (%s)" % (name, ", ".join(COGNITIVE_STATES)))
        return
    bad = [v for v in value if v not in COGNITIVE_STATES]
    if bad:
        errors.append("%s: unknown cognitive state %s (one of %s)" % (name, ", ".join(repr(b) for b in bad[:5]),
                                                                      ", ".join(COGNITIVE_STATES)))


def _check_warning_codes(name, value, errors):
    """``rollout_blocking_warnings``: a list (maybe empty) of warning codes such as adapters_failed_to_load."""
    if not isinstance(value, list):
        errors.append("%s: must be a list of warning codes (e.g. [adapters_failed_to_load]), got %s"
                      % (name, _shown(name, value)))
        return
    bad = [v for v in value if not isinstance(v, str) or not WARNING_CODE_RE.match(v)]
    if bad:
        errors.append("%s: %s is not a warning code (letters, digits and '_', e.g. adapters_failed_to_load)"
                      % (name, ", ".join(_shown(name, b) for b in bad[:5])))


def _check_canary(value, errors):
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
    errors.append("%s: must be a count >= 1 or a list of cohorts, got %s" % (name, _shown(name, value)))


def validate_inputs(kind, values, spec=None, agents=None, base_dir=None):
    """Check every input of a ``kind`` (rollout, shutdown, wakeup) playbook before anyone is asked.

    ``values``: the variables as templated (only those defined); ``spec``: the role's argument
    spec options (``{name: {type, choices, elements}}``) for the types; ``agents``: the play's
    hosts as dicts (``name``, ``agent_url``); ``base_dir``: where
    relative paths start (the directory ansible-playbook runs in). Returns the typed values;
    raises :class:`InputError` naming every bad variable, in one line.
    """
    if kind not in KINDS:
        raise InputError("kind: must be one of %s, got %r" % (", ".join(KINDS), kind))
    full_spec = dict(POLICY_SPEC)
    full_spec.update(spec or {})
    v, errors = typed_values(full_spec, values)
    bad = set(e.split(":", 1)[0] for e in errors)

    def have(name):
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
                          % _shown("rollout_target_version", target))
    if kind == "shutdown" and not str(v.get("shutdown_reason") or "").strip() and "shutdown_reason" not in bad:
        errors.append("shutdown_reason: is required (the text the agent deliberates on, e.g. -e shutdown_reason=maintenance)")
    if have("rollout_deployment_id") and v["rollout_deployment_id"] and not ID_RE.match(str(v["rollout_deployment_id"])):
        errors.append("rollout_deployment_id: only letters, digits, '.', '_' and '-' (at most 128), got %s"
                      % _shown("rollout_deployment_id", v["rollout_deployment_id"]))
    if have("rollout_token") and CONTROL_RE.search(str(v["rollout_token"])):
        errors.append("rollout_token: contains a line break or control character (value not shown)")
    if have("rollout_analysis") and v["rollout_analysis"]:
        from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import normalize_checks
        errors.extend(normalize_checks(v["rollout_analysis"])[1])
    for name in ("rollout_analysis", "rollout_telemetry_check"):
        if have(name) and v[name] and kind == "rollout" and v.get("rollout_strategy") == "blue_green":
            errors.append("%s: not run for blue-green candidates yet (the tasks, docker and none drivers' waves of "
                          "the other strategies)" % name)
    if have("rollout_hooks") and v["rollout_hooks"]:
        _check_hooks(v["rollout_hooks"], errors, base_dir)
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


def check_agents(agents):
    """Errors about the play's hosts: a missing or bad ``agent_url``, two hosts with one URL, no hosts."""
    errors = []
    if not agents:
        return ["rollout_hosts: the group has no agents (after --limit): nothing to roll out"]
    seen = {}
    dupes = []
    for a in agents:
        error = check_url("agent_url", a.get("agent_url"), a["name"])
        if error:
            errors.append(error)
            continue
        key = url_key(a["agent_url"])
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


def variable_names(text):
    """The ``rollout_*``, ``shutdown_*`` and ``wakeup_*`` names a YAML file of the collection mentions outside
    comments: the variables its roles declare (argument specs, defaults), set (vars, set_fact, register) or read
    (``| default(...)``), and those its argument specs document (what the tasks driver passes to a task file)."""
    names = set()
    for line in text.splitlines():
        if not line.lstrip().startswith("#"):
            names.update(VARIABLE_RE.findall(line))
    return names


def extra_names(value):
    """``rollout_extra_vars`` as a list of names (or shell patterns): ``(names, error)``."""
    if value is None or value == "":
        return [], None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return [], "%s: must be a list of variable names, got %s" % (EXTRA_VARS, _shown(EXTRA_VARS, value))
    return list(value), None


def unknown_variables(names, known, extra=()):
    """The names with one of :data:`PREFIXES` that are neither ``known`` nor listed in ``extra`` (names or shell
    patterns such as ``rollout_my_*``), sorted."""
    return sorted(n for n in set(names)
                  if n.startswith(PREFIXES) and n not in known and not any(fnmatch.fnmatchcase(n, e) for e in extra))


def unknown_error(name, known, hosts=None):
    """``NAME: unknown variable (did you mean CLOSEST?)``, naming the hosts when it is a variable of some hosts
    only."""
    where = " of host %s" % _names(sorted(hosts)) if hosts else ""
    close = closest_name(name, known)
    hint = "did you mean %s?" % close if close else "no variable of agentfleet.rollout is like it: docs/variables.md"
    return "%s: unknown variable%s (%s)" % (name, where, hint)


def closest_name(name, known):
    """The known name closest to ``name`` (difflib), or None. The prefixes alone make any two names look alike
    (rollout_analysis and rollout_canary), so the parts after them must be alike too."""
    def rest(n):
        return n.split("_", 1)[1] if "_" in n else n

    for candidate in difflib.get_close_matches(name, sorted(known), n=5, cutoff=0.6):
        if difflib.SequenceMatcher(None, rest(name), rest(candidate)).ratio() >= 0.6:
            return candidate
    return None


def check_unknown(play_names, known, extra=(), host_names=None):
    """Errors for the unknown variables (:func:`unknown_variables`) among ``play_names`` (the play's variables)
    and ``host_names`` (``{host: names}``, each agent's own; a name also in the play's is reported once), with
    the escape hatch as the last words; an empty list when all are known."""
    errors = [unknown_error(n, known) for n in unknown_variables(play_names, known, extra)]
    by_name = {}
    for host, names in sorted((host_names or {}).items()):
        for name in unknown_variables(set(names) - set(play_names), known, extra):
            by_name.setdefault(name, []).append(host)
    errors.extend(unknown_error(n, known, hosts) for n, hosts in sorted(by_name.items()))
    if errors:
        errors[-1] += "; list your own variables with %s in %s" % (
            "this prefix" if len(errors) == 1 else "these prefixes", EXTRA_VARS)
    return errors


def _names(names):
    return ", ".join(names[:10]) + (" and %d more" % (len(names) - 10) if len(names) > 10 else "")


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


def check_options(params):
    """The same ranges for a module's own options (a module used outside the playbooks): raises
    :class:`InputError` naming the option."""
    errors = []
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


def run_validate(params, spec=None, check_mode=False):
    """The ``rollout_validate`` module's engine: ``{"changed": False, "valid": True, "checked": [names]}``."""
    values = params.get("variables") or {}
    validate_inputs(params["kind"], values, spec=spec, agents=params.get("agents"),
                    base_dir=params.get("base_dir") or os.getcwd())
    return {"changed": False, "valid": True, "checked": sorted(values), "msg": "all inputs are valid"}
