# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One agent's outcome as an Ansible task result: its PLAY RECAP row (``agent_result``)."""

from __future__ import annotations

OUTCOME_SPEC = dict(
    outcome=dict(type="dict"),
    from_result=dict(type="str"),
    host=dict(type="str"),
)
OUTCOME_ONE_OF = [["outcome", "from_result"]]


def outcome_result(outcome, host=None):
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


def pick_outcome(registered, host, name="from_result"):
    """The outcome of ``host`` from a registered wave result (its ``outcomes`` mapping)."""
    if not isinstance(registered, dict):
        raise ValueError("%s must name a registered result of agentfleet.rollout.rollout_wave (a dict), got %s"
                         % (name, type(registered).__name__))
    if registered.get("failed") and not registered.get("outcomes"):
        # the wave task itself failed: every agent of the batch shows why
        return {"result": "failed", "changed": False, "failed": True,
                "detail": "the wave failed: %s" % (registered.get("msg") or "unknown error")}
    return (registered.get("outcomes") or {}).get(host)


def run_outcome(params, check_mode=False):
    """The module face: ``outcome`` given directly (``from_result`` needs the controller's variables)."""
    del check_mode
    if params.get("from_result"):
        raise ValueError("from_result is resolved by the controller-side action plugin; pass outcome when running "
                         "the module directly")
    return outcome_result(params.get("outcome"), params.get("host"))
