# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting for a wave: a pure readiness tracker plus a clock you can inject.

:class:`WaveTracker` holds, per agent, since when it has been continuously
ready and whether it has become *stable* (ready on every probe for
``min_stable_time``). :func:`wait_for_wave` drives any check function
(health probe, "has shut down" probe, ...) through it until the wave is
decided (polling through :func:`._waiter.poll`); it never sleeps by itself except through the injected
``sleep``.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING
from typing import Any
from typing import Callable
from typing import Dict
from typing import Iterable
from typing import List
from typing import Mapping
from typing import Optional
from typing import Sequence
from typing import Set
from typing import Tuple

from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DEFAULT_BLOCKING_WARNINGS
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import blocking_warning
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import probe_result
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import is_wakeup_error
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import version_matches
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import Deadline
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import adaptive_interval
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import poll

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient

# what a check says about one agent: (ready, cause, info); a check probes agents: names -> {name: answer}
Answer = Tuple[bool, Optional[str], Dict[str, Any]]
Check = Callable[[List[str]], Mapping[str, Answer]]

# the health gate's options, shared by health_gate and rollout_wave (doc fragment agentfleet.rollout.gate)
GATE_OPTIONS: Dict[str, Dict[str, Any]] = dict(
    expected_states=dict(type="list", elements="str", default=["work"]),
    min_healthy_time=dict(type="float", default=10.0),
    healthy_deadline=dict(type="float", default=300.0),
    poll_interval=dict(type="float", default=1.0),
    grace=dict(type="float"),
    health_check=dict(type="str", default="checks", choices=["checks", "agent_states"]),
    fail_fast_after=dict(type="float", default=10.0),
    blocking_warnings=dict(type="list", elements="str", default=list(DEFAULT_BLOCKING_WARNINGS)),
)
# the health gate counts an agent stable only after this many healthy probes in a row, however short
# min_healthy_time is: with min_healthy_time 0 one healthy probe was enough, and a flapping agent or one
# that crashed right after starting counted as updated
MIN_HEALTHY_PROBES = 3
# the probes in a row span the stability window the user asked for (min_healthy_time), at most poll_interval
# apart and at least this far: with min_healthy_time 0 the streak takes 2 x 0.05 s, not 2 x poll_interval
MIN_STREAK_SPACING = 0.05
# agents due within this many seconds of each other are probed in one round
DUE_SLACK = 0.01


def streak_spacing(min_stable_time: float, poll_interval: float, min_probes: int = MIN_HEALTHY_PROBES) -> float:
    """How far apart the ready probes of a streak are: they span ``min_stable_time`` (the window the user asked
    for) when that is shorter than ``min_probes - 1`` poll intervals, never closer than MIN_STREAK_SPACING; else
    ``poll_interval``."""
    if min_probes < 2:
        return poll_interval
    return min(poll_interval, max(MIN_STREAK_SPACING, max(0.0, float(min_stable_time)) / (min_probes - 1)))


class WaveTracker:
    """Pure state of a wave being watched; feed it observations, ask it verdicts."""

    def __init__(self, names: Iterable[str], min_stable_time: float = 0.0, success_threshold: float = 1.0,
                 min_probes: int = 1, fail_fast_after: Optional[float] = None, fail_on_critical: bool = True) -> None:
        """``fail_fast_after``: None, or the seconds after which an agent that reports ``status: critical`` on
        every probe (``fail_on_critical``) is failed at once; with it, an agent reporting ``cognitive_state``
        wakeup_error is failed on that probe. A failed agent is not probed again (:meth:`watching`)."""
        self.names: List[str] = list(names)
        self.fail_fast_after = None if fail_fast_after is None else max(0.0, float(fail_fast_after))
        self.fail_on_critical = fail_on_critical
        self.failed: Dict[str, str] = {}
        self.critical_since: Dict[str, float] = {}
        self.min_stable_time = max(0.0, float(min_stable_time))
        self.min_probes = max(1, int(min_probes))
        self.streak: Dict[str, int] = {n: 0 for n in self.names}
        self.success_threshold = float(success_threshold)
        self.ready_since: Dict[str, Optional[float]] = {n: None for n in self.names}
        self.stable_at: Dict[str, float] = {}
        self.last_cause: Dict[str, Optional[str]] = {n: "not probed yet" for n in self.names}
        self.last_info: Dict[str, Dict[str, Any]] = {n: {} for n in self.names}
        self.probes: Dict[str, int] = {n: 0 for n in self.names}
        self.seen_ready: Set[str] = set()

    def streak_spacing(self, poll_interval: float) -> float:
        """:func:`streak_spacing` of this wave."""
        return streak_spacing(self.min_stable_time, poll_interval, self.min_probes)

    @property
    def required(self) -> int:
        """How many agents must be stable for the wave to pass."""
        if not self.names:
            return 0
        return int(math.ceil(self.success_threshold * len(self.names) - 1e-9))

    def pending(self) -> List[str]:
        """The agents not stable (failed fast ones too)."""
        return [n for n in self.names if n not in self.stable_at]

    def watching(self) -> List[str]:
        """The agents still worth probing: neither stable nor failed fast."""
        return [n for n in self.names if n not in self.stable_at and n not in self.failed]

    def hopeless(self) -> bool:
        """Whether too many agents failed fast for the wave to reach its threshold."""
        return self.stable_count() + len(self.watching()) < self.required

    def _fail_fast(self, name: str, info: Dict[str, Any], now: float) -> Optional[str]:
        """The cause ``name`` fails at once for, from its answer ``info`` at ``now``, or None."""
        if self.fail_fast_after is None or not info:
            return None
        if is_wakeup_error(info):
            return "cognitive_state wakeup_error (a rejected wakeup step: it does not recover by waiting)"
        if not self.fail_on_critical or info.get("status") != "critical":
            self.critical_since.pop(name, None)
            return None
        since = self.critical_since.setdefault(name, now)
        if now - since < self.fail_fast_after:
            return None
        return "status critical for %g s: %s" % (self.fail_fast_after, critical_detail(info))

    def observe(self, name: str, ready: bool, cause: Optional[str], info: Dict[str, Any], now: float) -> None:
        """Record one probe of ``name`` at time ``now``."""
        self.probes[name] += 1
        if info:
            self.last_info[name] = info
        if name in self.stable_at or name in self.failed:
            return
        fatal = self._fail_fast(name, info, now)
        if fatal:
            self.failed[name] = fatal
            self.ready_since[name] = None
            self.streak[name] = 0
            self.last_cause[name] = fatal
            return
        if ready:
            self.seen_ready.add(name)
            self.last_cause[name] = None
            self.streak[name] += 1
            since = self.ready_since[name]
            if since is None:
                since = self.ready_since[name] = now
            if now - since >= self.min_stable_time and self.streak[name] >= self.min_probes:
                self.stable_at[name] = now
            elif self.streak[name] < self.min_probes:
                self.last_cause[name] = "healthy on %d of the %d probes in a row needed" % (self.streak[name],
                                                                                            self.min_probes)
        else:
            self.ready_since[name] = None
            self.streak[name] = 0
            self.last_cause[name] = cause or "not ready"

    def stable_count(self) -> int:
        return len(self.stable_at)

    def threshold_met(self) -> bool:
        return self.stable_count() >= self.required

    def all_stable(self) -> bool:
        return not self.pending()

    def next_due(self, now: float, poll_interval: float) -> float:
        """When the next probe is worth doing: at the poll interval, or sooner when
        an agent's stability window ends before then."""
        due = now + poll_interval
        for name in self.watching():
            since = self.ready_since[name]
            if since is not None and since + self.min_stable_time > now:
                # its window ends before the next poll (once the window is over, the probes in a row
                # it still needs come at the poll interval, never back to back)
                due = min(due, since + self.min_stable_time)
        return max(due, now)

    def due(self, name: str, now: float, poll_interval: float, fast_elapsed: Optional[float] = None) -> float:
        """When ``name``, just probed at ``now``, is worth probing again.

        In a streak of ready probes: :meth:`streak_spacing` later (the probes in a row span the stability
        window, so an agent flapping within it is not counted stable), or when the window ends if sooner. Not ready:
        at the poll interval; with ``fast_elapsed`` (seconds since the wait began) and never seen ready
        yet, sooner (:func:`._waiter.adaptive_interval`): an agent that comes up is seen soon after.
        """
        since = self.ready_since[name]
        if since is not None:
            due = now + self.streak_spacing(poll_interval)
            if since + self.min_stable_time > now:
                due = min(due, since + self.min_stable_time)
            return due
        if fast_elapsed is not None and name not in self.seen_ready:
            return now + adaptive_interval(fast_elapsed, poll_interval)
        return now + poll_interval

    def summary(self) -> Dict[str, Dict[str, Any]]:
        agents: Dict[str, Dict[str, Any]] = {}
        for n in self.names:
            entry = {"stable": n in self.stable_at, "cause": None if n in self.stable_at else self.last_cause[n],
                     "probes": self.probes[n], "failed_fast": n in self.failed}
            entry.update({k: v for k, v in self.last_info[n].items() if k in ("version", "status", "cognitive_state")})
            agents[n] = entry
        return agents


def critical_detail(info: Optional[Dict[str, Any]]) -> str:
    """Why an agent reports ``status: critical``, from its warnings: ``adapters failed to load`` (the codes of
    its error warnings, or of all of them, in words), or ``no warning reported``."""
    warnings = (info or {}).get("warnings") or []
    errors = [w for w in warnings if w.get("severity") == "error"] or warnings
    codes: List[str] = []
    for w in errors:
        words = w["code"].replace("_", " ")
        if words not in codes:
            codes.append(words)
    return ", ".join(codes) if codes else "no warning reported"


def wait_for_wave(names: Iterable[str], check: Check, min_stable_time: float = 0.0, success_threshold: float = 1.0,
                  deadline: float = 300.0, poll_interval: float = 1.0, grace: Optional[float] = None,
                  clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                  progress: Optional[Callable[[str], None]] = None, progress_every: float = 5.0, min_probes: int = 1,
                  fast_first: bool = False, fail_fast_after: Optional[float] = None,
                  fail_on_critical: bool = True, seeded: Optional[Mapping[str, Tuple[float, Answer]]] = None,
                  ) -> Dict[str, Any]:
    """Probe ``names`` with ``check(names) -> {name: (ready, cause, info)}`` until decided.

    The wait ends at the first of: every agent stable; ``deadline`` seconds
    passed; the threshold met and ``grace`` seconds passed since it was
    first met (default: ``min_stable_time``), so one broken agent does not
    hold a passing wave until the deadline. Returns a result dict with
    ``passed``, ``stable``, ``unstable`` (name -> last cause), ``agents``,
    ``required``, ``elapsed`` and ``reason``. ``progress(text)``, when given, is
    called every ``progress_every`` seconds with a one-line status. ``min_probes``:
    an agent is stable only after that many ready probes in a row (and ``min_stable_time``).
    Each agent is probed when it is due (:meth:`WaveTracker.due`); ``fast_first``: an agent not yet
    seen ready is probed again sooner than ``poll_interval`` early in the wait. ``fail_fast_after`` and
    ``fail_on_critical``: see :class:`WaveTracker`; the wait also ends once no agent is left to watch or too
    many failed fast for the threshold (``failed_fast``: name -> cause in the result). ``seeded``: name ->
    ``(when, answer)``, a probe of that agent made before the wait (by ``clock``, not later than now), counted as
    the first of its probes; it is next probed when that probe makes it due.
    """
    tracker = WaveTracker(names, min_stable_time, success_threshold, min_probes, fail_fast_after, fail_on_critical)
    grace = tracker.min_stable_time if grace is None else max(0.0, float(grace))
    wait = Deadline(deadline, clock)
    start = wait.start
    # since the threshold was first met: the wait ends when its grace has passed
    met: Optional[Deadline] = None
    reason = "deadline reached"
    last_progress = start
    due_at = dict((n, start) for n in tracker.names)
    for name, (when, (ready, cause, info)) in (seeded or {}).items():
        if name in due_at:
            when = min(when, start)
            tracker.observe(name, ready, cause, info, when)
            due_at[name] = tracker.due(name, when, poll_interval, 0.0 if fast_first else None)

    def fetch() -> Tuple[List[str], Mapping[str, Answer]]:
        now = clock()
        # the agents due now (or within DUE_SLACK: probed together rather than in rounds of a few)
        todo = [n for n in tracker.watching() if due_at[n] <= now + DUE_SLACK]
        return todo, (check(todo) if todo else {})

    def decided(probed: Tuple[List[str], Mapping[str, Answer]], now: float) -> bool:
        nonlocal met, reason
        todo, answers = probed
        for name in todo:
            ready, cause, info = answers.get(name, (False, "no answer", {}))
            tracker.observe(name, ready, cause, info, now)
            due_at[name] = tracker.due(name, now, poll_interval, (now - start) if fast_first else None)
        if tracker.all_stable():
            reason = "all stable"
            return True
        if tracker.failed and (tracker.hopeless() or not tracker.watching()):
            causes = "; ".join(sorted(set(tracker.failed.values()))[:3])
            reason = "failed fast: %d of %d agents (%s)" % (len(tracker.failed), len(tracker.names), causes)
            return True
        if tracker.threshold_met():
            if met is None:
                met = Deadline(grace, clock, start=now)
            if met.expired(now):
                reason = "threshold met"
                return True
        return False

    def pause(now: float) -> float:
        nonlocal last_progress
        if progress is not None and now - last_progress >= progress_every:
            last_progress = now
            progress(progress_line(tracker, now - start))
        due = min(due_at[n] for n in tracker.watching())
        if met is not None:
            due = min(due, met.end)
        return due - now

    poll(fetch, decided, wait, pause, sleep)
    agents = tracker.summary()
    return {
        "passed": tracker.threshold_met(),
        "reason": reason,
        "stable": [n for n in tracker.names if n in tracker.stable_at],
        "unstable": {n: tracker.last_cause[n] for n in tracker.pending()},
        "failed_fast": dict((n, tracker.failed[n]) for n in tracker.names if n in tracker.failed),
        "agents": agents,
        "total": len(tracker.names),
        "stable_count": tracker.stable_count(),
        "required": tracker.required,
        "elapsed": round(clock() - start, 3),
    }


def progress_line(tracker: WaveTracker, elapsed: float) -> str:
    """``14/20 healthy, 3 starting, 2 draining, 1 failing, 45s`` from a tracker's last probes."""
    starting = draining = failing = 0
    for name in tracker.pending():
        state = (tracker.last_info.get(name) or {}).get("cognitive_state")
        if tracker.ready_since[name] is not None or state in ("wakeup",) or (tracker.last_info.get(name) or {}).get("status") == "initializing":
            starting += 1
        elif state == "shutdown":
            draining += 1
        else:
            failing += 1
    return "%d/%d healthy, %d starting, %d draining, %d not answering or unhealthy, %ds" % (
        tracker.stable_count(), len(tracker.names), starting, draining, failing, elapsed)


def agent_state_ready(info: Optional[Dict[str, Any]], expected_states: Sequence[str] = ("work",),
                      target_version: Optional[str] = None) -> Tuple[bool, Optional[str]]:
    """``health_check: agent_states``: ``(ready, cause)`` from what the agent reports about itself only.

    It answered with a state (``info`` from the probe), finished initializing, and its
    ``cognitive_state`` is expected; its ``status`` (the health checks' verdict) is not looked at.
    """
    info = info or {}
    state = info.get("cognitive_state")
    if state is None:
        return False, "no cognitive_state reported"
    if info.get("initialization_complete") is False:
        return False, "initializing (initialization_complete false)"
    if state not in expected_states:
        return False, "cognitive_state %s (expected %s)" % (state, "|".join(expected_states))
    if target_version is not None and not version_matches(info.get("version"), target_version):
        return False, "version %s (expected %s)" % (info.get("version"), target_version)
    return True, None


def health_check_fn(client: AgentClient, urls: Mapping[str, str], expected_states: Iterable[str] = ("work",),
                    target_version: Optional[str] = None, health_check: str = "checks",
                    blocking_warnings: Iterable[str] = ()) -> Check:
    """A ``check`` for :func:`wait_for_wave` that probes agents' health concurrently.

    ``urls`` maps name -> agent_url. ``health_check``: ``checks`` (the probe's verdict: status healthy
    and an expected state) or ``agent_states`` (:func:`agent_state_ready`). Either way an agent that
    reports one of the ``blocking_warnings`` codes is not ready.
    """
    expected = tuple(expected_states)
    return probing_check(client, urls, expected, target_version,
                         health_judge(expected, target_version, health_check, blocking_warnings))


def probing_check(client: AgentClient, urls: Mapping[str, str], expected_states: Sequence[str],
                  target_version: Optional[str], judge: Callable[[Dict[str, Any]], Answer]) -> Check:
    """:func:`health_check_fn`'s ``check`` with its ``judge`` given."""

    def check(names: List[str]) -> Dict[str, Answer]:
        results = client.fan_out(lambda n: (n, client.probe(urls[n], expected_states, target_version)), names)
        return {n: judge(r) for n, r in results}

    return check


def health_judge(expected_states: Iterable[str] = ("work",), target_version: Optional[str] = None,
                 health_check: str = "checks", blocking_warnings: Iterable[str] = ()) -> Callable[[Dict[str, Any]], Answer]:
    """How :func:`health_check_fn` judges one probe (``AgentClient.probe``'s result): ``(ready, cause, info)``."""
    expected = tuple(expected_states)
    blocking_warnings = tuple(blocking_warnings)

    def judge(r: Dict[str, Any]) -> Answer:
        if health_check == "agent_states" and r.get("reachable"):
            ready, cause = agent_state_ready(r["info"], expected, target_version)
        else:
            ready, cause = r["healthy"], r["cause"]
        if ready:
            blocked = blocking_warning(r["info"], blocking_warnings)
            if blocked:
                return False, blocked, r["info"]
        return ready, cause, r["info"]

    return judge


def format_table(result: Mapping[str, Any], limit: int = 50) -> List[str]:
    """Per-agent table of causes for agents that did not become stable."""
    lines = []
    for name, cause in list(result["unstable"].items())[:limit]:
        info = result["agents"].get(name, {})
        lines.append("%-32s %-10s %-12s %s" % (name, info.get("version", "-"), info.get("cognitive_state", "-"), cause))
    more = len(result["unstable"]) - limit
    if more > 0:
        lines.append("... and %d more" % more)
    if lines:
        lines.insert(0, "%-32s %-10s %-12s %s" % ("agent", "version", "state", "cause"))
    return lines


def short_window_warnings(min_healthy_time: float, poll_interval: float) -> List[str]:
    """A warning when ``min_healthy_time`` is under a second: the gate's probes in a row span only that."""
    if min_healthy_time >= 1.0:
        return []
    spacing = streak_spacing(min_healthy_time, poll_interval)
    return ["min_healthy_time %g s: an agent counts as healthy after %d healthy probes in a row (%g s apart), "
            "so one that fails later than that is counted updated; set rollout_min_healthy_time to the time a bad "
            "version needs to show (10 s or more)" % (min_healthy_time, MIN_HEALTHY_PROBES, spacing)]


def validate_gate_params(params: Mapping[str, Any]) -> None:
    threshold = params.get("success_threshold")
    if threshold is None or not 0.0 <= threshold <= 1.0:
        raise ValueError("success_threshold must be between 0 and 1, got %r" % threshold)
    for key in ("min_healthy_time", "healthy_deadline", "poll_interval", "fail_fast_after"):
        if params.get(key) is not None and params[key] < 0:
            raise ValueError("%s must not be negative" % key)


def gate_agents(client: AgentClient, agents: Sequence[Mapping[str, Any]], params: Mapping[str, Any],
                target_version: Optional[str] = None, clock: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep,
                progress: Optional[Callable[[str], None]] = None,
                seeds: Optional[Mapping[str, Mapping[str, Any]]] = None) -> Dict[str, Any]:
    """Wait for ``agents`` to be stable (the health gate); returns the waiter's result plus a cause table.

    ``seeds``: name -> ``{"status", "payload", "at"}``, a health answer of that agent already had (the stop watch's,
    which saw it back on the new version; ``at`` by ``clock``): judged as a probe would be and counted as the
    first probe of its streak, so a wave of agents back at once needs one request less per agent.

    Without ``grace`` every agent stays watched until it is stable or ``healthy_deadline`` ends (stragglers are
    not given up when the threshold is met); an agent is failed after its deadline, or at once when it reports
    ``cognitive_state`` wakeup_error or (``health_check: checks``) ``status: critical`` on every probe for
    ``fail_fast_after`` seconds. An agent reporting one of ``blocking_warnings`` is not healthy.
    """
    grace = params.get("grace")
    if grace is None:
        grace = params["healthy_deadline"]
    urls = dict((a["name"], a["agent_url"]) for a in agents)
    health_check = params.get("health_check") or "checks"
    blocking = params.get("blocking_warnings")
    expected = tuple(params.get("expected_states") or ["work"])
    judge = health_judge(expected, target_version, health_check,
                         DEFAULT_BLOCKING_WARNINGS if blocking is None else blocking)
    check = probing_check(client, urls, expected, target_version, judge)
    fail_fast_after = params.get("fail_fast_after")
    poll_interval = params["poll_interval"] or 0.5
    # (wait_for_wave leaves out a seed of an agent it does not gate)
    seeded = {name: (float(seed["at"]), judge(probe_result(seed["status"], seed["payload"], expected, target_version)))
              for name, seed in (seeds or {}).items()}
    result = wait_for_wave(
        [a["name"] for a in agents], check, min_stable_time=params["min_healthy_time"],
        success_threshold=params["success_threshold"], deadline=params["healthy_deadline"],
        poll_interval=poll_interval, grace=grace, clock=clock, sleep=sleep, progress=progress,
        min_probes=MIN_HEALTHY_PROBES, fast_first=True,
        fail_fast_after=10.0 if fail_fast_after is None else fail_fast_after,
        fail_on_critical=health_check == "checks", seeded=seeded,
    )
    result["warnings"] = short_window_warnings(params["min_healthy_time"], poll_interval) if agents else []
    result["table"] = format_table(result)
    result["ratio"] = round(result["stable_count"] / float(result["total"]), 4) if result["total"] else 1.0
    return result
