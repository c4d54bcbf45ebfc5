# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One blue-green wave: candidates beside the primaries -> gate the candidates -> ask the primaries to
retire -> promote the candidates of those that stopped -> judge and record.

Nothing is asked before the wave's candidates are proven: a candidate that does not become stable is
discarded and its primary is never asked. Only an agent that consented and stopped is replaced by its
candidate (promotion); the candidate of one that declined, deferred or rejected is discarded and the
old primary goes on serving. So the fleet serves with at least its size throughout: a primary stops
only once its stable candidate is up beside it. Until promotion a candidate is not primary.

The ``tasks`` driver does it: the user's candidate tasks (``rollout_candidate_tasks``, which set
``rollout_candidate_url``) and retire tasks (``rollout_retire_tasks``, purpose ``promote`` or ``discard``) run
on each agent's host between the phases ``candidates``, ``retire`` and ``finish``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Callable
from typing import Dict
from typing import List
from typing import Sequence
from typing import Set
from typing import Tuple

from ansible_collections.agentfleet.rollout.plugins.module_utils._consent import OBSERVED_STOPPED
from ansible_collections.agentfleet.rollout.plugins.module_utils._consent import observe_stop
from ansible_collections.agentfleet.rollout.plugins.module_utils._consent import probe_liveness
from ansible_collections.agentfleet.rollout.plugins.module_utils._health import gate_agents
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import ACCEPT
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import PENDING
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import WORKING
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import version_matches
from ansible_collections.agentfleet.rollout.plugins.module_utils._pipeline import record_found_on_target
from ansible_collections.agentfleet.rollout.plugins.module_utils._rollout.deployment import close_deployment
from ansible_collections.agentfleet.rollout.plugins.module_utils._run import RunStopped
from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StaleRunError

if TYPE_CHECKING:
    from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import AgentClient
    from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateStore
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Agent
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import AskAndObserve
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Finish
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Progress
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Record
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import Stepped
    from ansible_collections.agentfleet.rollout.plugins.module_utils._wave_options import WaveOptions

BLUE_GREEN_DRIVERS = ("tasks",)
# the tasks driver's phases (the user's candidate and retire tasks run on each agent's host in between)
TASKS_PHASES = ("candidates", "retire", "finish")
# results that end an agent's part in a deployment: a rerun starts no candidate for it
SETTLED = ("updated", "skipped", "rejected", "declined")
# after an error while asking the primaries: how long those that consented are watched, so that each one that
# stops gets its candidate promoted in this run (never left down)
DRAIN_WAIT = 10.0


def validate_blue_green(opts: WaveOptions) -> None:
    if opts.driver not in BLUE_GREEN_DRIVERS:
        raise ValueError("driver: the blue-green strategy needs a driver that can start a candidate beside an agent "
                         "(%s), not %s" % (", ".join(BLUE_GREEN_DRIVERS), opts.driver))
    if opts.phase not in TASKS_PHASES:
        raise ValueError("phase: a blue-green wave with the tasks driver runs the phases %s (the task files of "
                         "agentfleet.rollout.blue_green), not %s" % (", ".join(TASKS_PHASES), opts.phase))


def run_phase(store: StateStore, client: AgentClient, opts: WaveOptions, dep: Record, wave: Record, members: List[Agent],
              secrets: Sequence[str], out: Record, monotonic: Callable[[], float], sleep: Callable[[float], None],
              progress: Progress, run: Stepped, ask_and_observe: AskAndObserve, finish: Finish) -> Record:
    """The blue-green wave's phase with the tasks driver: ``candidates``, ``retire`` and ``finish`` around the
    user's candidate and retire tasks."""
    validate_blue_green(opts)
    phase = opts.phase
    deployment_id = dep["deployment_id"]
    if phase == "candidates":
        rows = dict((r["host"], r) for r in store.agents(deployment_id, hosts=[m["name"] for m in members]))
        store.wave_started(deployment_id, wave["index"])
        promoted = _promoted_earlier(store, client, deployment_id, members, rows, dep["target_version"])
        todo = [m["name"] for m in members
                if (rows.get(m["name"]) or {}).get("result") not in SETTLED and m["name"] not in promoted]
        out.update(phase_done="candidates", candidate_hosts=todo)
        return out
    if phase == "retire":
        return _retire(store, client, opts, dep, wave, members, secrets, out, monotonic, sleep, progress, run,
                       ask_and_observe, finish)
    # finish: the retire tasks promoted (or failed to promote) the candidates of the agents that stopped
    failed = opts.update_failed or {}
    if failed:
        store.set_results(deployment_id, [{"host": h, "result": "failed", "detail": "candidate not promoted: %s" % err}
                                          for h, err in failed.items()])
    promoted = [h for h in opts.update_hosts or [] if h not in failed]
    rows = dict((r["host"], r) for r in store.agents(deployment_id, hosts=promoted))
    handed = [m for m in members if m["name"] in rows]
    if opts.gate is None:
        # WAVE_REQUIRED_IF: phase finish needs the gate phase retire returned
        raise ValueError("phase=finish needs the gate returned by phase retire")
    gate = dict(opts.gate)
    error = gate.pop("halt_error", None)
    out = finish(store, opts, dep, wave, members, handed, gate, [], secrets, out)
    if error:
        # the primaries were asked and an error stopped the asking: the candidates of those that stopped were
        # promoted (above); the deployment ends failed with the error
        message = "wave %s (%s) stopped: %s%s" % (wave["index"], wave["name"], error, (
            "; candidates promoted for the primaries that had stopped: %s" % ", ".join(promoted)) if promoted else "")
        closed = close_deployment(store, deployment_id, halt_reason=message, report_path=opts.report_path,
                                  audit_path=opts.audit_path, secrets=secrets, status="failed")
        out.update(halt=True, halt_reason=message, error=error, line=message, msg=message,
                   rollout_deployment_summary=closed)
    return out


def _retire(store: StateStore, client: AgentClient, opts: WaveOptions, dep: Record, wave: Record, members: List[Agent],
            secrets: Sequence[str], out: Record, monotonic: Callable[[], float], sleep: Callable[[float], None],
            progress: Progress, run: Stepped, ask_and_observe: AskAndObserve, finish: Finish) -> Record:
    """Tasks driver: gate the candidates the user's tasks started (``candidate_urls``), then ask the primaries
    of the stable ones to retire. Returns ``promote_hosts`` (stopped: promote their candidates) and
    ``discard_hosts`` (the other candidates), or, when the candidates failed their gate, the recorded wave."""
    deployment_id = dep["deployment_id"]
    target = dep["target_version"]
    urls = dict((h, u) for h, u in (opts.candidate_urls or {}).items() if u)
    failed = dict(opts.update_failed or {})
    for h in opts.update_hosts or []:
        if h not in urls and h not in failed:
            failed[h] = "the candidate tasks set no rollout_candidate_url"
    candidates = [dict(m, agent_url=urls[m["name"]]) for m in members if m["name"] in urls and m["name"] not in failed]
    todo = len(candidates) + len(failed)
    gate, stable, unstable, results = _gate_candidates(client, opts, wave, candidates, failed, target, monotonic,
                                                       sleep, progress, run)
    started = [m["name"] for m in candidates]
    if not gate["passed"] or failed:
        _block(store, deployment_id, gate, results, stable, todo, failed)
        out.update(candidates={"started": sorted(started), "promoted": [], "discarded": sorted(started)},
                   promote_hosts=[], discard_hosts=sorted(started))
        return finish(store, opts, dep, wave, members, [], gate, [], secrets, out)
    if results:
        store.set_results(deployment_id, results)
    proven = [m for m in members if m["name"] in stable]
    run.step = "asking the primaries to retire and waiting for them to stop"
    try:
        ready = ask_and_observe(store, client, opts, dep, wave, proven, secrets, out)
    except (RunStopped, StaleRunError):
        raise
    except Exception as exc:
        # a refused token, a malformed answer: the primaries that stopped because we asked get their candidate
        # promoted before the wave ends (phase finish records the error)
        gate["halt_error"] = str(exc) or exc.__class__.__name__
        ready = _stopped_after_error(store, client, opts, deployment_id, proven, sleep)
    ready_names = [a["name"] for a in ready if a["name"] in stable]
    keep = [m["name"] for m in proven if m["name"] not in ready_names]
    out.update(phase_done="retire", gate=gate, promote_hosts=ready_names, discard_hosts=sorted(unstable + keep))
    return out


def _promoted_earlier(store: StateStore, client: AgentClient, deployment_id: str, members: List[Agent],
                      rows: Dict[str, Record], target: str) -> List[str]:
    """A rerun: the agents an earlier run asked to retire (a consent on record, no result) that answer working
    on the target where the primary ran: their candidate was promoted before that run ended. They are recorded
    updated and get no new candidate (waiting for them to stop would wait for ever)."""
    known = [m for m in members if (rows.get(m["name"]) or {}).get("decision") in (ACCEPT, PENDING)
             and not (rows.get(m["name"]) or {}).get("result")]
    if not known:
        return []
    states = dict(client.fan_out(lambda m: (m["name"], probe_liveness(client, m["agent_url"])), known))
    found = [m["name"] for m in known if states[m["name"]][0] == WORKING
             and version_matches((states[m["name"]][2] or {}).get("version"), target)]
    if found:
        record_found_on_target(store, deployment_id, rows, found, target, "its candidate was promoted by an earlier run")
    return found


def _stopped_after_error(store: StateStore, client: AgentClient, opts: WaveOptions, deployment_id: str, proven: List[Agent],
                         sleep: Callable[[float], None]) -> List[Agent]:
    """The primaries that consented (recorded accept or pending, no result), watched for at most DRAIN_WAIT:
    those that stopped (recorded as having accepted)."""
    rows = dict((r["host"], r) for r in store.agents(deployment_id, hosts=[m["name"] for m in proven]))
    waiting = [m for m in proven if (rows.get(m["name"]) or {}).get("decision") in (ACCEPT, PENDING)
               and not (rows.get(m["name"]) or {}).get("result")]
    observed = observe_stop(client, waiting, min(DRAIN_WAIT, float(opts.stop_timeout or DRAIN_WAIT)),
                            poll_interval=0.25, sleep=sleep)
    stopped = [m for m in waiting if observed[m["name"]]["outcome"] == OBSERVED_STOPPED]
    store.record_answers(deployment_id, [{"host": m["name"], "decision": ACCEPT, "reason": "observed: stopped",
                                          "answered_at": rows[m["name"]].get("answered_at")}
                                         for m in stopped if rows[m["name"]].get("decision") == PENDING])
    return stopped


def _gate_candidates(client: AgentClient, opts: WaveOptions, wave: Record, candidates: List[Agent], failed: Dict[str, str],
                     target: str, monotonic: Callable[[], float], sleep: Callable[[float], None], progress: Progress,
                     run: Stepped) -> Tuple[Record, Set[str], List[str], List[Record]]:
    run.step = "the candidates' health gate"
    gate: Record = gate_agents(client, candidates, opts.as_params(), target if opts.health.require_target_version else None,
                               clock=monotonic, sleep=sleep, progress=_progress(progress, wave, "candidates' health gate"))
    stable = set(gate["stable"])
    unstable = [m["name"] for m in candidates if m["name"] not in stable]
    results = [{"host": h, "result": "failed", "detail": "candidate not started: %s" % err} for h, err in failed.items()]
    results += [{"host": h, "result": "failed", "detail": "candidate not stable: %s" % (gate["unstable"].get(h) or "unknown")}
                for h in unstable]
    return gate, stable, unstable, results


def _block(store: StateStore, deployment_id: str, gate: Record, results: List[Record], stable: Set[str], todo: int,
           failed: Dict[str, str]) -> None:
    """The wave's candidates are not good enough: none is promoted, no primary is asked, the wave fails."""
    results = results + [{"host": h, "result": "failed", "detail": "not asked: the wave's candidates failed their gate"}
                         for h in stable]
    store.set_results(deployment_id, results)
    reason = "the candidates failed their health gate: %d of %d stable, %d required%s" % (
        len(stable), todo, gate["required"], ("; %d not started" % len(failed)) if failed else "")
    gate.update(blocked=reason, reason=reason, passed=False)


def _progress(progress: Progress, wave: Record, what: str) -> Progress:
    if progress is None:
        return None
    prefix = "wave %s %s: %s: " % (wave["index"], wave["name"], what)
    return lambda text: progress(prefix + text)
