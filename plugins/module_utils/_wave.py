# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One rollout wave, top-down: ask -> observe the stop -> update -> gate -> judge -> record (-> close).

The rollout playbooks run one wave per Ansible batch (``serial`` built from
the plan). The ``none`` driver (the agent's own supervisor starts the new
version) runs a wave in one call (``phase: all``); the ``tasks`` and ``docker``
drivers run the user's tasks on each agent's host in rounds, each agent as soon
as it has stopped (``phase: ask``, then ``phase: round`` until ``done``:
:mod:`._pipeline`). Between phases the data travels through the rollout state
and the ``round`` the role passes back.

Every call returns the same keys in every outcome (:func:`shape`: check mode,
paused, stopped, an error, an empty wave): the wave's summary
(``rollout_wave_summary``), one outcome per agent of the batch for its
PLAY RECAP row (``outcomes``), whether the rollout halts (``halt``), the lines
to show (``lines``) and, when the rollout ends with this wave, the closed
deployment (``rollout_deployment_summary``). :func:`._rollout.verdict.judge_wave` is the
one verdict; the playbook only acts on it.

With a :class:`._run.Run` (the action plugin passes one) every request and
every wait first checks that the ``ansible-playbook`` that started the wave
still lives and that this run's lease generation is current; a wave whose
controller died stops at once, and one stopped by SIGTERM/SIGINT ends in
:func:`._wave_stop.interrupted` (the deployment ``interrupted``, agents that stopped for
us started again).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from typing import Any
from typing import Callable
from typing import Dict
from typing import List
from typing import Optional
from typing import Sequence

from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import analyse_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._analysis import measurement_auditor
from ansible_collections.agentfleet.rollout.plugins.module_utils._bluegreen import run_phase as blue_green_phase
from ansible_collections.agentfleet.rollout.plugins.module_utils._bluegreen import TASKS_PHASES as BLUE_GREEN_PHASES
from ansible_collections.agentfleet.rollout.plugins.module_utils._bluegreen import validate_blue_green
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import client_from_params
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import token_secrets
from ansible_collections.agentfleet.rollout.plugins.module_utils._common import validate_agent_urls
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import gate_agents
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import validate_gate_params
from ansible_collections.agentfleet.rollout.plugins.module_utils._outcome import planned_outcomes
from ansible_collections.agentfleet.rollout.plugins.module_utils._pipeline import Ctx
from ansible_collections.agentfleet.rollout.plugins.module_utils._pipeline import ROUND_PHASES
from ansible_collections.agentfleet.rollout.plugins.module_utils._pipeline import run_pipeline
from ansible_collections.agentfleet.rollout.plugins.module_utils._policy import awaiting_promotion_note
from ansible_collections.agentfleet.rollout.plugins.module_utils._policy import progress_deadline_at
from ansible_collections.agentfleet.rollout.plugins.module_utils._policy import remaining
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import append_audit
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.ask import ask_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.ask import observe_consent
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.deployment import close_deployment
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.errors import RolloutError
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.verdict import judge_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.verdict import record_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.verdict import wave_counts
from ansible_collections.agentfleet.rollout.plugins.module_utils._run import Interrupted
from ansible_collections.agentfleet.rollout.plugins.module_utils._run import OperatorStop
from ansible_collections.agentfleet.rollout.plugins.module_utils._run import RunStopped
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StaleRunError
from ansible_collections.agentfleet.rollout.plugins.module_utils._state_backend import open_store
from ansible_collections.agentfleet.rollout.plugins.module_utils._validate import check_options
from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import WaveOptions
from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_stop import aborted
from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_stop import agent_outcomes
from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_stop import interrupted
from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_stop import operator_guard
from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_stop import operator_stopped
from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_stop import stopped
from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_stop import ungated

if TYPE_CHECKING:
    from typing import Mapping

    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
    from ansible_collections.agentfleet.rollout.plugins.module_utils._run import Run
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateStore
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Agent
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Progress
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Record
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Stepped

PHASES = ("all", "ask", "round", "finish")
CONTROLLER_DRIVERS = ("none",)
DRIVERS = ("none", "tasks", "docker")


def _members(wave: Record) -> List[Agent]:
    members: List[Agent] = wave.get("members") or []
    for m in members:
        if not isinstance(m, dict) or not m.get("name"):
            raise ValueError("wave: every member needs a name")
    validate_agent_urls(members)
    return members


def validate_wave_options(opts: WaveOptions) -> None:
    """Every check that needs no agent, before anything is asked."""
    params = opts.as_params()
    check_options(params)
    validate_gate_params(params)
    if not 0 <= opts.stop_timeout < 10 ** 6:
        raise ValueError("stop_timeout must be between 0 and 1000000 seconds, got %r" % opts.stop_timeout)
    if opts.strategy == "blue_green":
        validate_blue_green(opts)
    elif opts.phase in BLUE_GREEN_PHASES[:2]:
        raise ValueError("phase=%s is a phase of a blue-green wave (strategy blue_green)" % opts.phase)
    elif opts.phase == "all" and opts.driver not in CONTROLLER_DRIVERS:
        raise ValueError("phase=all needs the driver none (the agent's supervisor starts it); the %s driver runs the "
                         "phases ask and round" % opts.driver)
    elif opts.phase in ROUND_PHASES and opts.driver in CONTROLLER_DRIVERS:
        raise ValueError("phase=%s is a phase of the tasks and docker drivers; the none driver runs phase all"
                         % opts.phase)
    elif opts.phase == "finish":
        raise ValueError("phase=finish is a phase of a blue-green wave (strategy blue_green)")


def _progress_fn(progress: Progress, wave: Record, what: str) -> Progress:
    if progress is None:
        return None
    prefix = "wave %s %s: %s: " % (wave["index"], wave["name"], what)
    return lambda text: progress(prefix + text)


def _check_plan(opts: WaveOptions) -> Record:
    """Check mode: what each agent of the wave would go through; nobody is asked."""
    wave = opts.wave
    outcomes = planned_outcomes([m["name"] for m in wave.get("members") or []], "would be asked in wave %s of %s (%s)"
                                % (wave["index"], opts.wave_count, wave["name"]))
    return {"changed": True, "msg": "check mode: nobody is asked", "outcomes": outcomes, "halt": False,
            "halt_reason": None, "phase_done": "check", "line": "check mode: wave %s of %s (%s), %d agents: nobody is "
            "asked" % (wave["index"], opts.wave_count, wave["name"], len(outcomes)),
            "plan_lines": ["%s: %s" % (name, o["detail"]) for name, o in outcomes.items()]}


# Every key a rollout_wave call returns, with its value when an outcome has nothing to say (one shape)
SHAPE: Dict[str, Any] = {
    "changed": False, "failed": False, "msg": "", "line": "", "lines": [], "phase_done": "", "done": True,
    "halt": False, "halt_reason": None, "paused": False, "interrupted": False, "error": None, "passed": None,
    "asked": [], "counts": {}, "reason": None, "round": {}, "update_hosts": [], "update_map": {},
    "needs_revert": False, "revert_hosts": [], "gate": {}, "outcomes": {}, "plan_lines": [], "table": [],
    "notes": [], "revert_note": None, "promotion_note": None, "rollout_wave_summary": {},
    "rollout_deployment_summary": {}, "candidate_hosts": [], "promote_hosts": [], "discard_hosts": [],
    "candidate_map": {}, "go_on": False, "asked_ahead": [],
}
# internal keys of the engine's steps that do not leave it
_INTERNAL = ("update_agents", "revert_agents", "revert_map", "summary", "stalled", "progress_deadline_at")


def shape(out: Mapping[str, Any]) -> Record:
    """The one shape of a rollout_wave result: every key of SHAPE, and ``lines``, what the play shows."""
    result = dict(SHAPE)
    result.update((k, v) for k, v in out.items() if k not in _INTERNAL)
    for key, default in SHAPE.items():
        if result.get(key) is None and default is not None:
            result[key] = type(default)() if isinstance(default, (list, dict)) else default
    if not result["line"]:
        result["line"] = result["msg"] or ""
    if not result["msg"]:
        result["msg"] = result["line"]
    if not result["lines"]:
        summary = result["rollout_deployment_summary"]
        lines = [result["line"]] if result["line"] else []
        if result["halt_reason"] and result["halt_reason"] != result["line"]:
            lines.append(result["halt_reason"])
        lines += result["plan_lines"] + result["table"] + result["notes"]
        lines += [n for n in (result["revert_note"], result["promotion_note"]) if n]
        if summary.get("summary_table"):
            lines += list(summary["summary_table"]) + ["report: %s" % summary.get("report_path")]
        result["lines"] = lines
    return result


def run_wave(params: Mapping[str, Any], check_mode: bool = False, clock: Callable[[], float] = time.time,
             monotonic: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
             progress: Progress = None, run: Optional[Run] = None) -> Record:
    """Run ``params["phase"]`` of one wave; see the documentation of the ``rollout_wave`` module.

    ``params``: the module's parameters, read once into a :class:`._wave_options.WaveOptions`.
    ``run`` (a :class:`._run.Run`): the wave checks it before every request and wait (its
    ``sleep`` replaces ``sleep``), fences the state with the lease generation it starts under,
    and after SIGTERM/SIGINT returns the interrupted wave (``interrupted: true``).
    """
    opts = WaveOptions.from_params(params)
    validate_wave_options(opts)
    if check_mode:
        return shape(_check_plan(opts))
    out = shape(_run_wave(opts, clock, monotonic, sleep, progress, run))
    # a next wave follows this one (rollout_wait_between_waves waits for it)
    out["go_on"] = bool(out["done"] and not out["halt"] and not opts.last and not out["failed"])
    return out


def _run_wave(opts: WaveOptions, clock: Callable[[], float], monotonic: Callable[[], float],
              sleep: Callable[[float], None], progress: Progress, run: Optional[Run]) -> Record:
    wave = opts.wave
    members = _members(wave)
    deployment_id = opts.deployment_id
    secrets = token_secrets(opts.as_params())
    if run is not None:
        sleep = run.sleep
        progress = run.progress(progress)
    with open_store(opts.state_path) as store, client_from_params(opts.as_params(), run=run) as client:
        dep = store.get_deployment(deployment_id)
        if dep is None:
            raise RolloutError("unknown deployment %s in %s" % (deployment_id, opts.state_path))
        # a wave under way goes on to its end whatever an operator did meanwhile (the pipeline stops a failed one
        # after starting again the agents that stopped for us; a paused one ends its wave, the next is held)
        finishing = opts.phase == "round" or (opts.phase == "finish" and opts.update_hosts)
        if dep["status"] != "running" and not finishing:
            # an earlier wave halted the rollout (or an error closed it, or an operator paused it): the later
            # batches ask nobody and give their agents an "ok, not asked" result. (meta: end_play would end the
            # play instead, but then ansible-playbook exits 0 even though the halted wave's failed agents failed.)
            out = stopped(store, dep, members)
            if dep["status"] == "paused":
                # this run stops driving the deployment: resume runs the rest. The first batch that sees the pause
                # says so (``paused``: a notification, the on_pause hook); the later ones only hold their agents
                out["paused"] = dep.get("owner_pid") is not None
                store.release_lease(deployment_id)
                if progress is not None:
                    progress(out["line"])
            return out
        if run is None:
            try:
                return _run_phase(store, client, opts, dep, wave, members, secrets, clock, monotonic, sleep,
                                  progress, _Steps())
            except (RunStopped, StaleRunError):
                raise
            except Exception as exc:
                raise aborted(store, client, opts, dep, wave, members, exc) from exc
        # from here on a newer run of this deployment (a rerun after a kill, a takeover) fences this one off
        store.fence(deployment_id, dep["generation"])
        run.fence = operator_guard(store, run, opts.phase)
        try:
            run.check()
            return _run_phase(store, client, opts, dep, wave, members, secrets, clock, monotonic, sleep, progress,
                              run)
        except OperatorStop as exc:
            if progress is not None:
                progress("deployment %s %s: stopping in wave %s (%s) during %s" % (
                    deployment_id, exc.status, wave["index"], wave["name"], run.step))
            return operator_stopped(store, client, run, opts, dep, wave, members, secrets, exc)
        except Interrupted as exc:
            return interrupted(store, client, run, opts, dep, wave, members, secrets, str(exc))
        except (RunStopped, StaleRunError):
            raise
        except Exception as exc:
            with run.cleaning_up():
                raise aborted(store, client, opts, dep, wave, members, exc) from exc


class _Steps:
    """Where a wave is (``step``) when no run watches it."""

    step: Optional[str] = None


def _run_phase(store: StateStore, client: AgentClient, opts: WaveOptions, dep: Record, wave: Record,
               members: List[Agent], secrets: Sequence[str], clock: Callable[[], float], monotonic: Callable[[], float],
               sleep: Callable[[float], None], progress: Progress, run: Stepped) -> Record:
    phase = opts.phase
    deployment_id = dep["deployment_id"]
    target = dep["target_version"]
    out: Record = {"changed": True}
    # agents started by an earlier run of this wave that ended before its verdict (killed, interrupted)
    earlier = ungated(store, dep, wave, members) if phase == "all" else []
    if opts.strategy == "blue_green":
        return blue_green_phase(store, client, opts, dep, wave, members, secrets, out, monotonic, sleep, progress, run,
                                ask_and_observe=lambda store, client, opts, dep, wave, members, secrets, out: _ask_and_observe(
                                    store, client, opts, dep, wave, members, secrets, out, monotonic, sleep, clock, progress),
                                finish=_finish)
    if phase in ROUND_PHASES:
        ctx = Ctx(store, client, opts, dep, wave, members, secrets, clock, monotonic, sleep, progress, run,
                  finish=_finish, passes=_passes)
        return run_pipeline(ctx, out)
    # phase all: the none driver, whose supervisor starts each agent that stopped
    deadline_at = progress_deadline_at(clock(), opts.progress_deadline)
    run.step = "asking the agents and waiting for them to stop"
    # the stop watch's answers of agents it found back on the new version: the gate's first probe of each
    seeds: Dict[str, Record] = {}
    updating = _ask_and_observe(store, client, opts, dep, wave, members, secrets, out, monotonic, sleep,
                                clock, progress, deadline_at, seeds)
    stalled = out.pop("stalled", None)
    names = [a["name"] for a in updating]
    store.set_results(deployment_id, [{"host": h, "result": "updated"} for h in names])
    # gated now, not started again (they run already)
    handed = updating + [a for a in earlier if a["name"] not in names]
    # gate the agents handed to the driver in this run, then judge the wave
    run.step = "the health gate"
    gate_opts, cut = opts.gate_cut(deadline_at, clock())
    gate: Record = gate_agents(client, handed, gate_opts.as_params(),
                               target if opts.health.require_target_version else None,
                               clock=monotonic, sleep=sleep, progress=_progress_fn(progress, wave, "health gate"),
                               seeds=seeds)
    if gate.get("warnings"):
        out.setdefault("warnings", []).extend(gate["warnings"])
    gate = analyse_wave(gate, client, handed, opts.as_params(), store, dep, wave, clock=monotonic, sleep=sleep,
                        progress=None if progress is None else (
                            lambda text: progress("wave %s %s: %s" % (wave["index"], wave["name"], text))),
                        audit=measurement_auditor(opts.audit_path, dep, wave, secrets))
    if cut and not gate["passed"]:
        stalled = stalled or opts.stall_note("%d of %d updated agents not stable" % (
            len(gate["unstable"]), gate["total"]))
    if stalled:
        # no progress within rollout_progress_deadline: the wave fails (judge_wave), and with it the deployment
        gate.update(blocked=stalled, reason=stalled, passed=False)
    if opts.auto_revert and any(a.get("version") for a in handed) and not _passes(store, opts, dep, wave, gate):
        out["revert_note"] = "driver none cannot start a previous version: nothing reverted (the agents' supervisor " \
                             "runs what it is given)"
    out["needs_revert"] = False
    out = _finish(store, opts, dep, wave, members, handed, gate, [], secrets, out)
    _ask_ahead(store, client, opts, dep, wave, secrets, out, clock, sleep, progress, run)
    return out


def _ask_ahead(store: StateStore, client: AgentClient, opts: WaveOptions, dep: Record, wave: Record,
               secrets: Sequence[str], out: Record, clock: Callable[[], float], sleep: Callable[[float], None],
               progress: Progress, run: Stepped) -> None:
    """The none driver: once this wave passed, ask the plan's next wave (``next_wave``) before returning.

    Its agents then drain and restart while Ansible writes this wave's PLAY RECAP rows (a forked worker per
    agent, ~9 ms each, that no wave could overlap otherwise); its own call finds every answer recorded
    (nobody is asked twice) and watches the agents stop, gates and judges them. Nothing is asked ahead when
    this wave failed, the deployment no longer runs (an operator paused or failed it meanwhile), or this is
    the last wave; the role leaves ``next_wave`` out when something happens between the waves (a hook, a
    wait). An error asking ahead is the next wave's: its call asks again whoever has no recorded answer.
    """
    nxt = opts.next_wave
    if not nxt or out.get("halt") or opts.last or opts.driver not in CONTROLLER_DRIVERS:
        return
    now = store.get_deployment(dep["deployment_id"])
    if now is None or now["status"] != "running":
        return
    members = _members(nxt)
    run.step = "asking the next wave ahead"
    try:
        asked = ask_wave(store, client, opts, dep, nxt, members, secrets, clock, sleep, reask_until=None)
    except (RunStopped, StaleRunError):
        raise
    except Exception as exc:  # pylint: disable=broad-exception-caught
        out.setdefault("notes", []).append("wave %s (%s): asking it ahead failed (%s); its own call asks again" % (
            nxt["index"], nxt["name"], exc))
        return
    out["asked_ahead"] = asked["asked"]
    note = "wave %s (%s) asked ahead as wave %s passed: %d of %d agents asked" % (
        nxt["index"], nxt["name"], wave["index"], len(asked["asked"]), len(members))
    out.setdefault("notes", []).append(note)
    if progress is not None:
        progress(note)


def _ask_and_observe(store: StateStore, client: AgentClient, opts: WaveOptions, dep: Record, wave: Record,
                     members: List[Agent], secrets: Sequence[str], out: Record, monotonic: Callable[[], float],
                     sleep: Callable[[float], None], clock: Callable[[], float], progress: Progress,
                     deadline_at: Optional[float] = None, seeds: Optional[Dict[str, Record]] = None) -> List[Agent]:
    """Ask the wave (never twice), then watch every agent that consented until it has stopped.

    Returns the members the update driver may act on: those that stopped, and those
    handed to a driver in an earlier run of this deployment whose update or gate failed.
    ``seeds`` (a dict, filled in): name -> the health answer that showed an agent back already
    (its supervisor restarted it), for the gate (:func:`._health.gate_agents`).
    """
    deployment_id = dep["deployment_id"]
    asked = ask_wave(store, client, opts, dep, wave, members, secrets, clock, sleep, opts.reask_until)
    reason = asked["reason"]
    stop_timeout, cut = remaining(deadline_at, clock(), opts.stop_timeout)
    cut_short = opts.stall_note("still not stopped") if cut else None
    ready, observed = observe_consent(
        client, store, deployment_id, asked["consenting_agents"], dep["target_version"], stop_timeout,
        poll_interval=opts.health.poll_interval, supervisor_restarts=opts.driver == "none", clock=monotonic,
        sleep=sleep, progress=_progress_fn(progress, wave, "waiting for agents to stop"), cut_short=cut_short)
    if cut_short and len(ready) < len(asked["consenting_agents"]):
        out["stalled"] = opts.stall_note("%d of %d agents that were asked had not stopped" % (
            len(asked["consenting_agents"]) - len(ready), len(asked["consenting_agents"])))
    if seeds is not None:
        seeds.update((name, o["answer"]) for name, o in observed.items() if o.get("answer"))
    if observed and opts.audit_path:
        append_audit(opts.audit_path, [
            {"event": "consent_observed", "deployment_id": deployment_id, "host": name, "outcome": o["outcome"],
             "detail": o["detail"], "drained_after": o["drained_at"], "stopped_after": o["stopped_at"]}
            for name, o in observed.items()], secrets)
    out.update(asked=asked["asked"], reason=reason, counts=asked["counts"])
    handed: List[Agent] = ready + asked["retry_agents"]
    return handed


def _passes(store: StateStore, opts: WaveOptions, dep: Record, wave: Record, gate: Record) -> bool:
    """Would the wave pass with this gate? (the one verdict, before anything is recorded)"""
    counts = wave_counts(store, dep["deployment_id"], wave["index"])
    gated = set(gate.get("agents") or {})
    stable = set(gate.get("stable") or [])
    # agents gated now count by the gate, the others by what is recorded
    healthy = counts["healthy"] - len(gated - stable)
    passed: bool = judge_wave(dict(counts, healthy=healthy), opts.health.success_threshold,
                              blocked=bool(gate.get("blocked")))[0]
    return passed


def _finish(store: StateStore, opts: WaveOptions, dep: Record, wave: Record, members: List[Agent],
            handed: List[Agent], gate: Record, reverted_hosts: List[str], secrets: Sequence[str], out: Record) -> Record:
    deployment_id = dep["deployment_id"]
    handed_names = [a["name"] for a in handed]
    summary = record_wave(store, deployment_id, wave["index"], wave["name"], opts.wave_count, dep["target_version"],
                          gate, handed_names, reverted_hosts, success_threshold=opts.health.success_threshold,
                          audit_path=opts.audit_path, secrets=secrets)
    halt = not summary["passed"]
    out.update(phase_done="finish", summary=summary, line=summary["line"], passed=summary["passed"],
               halt=halt, halt_reason=summary["halt_reason"], gate=gate,
               table=(gate or {}).get("table") or [] if halt else [],
               rollout_wave_summary=dict(deployment_id=deployment_id, **dict((k, summary.get(k)) for k in (
                   "wave", "wave_count", "name", "size", "accepted", "declined", "deferred", "rejected", "unreachable",
                   "skipped", "healthy", "updated", "failed", "elapsed", "passed", "halt_reason", "line", "analysis"))),
               outcomes=agent_outcomes(store, deployment_id, members, handed_names))
    if not halt and opts.last and wave.get("await_promotion"):
        # auto_promote false: the canary wave passed; the deployment waits for agentfleet.rollout.promote
        out["promotion_note"] = awaiting_promotion_note(deployment_id, wave)
        out["rollout_deployment_summary"] = close_deployment(
            store, deployment_id, halt_reason=out["promotion_note"], report_path=opts.report_path,
            audit_path=opts.audit_path, secrets=secrets, status="staged")
    elif halt or opts.last:
        out["rollout_deployment_summary"] = close_deployment(
            store, deployment_id, halt_reason=summary["halt_reason"] if halt else None,
            report_path=opts.report_path, audit_path=opts.audit_path, secrets=secrets)
    return out
