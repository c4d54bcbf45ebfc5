# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One agent's outcome: the one mapping from its recorded result to its PLAY RECAP row.

:func:`member_outcomes` maps the state's rows of a wave's members to outcomes (``result``, ``changed``,
``failed``, ``detail``, ...) for rollouts, shutdowns and wakeups alike; an :class:`OutcomeRule` per kind
(:data:`ROLLOUT_OUTCOMES`, :data:`SHUTDOWN_OUTCOMES`, :data:`WAKEUP_OUTCOMES`) says which result is a
change and which results fail. :func:`outcome_result` turns one outcome into an Ansible task result
(``agent_result``).
"""

from __future__ import annotations

from typing import Any
from typing import Collection
from typing import Dict
from typing import Iterable
from typing import Mapping
from typing import NamedTuple
from typing import Optional
from typing import Tuple

OUTCOME_SPEC = dict(
    outcome=dict(type="dict"),
    from_result=dict(type="str"),
    host=dict(type="str"),
)
OUTCOME_ONE_OF = [["outcome", "from_result"]]


class OutcomeRule(NamedTuple):
    """How one kind of deployment maps a member's state row to its outcome.

    ``changed``: the result that is a change, when this run made it (``this_run``); ``failing``: results
    that fail the member's row (unless the wave tolerates failures); ``fields``: row columns the outcome
    carries as they are; ``unreached``: the result of a member without one (the deployment did not reach
    it); ``pending``: the result of a member that answered but has no result yet (None: ``unreached``);
    ``reason_detail``: a member without a result detail shows its decision's reason; ``unreached_detail``:
    the detail of an ``unreached`` member without one; ``earlier_detail``: the detail of a ``changed``
    result an earlier run made (None: the row's); ``skipped``: the result of a member without one in a
    wave that did not run (None: ``unreached``); ``skipped_detail``: in a wave that did not run, every
    member's detail says why.
    """

    changed: str
    failing: Tuple[str, ...]
    fields: Tuple[str, ...]
    unreached: str
    pending: Optional[str] = None
    reason_detail: bool = False
    unreached_detail: Optional[str] = None
    earlier_detail: Optional[str] = None
    skipped: Optional[str] = None
    skipped_detail: bool = False


# the rollout: updated in this run = changed; its update or gate failed, or it was reverted = failed;
# every answer (reject, defer, decline), a skip or an update of an earlier run = ok
ROLLOUT_OUTCOMES = OutcomeRule(changed="updated", failing=("failed", "reverted"),
                               fields=("decision", "version_before", "version_after"), unreached="not asked",
                               pending="pending", reason_detail=True, earlier_detail="updated in an earlier run")
# the results of a shutdown or wakeup occurrence that fail its row and make a finished deployment fail
OCCURRENCE_FAILURES = ("failed", "rejected", "deferred", "unhealthy")
# a shutdown wave: stopped by this run = changed; did not terminate, or refused (reject, defer) = failed;
# already down, kept running, not asked because the rollout stopped = ok
SHUTDOWN_OUTCOMES = OutcomeRule(changed="stopped", failing=OCCURRENCE_FAILURES, fields=(),
                                unreached="not_touched", unreached_detail="not asked: the rollout stopped",
                                skipped="skipped", skipped_detail=True)
# a wakeup wave: started by this wave and awake = changed; unhealthy or its start failed = failed;
# already awake, left down = ok
WAKEUP_OUTCOMES = OutcomeRule(changed="awake", failing=OCCURRENCE_FAILURES, fields=("version_before", "version_after"),
                              unreached="not_touched")


def member_outcomes(rows: Mapping[str, Mapping[str, Any]], names: Iterable[str], rule: OutcomeRule,
                    this_run: Collection[str] = (), tolerate_failures: bool = False,
                    skipped: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
    """THE mapping: each of ``names`` -> its outcome (``result``, ``changed``, ``failed``, ``detail`` and the
    rule's ``fields``), for its PLAY RECAP row.

    ``rows``: the deployment's state rows by host. ``changed``: its result is the rule's change and this run
    made it (``this_run``). ``failed``: its result is one of the rule's failing ones, unless
    ``tolerate_failures`` (a general wave with ``fail_on_partial=false``). ``skipped`` (why the wave did not
    run): never a change or a failure of this run.
    """
    out = {}
    for name in names:
        row = rows.get(name) or {}
        result = row.get("result")
        if not result:
            if skipped is not None and rule.skipped:
                result = rule.skipped
            elif row.get("decision") and rule.pending:
                result = rule.pending
            else:
                result = rule.unreached
        ran = skipped is None
        changed = ran and result == rule.changed and name in this_run
        detail = row.get("result_detail") or (row.get("decision_reason") if rule.reason_detail else None)
        if skipped is not None and rule.skipped_detail:
            detail = "wave skipped: %s" % skipped
        elif result == rule.changed and not changed and rule.earlier_detail:
            detail = rule.earlier_detail
        elif not detail and result == rule.unreached and rule.unreached_detail is not None:
            detail = rule.unreached_detail
        outcome: Dict[str, Any] = {"result": result, "changed": changed,
                                   "failed": ran and result in rule.failing and not tolerate_failures, "detail": detail}
        for key in rule.fields:
            outcome[key] = row.get(key)
        out[name] = outcome
    return out


def rollout_outcomes(rows: Iterable[Mapping[str, Any]], members: Iterable[Mapping[str, Any]],
                     this_run: Iterable[str]) -> Dict[str, Dict[str, Any]]:
    """A rollout wave's outcomes (:func:`member_outcomes` with :data:`ROLLOUT_OUTCOMES`) from the state's
    rows of its ``members``; ``this_run``: the agents updated by this run."""
    return member_outcomes(dict((r["host"], r) for r in rows), [m["name"] for m in members], ROLLOUT_OUTCOMES,
                           set(this_run))


def planned_outcomes(names: Iterable[str], detail: str) -> Dict[str, Dict[str, Any]]:
    """Check mode: each member would change, nothing failed; ``detail`` says what would happen."""
    return dict((name, {"result": "planned", "changed": True, "failed": False, "detail": detail}) for name in names)


def outcome_result(outcome: Optional[Mapping[str, Any]], host: Optional[str] = None) -> Dict[str, Any]:
    """``{changed, failed, msg, agent_result, ...}`` for one agent from its outcome dict.

    ``outcome`` has ``result`` (the state's result: updated, declined, deferred, rejected, failed, reverted,
    skipped, planned, ...), ``changed`` and ``failed`` (booleans), ``detail`` and optionally ``decision``,
    ``version_before``, ``version_after``. None means the agent had nothing to do in this batch.
    """
    if outcome is None:
        return {"changed": False, "agent_result": None,
                "msg": "%s: not part of this wave" % host if host else "not part of this wave"}
    if not isinstance(outcome, dict):
        raise ValueError("outcome must be a dict with result, changed, failed and detail, got %s"
                         % type(outcome).__name__)
    result = outcome.get("result")
    detail = outcome.get("detail")
    out = {
        "changed": bool(outcome.get("changed")),
        "agent_result": result,
        "decision": outcome.get("decision"),
        "version_before": outcome.get("version_before"),
        "version_after": outcome.get("version_after"),
        "msg": "%s%s" % (result, (": %s" % detail) if detail else ""),
    }
    if outcome.get("failed"):
        out["failed"] = True
    return out


def pick_outcome(registered: Any, host: str, name: str = "from_result") -> Optional[Dict[str, Any]]:
    """The outcome of ``host`` from a registered wave result (its ``outcomes`` mapping)."""
    if not isinstance(registered, dict):
        raise ValueError("%s must name a registered result of agentfleet.rollout.rollout_wave (a dict), got %s"
                         % (name, type(registered).__name__))
    if registered.get("failed") and not registered.get("outcomes"):
        # the wave task itself failed: every agent of the batch shows why
        return {"result": "failed", "changed": False, "failed": True,
                "detail": "the wave failed: %s" % (registered.get("msg") or "unknown error")}
    found: Optional[Dict[str, Any]] = (registered.get("outcomes") or {}).get(host)
    return found


def run_outcome(params: Mapping[str, Any], check_mode: bool = False) -> Dict[str, Any]:
    """The module face: ``outcome`` given directly (``from_result`` needs the controller's variables)."""
    del check_mode
    if params.get("from_result"):
        raise ValueError("from_result is resolved by the controller-side action plugin; pass outcome when running "
                         "the module directly")
    return outcome_result(params.get("outcome"), params.get("host"))
