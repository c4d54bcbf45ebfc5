# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the occurrences are told: the plan message (explorer) and the follower message."""

from __future__ import annotations

from typing import Any
from typing import Mapping
from typing import Sequence

from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import DEFAULT_DELAYS
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import DEFAULT_STOP_TIMEOUT
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import DEFAULT_WAVE_TIMEOUT
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import GROUP_TITLES
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import names
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import secs
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.common import ShutdownError
from ansible_collections.agentfleet.rollout.plugins.module_utils._report import utcnow_iso


def plan_message(agent_id: str, waves: Sequence[Mapping[str, Any]], reason: str, delays: Sequence[float] = DEFAULT_DELAYS,
                 wave_timeout: float = DEFAULT_WAVE_TIMEOUT, min_fraction: float = 0.0,
                 stop_timeout: float = DEFAULT_STOP_TIMEOUT) -> str:
    """The FSD's shutdown message, stating this rollout's actual plan.

    ``waves`` come from :func:`~.plan.split_batches` (or
    :func:`~.plan.assign_groups`); the explorer is the first member of wave 1.
    Returns the text sent, as ``reason``, to the explorer only.
    """
    if not waves:
        raise ShutdownError("no occurrence to shut down")
    explorer = waves[0]["members"][0]
    total = sum(w["size"] for w in waves)
    lines = [
        "SYSTEM SHUTDOWN REQUEST",
        "",
        "You are occurrence %s of agent %s, processing this shutdown request on behalf of ALL %d runtime "
        "occurrence%s. Your decision applies to all occurrences."
        % (explorer.get("occurrence_id") or explorer["name"], agent_id, total, "" if total == 1 else "s"),
        "",
        "SHUTDOWN PLAN (if you accept):",
        "Your acceptance will initiate a canary shutdown across all occurrences:",
    ]
    for i, wave in enumerate(waves):
        title = GROUP_TITLES.get(wave["name"], wave["name"])
        size = wave["size"]
        lines.append("")
        lines.append("Wave %d (%s - %d occurrence%s: %s):" % (wave["index"], title, size, "" if size == 1 else "s",
                                                              names(wave["members"])))
        if i == 0:
            lines.append("  - Shutdown immediately (that is you): finish your current work and stop within %s seconds"
                         % secs(stop_timeout))
        else:
            delay = float(delays[i - 1]) if i - 1 < len(delays) else 0.0
            prev: str = waves[i - 1]["name"]
            lines.append("  - Begin shutdown %s seconds after the %s wave's termination is verified"
                         % (secs(delay), GROUP_TITLES.get(prev, prev).lower()))
        batches = wave.get("batches") or []
        if len(batches) > 1:
            lines.append("  - In %d batches of at most %d, keeping at least %d%% of the serving occurrences up"
                         % (len(batches), max(len(b["members"]) for b in batches), int(round(100 * float(min_fraction)))))
        if i > 0:
            lines.append("  - Validate clean termination (within %s seconds)" % secs(wave_timeout))
        if i < len(waves) - 1:
            lines.append("  - Other occurrences handle load during shutdown")
    lines += [
        "",
        "Service remains available until the final wave (remaining occurrences handle requests).",
        "A wave that does not terminate cleanly stops the rollout before the next wave.",
        "",
        "REJECTION:",
        "If you reject, NO occurrences will shut down. Your decision applies to all.",
        "If you keep working instead of stopping within %s seconds, that counts as a refusal: nobody shuts down."
        % secs(stop_timeout),
        "If you defer, nothing happens now: say when to ask again.",
        "",
        "Reason for shutdown request: %s" % reason,
        "",
        "Do you accept this shutdown plan?",
        "[ACCEPT] - Initiate canary shutdown rollout",
        "[REJECT] - Refuse shutdown for all occurrences, provide reasoning",
    ]
    return "\n".join(lines)


def follower_message(agent_id: str, decision: Mapping[str, Any], wave: Mapping[str, Any], reason: str, decision_ref: str) -> str:
    """The short text sent with ``decision_ref`` to an occurrence of a later wave."""
    return ("SYSTEM SHUTDOWN (decided for all occurrences of %s)\n\nThe agent already decided: %s (decision %s by "
            "occurrence %s at %s). You are in wave %d (%s) of the canary shutdown. Please comply; no new "
            "deliberation is needed.\n\nReason for shutdown request: %s"
            % (agent_id, decision["decision"], decision_ref, decision.get("decided_by") or "-",
               utcnow_iso(decision["decided_at"]) if decision.get("decided_at") else "-", wave["index"],
               GROUP_TITLES.get(wave["name"], wave["name"]), reason))
