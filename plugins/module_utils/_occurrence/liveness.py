# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Has an occurrence stopped? Probes, the timeline of what they said, and the wait.

Every health answer is judged by the collection's one classifier,
:func:`~._protocol.classify_liveness` (WORKING / DRAINING / STOPPED /
NO_ANSWER). Only STOPPED counts as terminated: an occurrence that answers
with ``cognitive_state: shutdown`` is still draining its work, and a timeout
(NO_ANSWER) is no evidence either way.

:class:`StopTimeline` keeps, per occurrence, when it was first seen draining
(``drained_at``) and first seen stopped (``exited_at``); :func:`wait_for_stop`
drives the probes through :func:`~._health.wait_for_wave` with an injectable
clock, so the waits are tested without sleeping.
"""

from __future__ import annotations

import time

from ansible_collections.agentfleet.rollout.plugins.module_utils._health import wait_for_wave
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import classify_liveness
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DRAINING
from ansible_collections.agentfleet.rollout.plugins.module_utils._consent import probe_liveness  # noqa: F401 (the one probe)
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import evaluate_health
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import HEALTH_PATH
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import join_url
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import NO_ANSWER
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import STOPPED
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import WORKING
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.errors import TransportError


def describe(state, cause=None, info=None):
    """One phrase for what a probe said, for failures and reports."""
    info = info or {}
    if state == STOPPED:
        return "stopped (%s)" % (cause or "not answering")
    if state == DRAINING:
        return "still draining (cognitive_state shutdown)"
    if state == NO_ANSWER:
        return "no answer (%s), which is no evidence of a stop" % (cause or "timeout")
    if state == WORKING:
        cog = info.get("cognitive_state")
        return "still working (%s)" % (("cognitive_state %s" % cog) if cog else (cause or "answering"))
    return "not probed"


class StopTimeline:
    """What the probes said about each occurrence, in order (pure: feed it with :meth:`observe`).

    Per name: the last ``state`` / ``cause`` / ``info``, ``drained_at`` (first
    seen DRAINING), ``exited_at`` (first seen STOPPED) and the probe count.
    """

    def __init__(self):
        self.entries = {}

    def observe(self, name, state, cause, info, now):
        entry = self.entries.get(name)
        if entry is None:
            entry = self.entries[name] = {"state": None, "cause": None, "info": {}, "drained_at": None,
                                          "exited_at": None, "probes": 0}
        entry["probes"] += 1
        entry["state"], entry["cause"] = state, cause
        if info:
            entry["info"] = info
        if state == DRAINING and entry["drained_at"] is None:
            entry["drained_at"] = now
        if state == STOPPED and entry["exited_at"] is None:
            entry["exited_at"] = now
        return entry

    def get(self, name):
        return self.entries.get(name) or {"state": None, "cause": None, "info": {}, "drained_at": None,
                                          "exited_at": None, "probes": 0}

    def stopped(self, name):
        return self.get(name)["exited_at"] is not None

    def drained(self, name):
        return self.get(name)["drained_at"] is not None

    def describe(self, name):
        entry = self.get(name)
        return describe(entry["state"], entry["cause"], entry["info"])


def stop_check_fn(client, urls, timeline, clock=time.time):
    """A ``check`` for :func:`~._health.wait_for_wave`: ready = STOPPED.

    ``urls`` maps name -> agent_url; every answer goes into ``timeline``
    stamped with ``clock()`` (a unix time, for the report).
    """
    def check(names):
        results = client.fan_out(lambda n: (n, probe_liveness(client, urls[n])), names)
        out = {}
        for name, (state, cause, info) in results:
            timeline.observe(name, state, cause, info, clock())
            out[name] = (state == STOPPED, timeline.describe(name), info)
        return out

    return check


def wait_for_stop(client, urls, names, timeout, poll_interval=1.0, timeline=None, clock=time.time,
                  sleep=time.sleep, monotonic=time.monotonic):
    """Probe ``names`` until every one is STOPPED or ``timeout`` seconds passed.

    Returns ``(result, timeline)``: ``result`` as of ``wait_for_wave``
    (``stable`` = stopped, ``unstable`` = name -> what was last seen).
    """
    timeline = timeline if timeline is not None else StopTimeline()
    result = wait_for_wave(list(names), stop_check_fn(client, urls, timeline, clock), min_stable_time=0.0,
                           success_threshold=1.0, deadline=float(timeout), poll_interval=float(poll_interval or 1.0),
                           grace=0.0, clock=monotonic, sleep=sleep)
    return result, timeline


def probe_health(client, agent_url, expected_states=("work",), target_version=None):
    """One GET judged twice: ``(liveness state, cause, info, healthy, health cause)``.

    ``healthy`` is :func:`~._protocol.evaluate_health` (an expected state, the
    version if given); the liveness state tells a stopped occurrence from one
    that still runs or drains.
    """
    try:
        resp = client.request("GET", join_url(agent_url, HEALTH_PATH))
    except TransportError as exc:
        state, cause, info = classify_liveness(error=exc)
        return state, cause, info, False, str(exc)
    state, cause, info = classify_liveness(resp.status, resp.json)
    healthy, health_cause = evaluate_health(resp.status, resp.json, tuple(expected_states), target_version)[:2]
    return state, cause, info, healthy, health_cause
