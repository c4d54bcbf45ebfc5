# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One poll loop: fetch, evaluate (pure), sleep, with an injectable clock.

Tests drive it with a fake clock and a recording sleep, so no test waits.
"""

from __future__ import annotations

import time

IN_PROGRESS = "IN_PROGRESS"
TIMEOUT = "TIMEOUT"


def poll(fetch, evaluate, timeout, delay, clock=None, sleep=None, on_poll=None):
    """Call ``fetch()`` until ``evaluate(value)`` leaves IN_PROGRESS or ``timeout`` passes.

    ``evaluate`` returns ``(state, message)``. Returns ``(state, message, value)``
    where state is the final evaluation or ``"TIMEOUT"`` (then ``message`` is the
    last evaluation's, i.e. what the resource reported at the deadline).
    ``on_poll(state, message, value)`` is called after every evaluation.
    """
    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    deadline = clock() + max(float(timeout), 0.0)
    delay = max(float(delay), 0.0)
    while True:
        value = fetch()
        state, message = evaluate(value)
        if on_poll is not None:
            on_poll(state, message, value)
        if state != IN_PROGRESS:
            return state, message, value
        remaining = deadline - clock()
        if remaining <= 0:
            return TIMEOUT, message, value
        sleep(min(delay, remaining))
