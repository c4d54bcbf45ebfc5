# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Observed consent: wait until the agents that were asked have really stopped.

A real CIRIS agent answers every shutdown request with 200 "initiated" and
decides by acting (PROTOCOL.md, "Observed consent"): it accepts by draining
(``cognitive_state: shutdown`` while it still answers) and then stopping, and
declines by going on working. Nothing may recreate an agent that has not
stopped, so after every "accept or pending" answer the engine watches the
agent with :func:`observe_stop` before any update driver acts on it.

The rule of what counts as stopped depends on who starts the new version:

- a driver that recreates the agent (``tasks``, ``docker``, ECS)
  needs it *gone*: :data:`STOPPED` (refused, reset, 502/503/504);
- with the ``none`` driver the agent's own supervisor restarts it, so it has
  stopped once it was seen gone, or working again after it was seen draining,
  or answers on the target version already (it came back before we looked).
  Draining alone is not stopped: the health gate starts once the agent has.

Everything still working at the stop timeout has *declined* (or is still
busy, which looks the same from outside): it is never updated.
"""

from __future__ import annotations

import time

from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import DRAINING
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import HEALTH_PATH
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import NO_ANSWER
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import STOPPED
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import WORKING
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import classify_liveness
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import join_url
from ansible_collections.agentfleet.rollout.plugins.module_utils._protocol import version_matches
from ansible_collections.agentfleet.rollout.plugins.module_utils._transport.errors import TransportError

DEFAULT_STOP_TIMEOUT = 600.0
# observation outcomes
OBSERVED_STOPPED = "stopped"
OBSERVED_DECLINED = "declined"
OBSERVED_STILL_DRAINING = "still_draining"
OBSERVED_NO_ANSWER = "no_answer"


def probe_liveness(client, agent_url):
    """GET health once and classify it: ``(state, cause, info)`` (see ``classify_liveness``)."""
    try:
        resp = client.request("GET", join_url(agent_url, HEALTH_PATH))
    except TransportError as exc:
        return classify_liveness(error=exc)
    return classify_liveness(resp.status, resp.json)


class StopWatch:
    """Pure state of agents being watched until they stop; feed it probes, ask it verdicts."""

    def __init__(self, names, supervisor_restarts=False, target_version=None):
        self.names = list(names)
        self.supervisor_restarts = bool(supervisor_restarts)
        self.target_version = None if target_version is None else str(target_version)
        self.last = {n: (None, "not probed yet", {}) for n in self.names}
        self.drained_at = {}
        self.stopped_at = {}

    def pending(self):
        return [n for n in self.names if n not in self.stopped_at]

    def observe(self, name, state, cause, info, now):
        self.last[name] = (state, cause, info or {})
        if name in self.stopped_at:
            return
        if state == DRAINING:
            # still finishing its work: not stopped (the gate must not start its clock on a draining agent)
            self.drained_at.setdefault(name, now)
        elif state == STOPPED:
            self.stopped_at[name] = now
        elif state == WORKING and self.supervisor_restarts and (
                name in self.drained_at or (self.target_version is not None
                                            and version_matches((info or {}).get("version"), self.target_version))):
            # back already: its supervisor restarted it between two probes (seen draining before, or on the
            # new version)
            self.stopped_at[name] = now

    def outcome(self, name, stop_timeout):
        """``(outcome, detail)`` for one agent once the watch has ended."""
        if name in self.stopped_at:
            return OBSERVED_STOPPED, None
        state, cause, info = self.last[name]
        if state == DRAINING or name in self.drained_at:
            return OBSERVED_STILL_DRAINING, ("still draining after %ss (cognitive_state shutdown, process not gone): "
                                             "not updated" % _fmt(stop_timeout))
        if state == NO_ANSWER:
            return OBSERVED_NO_ANSWER, "no answer while waiting for it to stop: %s" % cause
        return OBSERVED_DECLINED, ("did not stop within %ss: declined or still busy%s"
                                   % (_fmt(stop_timeout), (" (%s)" % cause) if cause else ""))


# adaptive polling: the first look again comes this soon after a probe that saw the agent not yet stopped,
# and every wait is at most FAST_POLL_RATIO of the time watched so far (never longer than poll_interval): an
# agent that stops at once is seen at once, one that drains for minutes is probed at poll_interval
FAST_POLL = 0.05
FAST_POLL_RATIO = 0.1


def adaptive_interval(elapsed, poll_interval):
    """Seconds to wait before the next probe of something not there yet, ``elapsed`` seconds into the watch."""
    return min(poll_interval, max(FAST_POLL, FAST_POLL_RATIO * elapsed))


def _fmt(seconds):
    return ("%d" % seconds) if float(seconds).is_integer() else ("%.1f" % seconds)


def observe_stop(client, agents, stop_timeout=DEFAULT_STOP_TIMEOUT, poll_interval=1.0, supervisor_restarts=False,
                 target_version=None, clock=time.monotonic, sleep=time.sleep, progress=None, fast_first=False):
    """Watch ``agents`` (member dicts with ``name`` and ``agent_url``) until each has stopped.

    Returns ``{name: {"outcome", "detail", "drained_at", "stopped_at", "waited"}}`` where
    ``outcome`` is ``stopped``, ``declined`` (still working at the timeout),
    ``still_draining`` or ``no_answer``; times are seconds since the watch began.
    ``progress(text)`` is called with a one-line status every few seconds. ``fast_first``: the
    probes come soon after the request and then further apart (:func:`adaptive_interval`), at most
    ``poll_interval``; without it, every ``poll_interval``.
    """
    urls = dict((a["name"], a["agent_url"]) for a in agents)
    watch = StopWatch(urls, supervisor_restarts=supervisor_restarts, target_version=target_version)
    start = clock()
    last_progress = start
    stop_timeout = max(0.0, float(stop_timeout))
    interval = max(0.05, float(poll_interval or 1.0))
    while True:
        pending = watch.pending()
        if not pending:
            break
        results = client.fan_out(lambda n: (n, probe_liveness(client, urls[n])), pending)
        now = clock()
        for name, (state, cause, info) in results:
            watch.observe(name, state, cause, info, now - start)
        pending = watch.pending()
        if not pending or now - start >= stop_timeout:
            break
        if progress is not None and now - last_progress >= 5.0:
            last_progress = now
            draining = sum(1 for n in pending if watch.last[n][0] == DRAINING)
            progress("%d/%d stopped, %d draining, %d still working, %ds" % (
                len(watch.names) - len(pending), len(watch.names), draining, len(pending) - draining, now - start))
        wait = adaptive_interval(now - start, interval) if fast_first else interval
        sleep(max(0.0, min(wait, start + stop_timeout - now)))
    waited = round(clock() - start, 3)
    out = {}
    for name in watch.names:
        outcome, detail = watch.outcome(name, stop_timeout)
        out[name] = {"outcome": outcome, "detail": detail, "drained_at": watch.drained_at.get(name),
                     "stopped_at": watch.stopped_at.get(name), "waited": waited}
    return out
