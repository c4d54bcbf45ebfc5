# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One poll loop: fetch, evaluate (pure), sleep, with an injectable clock.

Tests drive it with a fake clock and a recording sleep, so no test waits.
"""

from __future__ import annotations

import time
from typing import Callable
from typing import Optional
from typing import Tuple
from typing import TypeVar

from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import Deadline
from ansible_collections.agentfleet.rollout.plugins.module_utils._waiter import poll as _poll

IN_PROGRESS = "IN_PROGRESS"
TIMEOUT = "TIMEOUT"

T = TypeVar("T")


def poll(fetch: Callable[[], T], evaluate: Callable[[T], Tuple[str, str]], timeout: float, delay: float,
         clock: Optional[Callable[[], float]] = None, sleep: Optional[Callable[[float], None]] = None,
         on_poll: Optional[Callable[[str, str, T], None]] = None) -> Tuple[str, str, T]:
    """Call ``fetch()`` until ``evaluate(value)`` leaves IN_PROGRESS or ``timeout`` passes.

    ``evaluate`` returns ``(state, message)``. Returns ``(state, message, value)``
    where state is the final evaluation or ``"TIMEOUT"`` (then ``message`` is the
    last evaluation's, i.e. what the resource reported at the deadline).
    ``on_poll(state, message, value)`` is called after every evaluation.
    """
    deadline = Deadline(max(float(timeout), 0.0), clock or time.monotonic)
    state, message = IN_PROGRESS, ""

    def evaluated(value: T, now: float) -> bool:
        nonlocal state, message
        state, message = evaluate(value)
        if on_poll is not None:
            on_poll(state, message, value)
        return state != IN_PROGRESS

    finished, value = _poll(fetch, evaluated, deadline, max(float(delay), 0.0), sleep or time.sleep)
    return (state if finished else TIMEOUT), message, value
