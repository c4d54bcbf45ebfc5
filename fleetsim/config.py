"""Fleet configuration: behaviour settings, agent groups, occurrence naming."""

from __future__ import annotations

import json
from pathlib import Path

# Every behaviour setting an occurrence has, with its default.
DEFAULTS: dict = {
    "version": "1.0.0",
    "status": "healthy",              # health status once booted
    "cognitive_state": "work",        # cognitive state once booted
    "decision": "accept",             # accept|defer|reject|busy|noanswer|error
    "decision_reason": None,
    "defer_seconds": 30.0,
    "decision_after_defer": "accept",
    "busy_retry_after_ms": 1000,
    "busy_times": None,               # None: busy forever; N: busy N times then decision_after_busy
    "decision_after_busy": "accept",
    "boot_seconds": 0.0,
    "unhealthy_after_update": False,
    "unhealthy_mode": "degraded",     # degraded|stuck_wakeup|critical|wakeup_error
    "crash_after_update": False,
    "crash_seconds": 1.0,
    "slow_ms": 0,
    "garbage": False,
    "down": False,
    "shutdown_exit_seconds": 0.2,
    "stuck_on_shutdown": False,
    "old_version_agent": False,
    # agent-level (shared) deliberation for scope=all_occurrences; None -> use `decision`
    "deliberation": None,
    "deliberation_reason": None,
    "deliberation_defer_seconds": None,   # None -> defer_seconds
    "deliberation_after_defer": "accept",
    "shared_decision_max_age": 3600.0,
    # how a shutdown request is answered: explicit (data.decision at once) or ciris (200 "initiated",
    # the decision shows only in behaviour: drain and exit, or go on working)
    "consent": "explicit",
    "decide_seconds": 0.5,            # ciris: deliberation time before the decision acts
    "drain_seconds": 2.0,             # ciris: cognitive_state shutdown for this long after accepting, then exit
    "force_drain_seconds": 0.2,       # ciris: the drain after accepting a request with force: true
    "reject_token": False,            # every shutdown request answers 401, whatever the token (a rotated token)
    # the health's data.warnings once booted, as a CIRIS agent lists them: codes or {code, message, severity}
    "warnings": [],
    # the control port's /metrics (Prometheus text): each working occurrence handles tasks_per_second tasks; a
    # share error_rate of them fail (error_rates: a version -> its own share, e.g. a bad release) and a share
    # deferral_rate is deferred; task latency latency_seconds
    "tasks_per_second": 10.0,
    "error_rate": 0.01,
    "error_rates": {},
    "deferral_rate": 0.05,
    "latency_seconds": 0.2,
    # GET /v1/telemetry/overview's recent_incidents (CIRIS: WARNING/ERROR/CRITICAL incidents of the last hour):
    # incidents, or incidents_by_version[version] for a version of its own (a release that logs errors)
    "incidents": 0,
    "incidents_by_version": {},
}

DECISIONS = ("accept", "defer", "reject", "busy", "noanswer", "error")
CHOICES = {
    "decision": DECISIONS,
    "decision_after_defer": DECISIONS,
    "decision_after_busy": DECISIONS,
    "deliberation": DECISIONS + (None,),
    "deliberation_after_defer": DECISIONS,
    "unhealthy_mode": ("degraded", "stuck_wakeup", "critical", "wakeup_error"),
    "status": ("healthy", "degraded", "critical", "initializing"),
    "cognitive_state": ("wakeup", "work", "play", "solitude", "dream", "shutdown", "wakeup_error"),
    "consent": ("explicit", "ciris"),
}
# settings that must be a number >= 0
NON_NEGATIVE = ("defer_seconds", "busy_retry_after_ms", "boot_seconds", "crash_seconds", "slow_ms",
                "shutdown_exit_seconds", "shared_decision_max_age", "decide_seconds", "drain_seconds",
                "force_drain_seconds", "tasks_per_second", "error_rate", "deferral_rate", "latency_seconds",
                "incidents")
TOP_LEVEL_KEYS = {"defaults", "agents", "backlog"}

GROUP_KEYS = {"agent_id", "occurrences", "count", "name_prefix", "start", "width", "overrides", "names"}


class ConfigError(ValueError):
    pass


def check_settings(settings: dict, where: str = "settings") -> dict:
    if not isinstance(settings, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(settings).__name__}")
    for key, value in settings.items():
        if key not in DEFAULTS:
            raise ConfigError(f"{where}: unknown setting {key!r}")
        if key in CHOICES and value not in CHOICES[key]:
            raise ConfigError(f"{where}: {key}={value!r} not one of {CHOICES[key]}")
        if key in NON_NEGATIVE and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ConfigError(f"{where}: {key}={value!r} must be a number >= 0")
        if key == "version":
            settings[key] = str(value)
        if key == "warnings":
            settings[key] = check_warnings(value, f"{where}: warnings")
        if key == "incidents_by_version":
            if not isinstance(value, dict) or any(isinstance(n, bool) or not isinstance(n, int) or n < 0
                                                  for n in value.values()):
                raise ConfigError(f"{where}: incidents_by_version must map versions to counts >= 0, got {value!r}")
            settings[key] = dict((str(k), int(n)) for k, n in value.items())
        if key == "error_rates":
            if not isinstance(value, dict) or any(isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r <= 1
                                                  for r in value.values()):
                raise ConfigError(f"{where}: error_rates must map versions to shares between 0 and 1, got {value!r}")
            settings[key] = dict((str(k), float(r)) for k, r in value.items())
    return settings


WARNING_SEVERITIES = ("info", "warning", "error")


def check_warnings(value, where: str = "warnings") -> list:
    """The ``warnings`` setting as CIRIS's SystemWarning dicts ``{code, message, severity, action_url}``: a list of
    codes (severity warning) or of mappings with a ``code``."""
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of warning codes or {{code, message, severity}}, got {value!r}")
    out = []
    for item in value:
        if isinstance(item, str) and item:
            item = {"code": item}
        if not isinstance(item, dict) or not isinstance(item.get("code"), str) or not item["code"]:
            raise ConfigError(f"{where}: {item!r} is neither a code nor a mapping with a code")
        unknown = set(item) - {"code", "message", "severity", "action_url"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} in {item!r}")
        severity = item.get("severity", "warning")
        if severity not in WARNING_SEVERITIES:
            raise ConfigError(f"{where}: severity {severity!r} not one of {WARNING_SEVERITIES}")
        out.append({"code": item["code"], "message": item.get("message") or item["code"].replace("_", " "),
                    "severity": severity, "action_url": item.get("action_url")})
    return out


def check_backlog(value, where: str = "backlog"):
    """The listen backlog of the agent listeners: None (the default, 256) or an integer >= 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: expected an integer >= 1, got {value!r}")
    return value


def fleet_options(config: dict | None) -> dict:
    """Fleet-wide options of a config mapping that are not behaviour settings: ``{"backlog": int|None}``."""
    return {"backlog": check_backlog((config or {}).get("backlog"))}


class OccurrenceSpec:
    __slots__ = ("name", "agent_id", "occurrence_id", "settings", "multi")

    def __init__(self, name, agent_id, occurrence_id, settings, multi):
        self.name = name
        self.agent_id = agent_id
        self.occurrence_id = occurrence_id
        self.settings = settings
        self.multi = multi


def occurrence_ids(spec) -> list:
    if spec is None:
        return ["default"]
    if isinstance(spec, int):
        if spec < 1:
            raise ConfigError("occurrences must be >= 1")
        return ["default"] + [f"occ-{i}" for i in range(1, spec)]
    if isinstance(spec, list) and spec:
        return [str(x) for x in spec]
    raise ConfigError(f"occurrences: expected a count or a non-empty list, got {spec!r}")


def load_file(path) -> dict:
    text = Path(path).read_text()
    if str(path).endswith(".json"):
        return json.loads(text)
    import yaml

    return yaml.safe_load(text) or {}


def build_fleet(config: dict | None, count: int | None = None, agents: int | None = None,
                version: str | None = None, consent: str | None = None) -> list:
    """Expand a config mapping (plus CLI --count/--agents) into OccurrenceSpecs.

    ``version`` and ``consent`` (the CLI's --version / --consent) replace the built-in defaults;
    the config's ``defaults``, group settings and overrides still win over them.
    """
    config = dict(config or {})
    unknown = set(config) - TOP_LEVEL_KEYS
    if unknown:
        raise ConfigError(f"unknown top-level keys: {sorted(unknown)}")
    defaults = dict(DEFAULTS)
    if version is not None:
        defaults["version"] = str(version)
    if consent is not None:
        defaults.update(check_settings({"consent": consent}, "--consent"))
    defaults.update(check_settings(dict(config.get("defaults") or {}), "defaults"))
    groups = list(config.get("agents") or [])
    if count is not None or agents is not None:
        if agents:
            total = count if count is not None else agents
            per, extra = divmod(total, agents)
            width = max(3, len(str(agents - 1)))
            for i in range(agents):
                n = per + (1 if i < extra else 0)
                if n:
                    groups.append({"agent_id": f"agent-{i:0{width}d}", "occurrences": n})
        elif count:
            groups.append({"count": count, "name_prefix": "agent-"})
    specs: list = []
    seen: set = set()
    for gi, group in enumerate(groups):
        where = f"agents[{gi}]"
        if not isinstance(group, dict):
            raise ConfigError(f"{where}: expected a mapping")
        gsettings = {k: v for k, v in group.items() if k not in GROUP_KEYS}
        check_settings(gsettings, where)
        overrides = group.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise ConfigError(f"{where}.overrides: expected a mapping")
        used_overrides: set = set()
        if "agent_id" in group:
            agent_ids = [str(group["agent_id"])]
            if "count" in group:
                raise ConfigError(f"{where}: use either agent_id or count")
        elif "names" in group:
            agent_ids = [str(x) for x in group["names"]]
        elif "count" in group:
            n = int(group["count"])
            prefix = str(group.get("name_prefix", "agent-"))
            start = int(group.get("start", 0))
            width = int(group.get("width", max(3, len(str(start + n - 1)))))
            agent_ids = [f"{prefix}{i:0{width}d}" for i in range(start, start + n)]
        else:
            raise ConfigError(f"{where}: needs agent_id, names or count")
        occs = occurrence_ids(group.get("occurrences"))
        multi = len(occs) > 1
        for agent_id in agent_ids:
            for occ in occs:
                name = f"{agent_id}-{occ}" if multi else agent_id
                if name in seen:
                    raise ConfigError(f"{where}: duplicate occurrence name {name!r}")
                seen.add(name)
                settings = dict(defaults)
                settings.update(gsettings)
                for key in (agent_id, occ, name) if multi else (agent_id, name):
                    if key in overrides:
                        used_overrides.add(key)
                        settings.update(check_settings(dict(overrides[key]), f"{where}.overrides.{key}"))
                specs.append(OccurrenceSpec(name, agent_id, occ, settings, multi))
        missing = set(overrides) - used_overrides
        if missing:
            raise ConfigError(f"{where}.overrides: no such occurrence(s): {sorted(missing)}")
    return specs
