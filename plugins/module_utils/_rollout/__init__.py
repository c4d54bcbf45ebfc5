# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The canary engine: ask a wave, record what it answered, judge and report (import each name from its module).

Modules:

* :mod:`.ask` - :func:`build_reason`, :func:`notify_wave` (ask a wave, never twice), :func:`observe_consent`
* :mod:`.deployment` - :func:`begin` and :func:`close_deployment`: open a deployment (its plan to run) and close it
* :mod:`.errors` - :class:`RolloutError`, :class:`AuthenticationFailed`
* :mod:`.report` - the rollout's report, its totals and summary table
* :mod:`.verdict` - a wave in the state: :func:`start_wave`, :func:`wave_counts`, :func:`judge_wave` (the one
  verdict), :func:`record_wave`
"""
