"""A fake monotonic clock for unit tests: ``clock()`` is the time, ``clock.sleep(s)`` moves it on."""

from __future__ import annotations


class Clock:
    def __init__(self, now=0.0):
        self.now = now

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
