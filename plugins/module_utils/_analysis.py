# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Analysis checks (``rollout_analysis``): after a wave's agents are stable, measure what matters -- a
Prometheus query, any JSON endpoint, or each agent's own endpoint -- and judge the wave by it, the way Argo
Rollouts' AnalysisTemplate does.

Each check has a ``name``, one source (``prometheus: {url, query}``, ``http: {url, method, headers, body,
json_path}`` or ``agent: {path, json_path}``), ``success_condition`` and/or ``failure_condition``, ``interval``
(s), ``count``, ``failure_limit``, ``inconclusive_limit``, ``initial_delay`` (s) and ``dry_run``. The query, URL
and body may name ``${version}``, ``${deployment_id}``, ``${wave}``, ``${cohort}`` and ``${agents_regex}``.

A measurement is ``successful`` (the success condition holds, or only a failure condition is given and it does
not), ``failed`` (the failure condition holds, or only a success condition is given and it does not) or
``inconclusive`` (no data, an error, or neither condition). A check measures until it has ``count`` successful
measurements, more than ``failure_limit`` failed ones (the wave fails) or more than ``inconclusive_limit``
inconclusive ones (the deployment pauses: ``resume`` measures again). A dry-run check is measured and reported
and never decides. A vector of several samples meets a condition when every sample does.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING
from typing import Any
from typing import Callable
from typing import Dict
from typing import List
from typing import Literal
from typing import Mapping
from typing import Optional
from typing import Sequence
from typing import Tuple
from typing import TypeVar
from typing import Union
from typing import overload
from urllib.parse import urlencode

try:
    import jmespath
    HAS_JMESPATH = True
except ImportError:  # pragma: no cover - jmespath comes with botocore (requirements.txt)
    jmespath = None
    HAS_JMESPATH = False

try:
    import urllib3
except ImportError:  # pragma: no cover - urllib3 is in requirements.txt
    urllib3 = None  # type: ignore[assignment]  # the optional import's fallback

if TYPE_CHECKING:
    from typing import Protocol

    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateStore

    class MeasurementSource(Protocol):
        """What :func:`run_analysis` measures with: :class:`Sources`, or a test's stand-in."""

        def measure(self, check: Check, values: Mapping[str, Any], agents: Sequence[Agent]) -> Measured:
            ...

# a check of ``rollout_analysis`` (normalized: defaults, ``source``, parsed conditions), an agent (a wave member),
# a measurement's samples and error
Check = Dict[str, Any]
Agent = Dict[str, Any]
Measured = Tuple[Optional[List[float]], Optional[str]]
# a parsed condition: alternatives (or) of clauses (and), each ``(left, op, right)`` with "result" or a number
Operand = Union[Literal["result"], float]
Condition = List[List[Tuple[Operand, str, Operand]]]
_T = TypeVar("_T")

SUCCESSFUL = "successful"
FAILED = "failed"
INCONCLUSIVE = "inconclusive"
SOURCES = ("prometheus", "http", "agent")
PLACEHOLDERS = ("version", "deployment_id", "wave", "cohort", "agents_regex")
CHECK_KEYS = ("name", "success_condition", "failure_condition", "interval", "count", "failure_limit",
              "inconclusive_limit", "initial_delay", "dry_run") + SOURCES
DEFAULTS: Dict[str, Any] = {"interval": 10.0, "count": 1, "failure_limit": 0, "inconclusive_limit": 0,
                            "initial_delay": 0.0, "dry_run": False}
# one request of a measurement at most
REQUEST_TIMEOUT = 10.0
_CLAUSE = re.compile(r"^\s*(result|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(<=|>=|==|!=|<|>)\s*"
                     r"(result|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$")
_OPS: Dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


class AnalysisError(ValueError):
    """A check that cannot be run as written (named by its field)."""


def parse_condition(text: object, field: str = "condition") -> Condition:
    """``result < 0.05 and result >= 0`` -> a list of alternatives (``or``), each a list of clauses (``and``),
    each ``(left, op, right)`` with ``"result"`` or a float."""
    if not isinstance(text, str) or not text.strip():
        raise AnalysisError("%s: must be a comparison of result with a number, e.g. 'result < 0.05'" % field)
    alternatives: Condition = []
    for alternative in re.split(r"\s+or\s+", text.strip()):
        clauses: List[Tuple[Operand, str, Operand]] = []
        for clause in re.split(r"\s+and\s+", alternative):
            match = _CLAUSE.match(clause)
            if not match or "result" not in (match.group(1), match.group(3)):
                raise AnalysisError("%s: cannot read %r: write comparisons of result with numbers (<, <=, >, >=, "
                                    "==, !=) joined with and / or, e.g. 'result < 0.05'" % (field, clause.strip()))
            left, op, right = match.groups()
            clauses.append((_operand(left), op, _operand(right)))
        alternatives.append(clauses)
    return alternatives


def _operand(text: str) -> Operand:
    """A clause's side: ``"result"`` or its number."""
    return "result" if text == "result" else float(text)


def holds(condition: Condition, value: float) -> bool:
    """Whether one number meets a parsed condition."""
    def side(x: Operand) -> float:
        return value if x == "result" else x
    return any(all(_OPS[op](side(a), side(b)) for a, op, b in clauses) for clauses in condition)


def normalize_checks(checks: object) -> Tuple[List[Check], List[str]]:
    """The checks with defaults, validated: ``(checks, errors)``; each error names its field."""
    out: List[Check] = []
    errors: List[str] = []
    if checks in (None, ""):
        return out, errors
    if not isinstance(checks, list):
        return out, ["rollout_analysis: must be a list of checks"]
    names = set()
    for i, raw in enumerate(checks):
        where = "rollout_analysis[%d]" % i
        if not isinstance(raw, dict):
            errors.append("%s: must be a mapping" % where)
            continue
        check = dict(DEFAULTS)
        check.update(raw)
        name = check.get("name")
        if not isinstance(name, str) or not name.strip():
            errors.append("%s.name: is required" % where)
            continue
        where = "rollout_analysis[%s]" % name
        if name in names:
            errors.append("%s.name: used twice" % where)
        names.add(name)
        unknown = sorted(str(k) for k in raw if k not in CHECK_KEYS)
        if unknown:
            plural = "s" if len(unknown) > 1 else ""
            errors.append("%s: unknown key%s %s (known: %s)" % (where, plural, ", ".join(unknown), ", ".join(CHECK_KEYS)))
        sources = [s for s in SOURCES if s in raw]
        if len(sources) != 1:
            errors.append("%s: needs exactly one source of %s" % (where, ", ".join(SOURCES)))
        else:
            errors.extend(_source_errors(where, sources[0], raw[sources[0]]))
            check["source"] = sources[0]
        if not check.get("success_condition") and not check.get("failure_condition"):
            errors.append("%s: needs success_condition or failure_condition" % where)
        for field in ("success_condition", "failure_condition"):
            if check.get(field):
                try:
                    check["_" + field] = parse_condition(check[field], "%s.%s" % (where, field))
                except AnalysisError as exc:
                    errors.append(str(exc))
        for field, kind, minimum in (("interval", float, 0.0), ("initial_delay", float, 0.0), ("count", int, 1),
                                     ("failure_limit", int, 0), ("inconclusive_limit", int, 0)):
            try:
                value = kind(check[field])
                if isinstance(check[field], bool) or value < minimum or (kind is int and value != float(check[field])):
                    raise ValueError()
                check[field] = value
            except (TypeError, ValueError):
                words = "a whole number" if kind is int else "a number"
                errors.append("%s.%s: must be %s >= %s, got %r" % (where, field, words, minimum, check[field]))
        if not isinstance(check["dry_run"], bool):
            errors.append("%s.dry_run: must be true or false" % where)
        out.append(check)
    return out, errors


def _source_errors(where: str, source: str, spec: object) -> List[str]:
    where = "%s.%s" % (where, source)
    if not isinstance(spec, dict):
        return ["%s: must be a mapping" % where]
    need = {"prometheus": ("url", "query"), "http": ("url",), "agent": ("path",)}[source]
    errors = ["%s.%s: is required" % (where, k) for k in need if not spec.get(k)]
    allowed = {"prometheus": ("url", "query", "headers"), "http": ("url", "method", "headers", "body", "json_path"),
               "agent": ("path", "json_path")}[source]
    errors += ["%s.%s: unknown key (known: %s)" % (where, k, ", ".join(allowed)) for k in spec if k not in allowed]
    for k in ("url",):
        if spec.get(k) and not str(spec[k]).startswith(("http://", "https://")):
            errors.append("%s.%s: must be an http:// or https:// URL" % (where, k))
    if source == "agent" and spec.get("path") and not str(spec["path"]).startswith("/"):
        errors.append("%s.path: must start with /" % where)
    if spec.get("json_path") and HAS_JMESPATH:
        try:
            jmespath.compile(spec["json_path"])
        except jmespath.exceptions.JMESPathError as exc:
            errors.append("%s.json_path: not a JMESPath expression: %s" % (where, str(exc).splitlines()[0]))
    return errors


@overload
def fill(text: str, values: Mapping[str, Any]) -> str:
    ...


@overload
def fill(text: _T, values: Mapping[str, Any]) -> _T:
    ...


def fill(text: object, values: Mapping[str, Any]) -> object:
    """``${name}`` placeholders of the wave filled in (the others left as they are)."""
    if not isinstance(text, str):
        return text
    return re.sub(r"\$\{(%s)\}" % "|".join(PLACEHOLDERS), lambda m: str(values[m.group(1)]), text)


def wave_values(dep: Mapping[str, Any], wave: Mapping[str, Any], agents: Sequence[Agent]) -> Dict[str, Any]:
    names = sorted(a["name"] for a in agents)
    return {"version": dep.get("target_version"), "deployment_id": dep.get("deployment_id"),
            "wave": wave.get("index"), "cohort": wave.get("name"),
            "agents_regex": "|".join(re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", n) for n in names)}


def _numbers(value: Any) -> Optional[List[float]]:
    """A number or a list of numbers from a JSON value (strings of numbers too), or None when there is none."""
    items = value if isinstance(value, list) else [value]
    out: List[float] = []
    for item in items:
        if isinstance(item, bool) or item is None:
            return None
        try:
            out.append(float(item))
        except (TypeError, ValueError):
            return None
    return out or None


class Sources:
    """Takes one measurement of a check: ``(samples or None, error or None)``."""

    def __init__(self, agent_client: Optional[AgentClient] = None, http: Optional[urllib3.PoolManager] = None) -> None:
        self.agent_client = agent_client
        self.http = http

    def _pool(self) -> urllib3.PoolManager:
        if self.http is None:
            self.http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=REQUEST_TIMEOUT))
        return self.http

    def measure(self, check: Check, values: Mapping[str, Any], agents: Sequence[Agent]) -> Measured:
        spec = check[check["source"]]
        try:
            if check["source"] == "prometheus":
                return self._prometheus(spec, values)
            if check["source"] == "http":
                return self._http(spec, values)
            return self._agent(spec, agents)
        except Exception as exc:  # pylint: disable=broad-except
            # a measurement's error is inconclusive, never a crash of the wave
            return None, "%s: %s" % (type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")

    def _json(self, method: str, url: str, headers: Optional[Mapping[str, str]] = None,
              body: Optional[bytes] = None) -> Tuple[int, Any]:
        resp = self._pool().request(method, url, body=body, headers=headers or {}, redirect=False)
        try:
            data = json.loads(resp.data.decode("utf-8")) if resp.data else None
        except ValueError:
            data = None
        return resp.status, data

    def _prometheus(self, spec: Mapping[str, Any], values: Mapping[str, Any]) -> Measured:
        url = fill(spec["url"], values).rstrip("/") + "/api/v1/query?" + urlencode({"query": fill(spec["query"], values)})
        status, data = self._json("GET", url, spec.get("headers"))
        if not isinstance(data, dict):
            return None, "Prometheus answered HTTP %d without JSON" % status
        if data.get("status") != "success":
            return None, "Prometheus: %s: %s" % (data.get("errorType") or "error", data.get("error") or "HTTP %d" % status)
        result = (data.get("data") or {}).get("result")
        kind = (data.get("data") or {}).get("resultType")
        if kind == "scalar":
            samples = _numbers(result[1]) if isinstance(result, list) and len(result) == 2 else None
        elif kind == "vector":
            samples = _numbers([r.get("value", [None, None])[1] for r in result or []])
        else:
            return None, "Prometheus: a %s result; the query must give a scalar or an instant vector" % kind
        if not samples:
            return None, "no data (the query's vector is empty)"
        return samples, None

    def _http(self, spec: Mapping[str, Any], values: Mapping[str, Any]) -> Measured:
        body = spec.get("body")
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        body = fill(body, values)
        headers = dict(spec.get("headers") or {})
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        status, data = self._json((spec.get("method") or "GET").upper(), fill(spec["url"], values), headers,
                                  body.encode("utf-8") if isinstance(body, str) else None)
        if not 200 <= status < 300:
            return None, "HTTP %d" % status
        return _pick(data, spec.get("json_path"))

    def _agent(self, spec: Mapping[str, Any], agents: Sequence[Agent]) -> Measured:
        client = self.agent_client
        if client is None:
            raise AnalysisError("an agent check needs the agents' client")

        def one(agent: Agent) -> Measured:
            resp = client.request("GET", agent["agent_url"].rstrip("/") + spec["path"])
            if not 200 <= resp.status < 300:
                return None, "%s: HTTP %d" % (agent["name"], resp.status)
            samples, error = _pick(resp.json, spec.get("json_path"))
            return samples, (("%s: %s" % (agent["name"], error)) if error else None)
        results = client.fan_out(one, agents)
        errors = [e for s, e in results if e]
        if errors:
            return None, "; ".join(errors[:3]) + (" and %d more" % (len(errors) - 3) if len(errors) > 3 else "")
        samples: List[float] = []
        for measured, dummy in results:
            if measured is None:
                # _pick gives samples or an error, never neither
                raise AnalysisError("an agent check measured neither samples nor an error")
            samples.extend(measured)
        return (samples or None), (None if samples else "no data")


def _pick(data: Any, json_path: Optional[str]) -> Measured:
    value = jmespath.search(json_path, data) if json_path else data
    samples = _numbers(value)
    if samples is None:
        return None, "no number at %s (got %s)" % (json_path or "the body", json.dumps(value)[:80])
    return samples, None


def judge(check: Check, samples: Optional[List[float]]) -> str:
    """One measurement's phase from its samples (every sample must meet a condition)."""
    if samples is None:
        return INCONCLUSIVE
    success, failure = check.get("_success_condition"), check.get("_failure_condition")
    if failure is not None and all(holds(failure, s) for s in samples):
        return FAILED
    if success is not None and all(holds(success, s) for s in samples):
        return SUCCESSFUL
    if success is not None and failure is None:
        return FAILED
    if failure is not None and success is None:
        return SUCCESSFUL
    return INCONCLUSIVE


def run_analysis(checks: List[Check], sources: MeasurementSource, values: Mapping[str, Any], agents: Sequence[Agent],
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 progress: Optional[Callable[[str], None]] = None,
                 on_measurement: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]:
    """Measure every check until it decides. Returns ``{phase, checks: {name: {...}}, measurements, reason}``
    with ``phase`` successful, failed or inconclusive (dry-run checks never decide)."""
    start = clock()
    state: Dict[str, Dict[str, Any]] = {}
    for c in checks:
        state[c["name"]] = {"check": c, "phase": None, "successful": 0, "failed": 0, "inconclusive": 0,
                            "next": start + c["initial_delay"], "measurements": [], "dry_run": c["dry_run"]}
    measurements: List[Dict[str, Any]] = []
    while True:
        pending = [s for s in state.values() if s["phase"] is None]
        if not pending:
            break
        now = clock()
        due = [s for s in pending if s["next"] <= now]
        if not due:
            sleep(max(0.0, min(s["next"] for s in pending) - now))
            continue
        for s in due:
            c = s["check"]
            samples, error = sources.measure(c, values, agents)
            phase = judge(c, samples)
            s[phase] += 1
            m = {"check": c["name"], "phase": phase, "value": (samples[0] if samples and len(samples) == 1 else samples),
                 "error": error, "at": round(clock() - start, 3), "dry_run": c["dry_run"]}
            s["measurements"].append(m)
            measurements.append(m)
            if on_measurement is not None:
                on_measurement(m)
            if progress is not None:
                progress("analysis %s: %s%s%s (%d/%d successful)" % (
                    c["name"], phase, (" value %s" % m["value"]) if samples else "", (" (%s)" % error) if error else "",
                    s["successful"], c["count"]))
            if s["failed"] > c["failure_limit"]:
                s["phase"] = FAILED
            elif s["inconclusive"] > c["inconclusive_limit"]:
                s["phase"] = INCONCLUSIVE
            elif s["successful"] >= c["count"]:
                s["phase"] = SUCCESSFUL
            s["next"] = clock() + c["interval"]
    deciding = [s for s in state.values() if not s["dry_run"]]
    failed = [s for s in deciding if s["phase"] == FAILED]
    inconclusive = [s for s in deciding if s["phase"] == INCONCLUSIVE]
    phase = FAILED if failed else INCONCLUSIVE if inconclusive else SUCCESSFUL
    reason = None
    if failed or inconclusive:
        worst = (failed or inconclusive)[0]
        last = worst["measurements"][-1]
        reason = "analysis %s %s: %d failed, %d inconclusive of %d measurements (last: %s%s)" % (
            worst["check"]["name"], worst["phase"], worst["failed"], worst["inconclusive"], len(worst["measurements"]),
            ("value %s" % last["value"]) if last["value"] is not None else "no value",
            (", %s" % last["error"]) if last["error"] else "")
    return {"phase": phase, "reason": reason, "measurements": measurements,
            "checks": dict((n, {"phase": s["phase"], "successful": s["successful"], "failed": s["failed"],
                                "inconclusive": s["inconclusive"], "dry_run": s["dry_run"]}) for n, s in state.items())}


# rollout_telemetry_check: CIRISManager's rule, no incident in each updated agent's last hour (CIRIS's
# GET /v1/telemetry/overview, data.recent_incidents: WARNING/ERROR/CRITICAL incidents of the last hour)
TELEMETRY_CHECK: Dict[str, Any] = {
    "name": "telemetry-incidents",
    "agent": {"path": "/v1/telemetry/overview", "json_path": "data.recent_incidents"},
    "success_condition": "result == 0",
    "count": 1,
}


def wave_checks(params: Mapping[str, Any]) -> List[Any]:
    """The wave's checks: ``analysis`` plus, with ``telemetry_check``, :data:`TELEMETRY_CHECK`."""
    checks = list(params.get("analysis") or [])
    if params.get("telemetry_check"):
        checks.append(dict(TELEMETRY_CHECK))
    return checks


def analyse_wave(gate: Dict[str, Any], client: AgentClient, agents: Sequence[Agent], params: Mapping[str, Any],
                 store: StateStore, dep: Mapping[str, Any], wave: Mapping[str, Any], clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, progress: Optional[Callable[[str], None]] = None,
                 audit: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]:
    """After a passed gate: run the wave's analysis checks (``params['analysis']``). Returns the gate with
    ``analysis`` (the result) and, when a check failed, ``passed`` false and the reason. An inconclusive
    analysis pauses the deployment (raises ``OperatorStop('paused')``: the wave's own handling starts nobody
    again who runs, and ``resume`` measures again)."""
    from ansible_collections.agentfleet.rollout.plugins.module_utils._run import OperatorStop

    checks, errors = normalize_checks(wave_checks(params))
    if not checks or not gate.get("passed") or not agents:
        return gate
    if errors:
        raise AnalysisError("; ".join(errors))
    result = run_analysis(checks, Sources(agent_client=client), wave_values(dep, wave, agents), agents, clock=clock,
                          sleep=sleep, progress=progress, on_measurement=audit)
    gate = dict(gate, analysis=result)
    if result["phase"] == FAILED:
        # the version failed its analysis: every agent of the wave that runs it counts as not stable, so the
        # wave records them failed (auto-revert takes them back as for a failed gate) and the job fails
        names = [a["name"] for a in agents]
        gate["agents"] = dict((n, dict((gate.get("agents") or {}).get(n) or {}, stable=False, cause=result["reason"]))
                              for n in names)
        gate.update(passed=False, blocked=result["reason"], reason=result["reason"], stable=[], stable_count=0,
                    unstable=dict((n, result["reason"]) for n in names))
    elif result["phase"] == INCONCLUSIVE:
        message = "%s: the deployment is paused (agentfleet.rollout.resume measures again)" % result["reason"]
        store.set_status(dep["deployment_id"], "paused", message, data={"actor": "analysis", "reason": result["reason"]},
                         only_from=("running",))
        raise OperatorStop("paused", message)
    return gate


def measurement_auditor(audit_path: Optional[str], dep: Mapping[str, Any], wave: Mapping[str, Any],
                        secrets: Sequence[str] = ()) -> Optional[Callable[[Dict[str, Any]], None]]:
    """Each measurement as a line of the audit log (``analysis_measurement``), or None without an audit log."""
    if not audit_path:
        return None
    from ansible_collections.agentfleet.rollout.plugins.module_utils._report import append_audit

    def audit(measurement: Dict[str, Any]) -> None:
        append_audit(audit_path, dict({"event": "analysis_measurement", "deployment_id": dep["deployment_id"],
                                       "wave": wave["index"], "cohort": wave["name"]}, **measurement), secrets)
    return audit
