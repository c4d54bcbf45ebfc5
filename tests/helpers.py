"""Scaffolding shared by the test suites (unit, fleetsim, integration, faults): ``from helpers import ...``.

tests/ is on ``sys.path`` (pytest puts the directory of the rootdir's conftest.py there, and tests/conftest.py
puts the repository root there), so every suite imports this module the way it imports ``conftest``.

* :func:`wait_for` polls a predicate until a deadline; :class:`Clock` is a fake clock for unit tests.
* :func:`free_port` is a loopback port nothing listens on.
"""

from __future__ import annotations

import socket
import time


# ---------------------------------------------------------------- polling and time
def wait_for(predicate, timeout, what="the condition", interval=0.05):
    """Call ``predicate`` every ``interval`` seconds until it returns something true, and return that; after
    ``timeout`` seconds raise AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out (%ss) waiting for %s" % (timeout, what))


class Clock:
    """A fake clock: ``clock()`` (or ``clock.time()``) is the time, ``clock.sleep(s)`` moves it on by ``s`` (by at
    least ``min_step`` when one is given, so that code sleeping 0 s still moves on) and records ``s`` in
    ``clock.sleeps``."""

    def __init__(self, now=0.0, min_step=None):
        self.now = now
        self.min_step = min_step
        self.sleeps = []

    def __call__(self):
        return self.now

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds if self.min_step is None else max(seconds, self.min_step)


def free_port():
    """A loopback TCP port that was free a moment ago (nothing listens on it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
