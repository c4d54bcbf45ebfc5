# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names shared by the multi-occurrence shutdown and wakeup engines."""

from __future__ import annotations

import hashlib
from typing import Any
from typing import Mapping
from typing import Optional
from typing import Sequence

SHUTDOWN = "shutdown"
WAKEUP = "wakeup"
KINDS = (SHUTDOWN, WAKEUP)

EXPLORER = "explorer"
EARLY_ADOPTER = "early_adopter"
GENERAL = "general"
GROUP_TITLES = {EXPLORER: "Explorer", EARLY_ADOPTER: "Early Adopters", GENERAL: "General"}

DEFAULT_STATE_PATH = "~/.agentfleet/state.db"
DEFAULT_DELAYS = (30.0, 60.0)
DEFAULT_WAVE_TIMEOUT = 300.0
# how long the explorer has to stop after it was asked (its decision is what it does)
DEFAULT_STOP_TIMEOUT = 600.0
DEFAULT_MAX_AGE = 3600.0
EPS = 1e-9


class ShutdownError(Exception):
    """A failure the operator must see (bad plan, explorer unreachable, auth error...)."""


def secs(value: Any) -> str:
    """Seconds as the operator wrote them: ``600`` rather than ``600.0``."""
    value = float(value)
    return ("%d" % value) if value == int(value) else ("%g" % value)


def names(members: Sequence[Mapping[str, Any]], limit: int = 6) -> str:
    """``default, occ-1, ... and 3 more``: occurrence ids of member dicts, for messages."""
    ids = [str(m.get("occurrence_id") or m["name"]) for m in members]
    shown = ", ".join(ids[:limit])
    return shown + (" and %d more" % (len(ids) - limit) if len(ids) > limit else "")


def fallback_decision_id(agent_id: Optional[str], deployment_id: Optional[str]) -> str:
    """The decision id the collection makes when the explorer's answer carries none.

    Stable for the deployment (the same on every rerun and resume), so that
    ``decision_ref`` is never empty (PROTOCOL.md "Multi-occurrence agents").
    """
    digest = hashlib.sha256(("%s\n%s" % (agent_id, deployment_id)).encode("utf-8")).hexdigest()
    return "dec-af-%s" % digest[:16]
