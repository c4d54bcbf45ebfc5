# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Graceful shutdown and wakeup of a multi-occurrence agent (seed FSD 001, docs/shutdown.md).

An agent often runs as several *occurrences* that share one identity. A
shutdown is decided once, by one occurrence (the explorer), whose decision is
*observed* (PROTOCOL.md "Observed consent"): it counts as an accept only once
the explorer has stopped. The other occurrences are then told in waves
(explorer -> early adopters -> general) with ``decision_ref`` set, and every
wave is verified (each occurrence stopped) before the next one starts. A
wakeup starts the explorer first, gates it on ``work``, then the others.

Modules, in the order a run uses them:

* :mod:`.common` - constants, the domain error, small text helpers
* :mod:`.liveness` - "has it stopped?": probes through ``_protocol.classify_liveness``
  and the per-occurrence timeline (asked, drained, exited); waiting uses ``_health.wait_for_wave``
* :mod:`.plan` - discovery, groups, capacity batches (engine of ``occurrence_plan``)
* :mod:`.message` - the plan message to the explorer and the follower message
* :mod:`.deployment` - the deployment in the rollout state, and the report
* :mod:`.decision` - decide once (ask the explorer, or reuse a decision); the decision id
* :mod:`.waves` - one shutdown wave: send, observe, judge
* :mod:`.wakeup` - wakeup waves: prepare (wait for draining ones), gate, abort
* :mod:`.specs` - the modules' argument specs
"""

from __future__ import annotations
