# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: rollout_progress
type: aggregate
short_description: One progress line per rollout wave, and each deployment's summary at the end of the run
version_added: 0.1.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - "Runs next to the stdout callback (the default one, C(ansible.builtin.default), or AWX's) and prints, through
    Ansible's display so that AWX and other job runners capture it, one line for every finished rollout wave,
    for example
    C([agentfleet] wave 2/4 early_adopters: 20 agents | accepted 14, declined 2, deferred 1, rejected 1, unreachable 0
    | healthy 13/14 | 45.2s | passed)."
  - A finished wave is any task result (ok or failed, also a C(run_once) result, also a loop item) that carries a
    C(rollout_wave_summary) dictionary, as the tasks of the collection's rollout roles return. A failed wave ends
    with C(FAILED) and the first line of its C(halt_reason).
  - Each wave is printed once per deployment, even when the same result is delivered more than once.
  - A task result that carries a C(rollout_deployment_summary) dictionary marks the end of a deployment. At the end
    of the run (the play recap) the callback prints, once per deployment and in the order they ended, its summary
    table and the path of its JSON report.
  - Only the documented keys of those two dictionaries are printed, never a whole task result; a C(Bearer ...)
    credential that found its way into a printed text is masked.
  - "Enable it with C(callbacks_enabled = agentfleet.rollout.rollout_progress) in the C([defaults]) section of
    C(ansible.cfg), or E(ANSIBLE_CALLBACKS_ENABLED=agentfleet.rollout.rollout_progress)."
requirements:
  - enable in configuration (C(callbacks_enabled))
options:
  show_table:
    description:
      - At the end of the run, print each finished deployment's summary table (one line per wave and a total).
      - With V(false) only one line per deployment (its status and totals) and the report path are printed.
    type: bool
    default: true
    env:
      - name: AGENTFLEET_PROGRESS_SHOW_TABLE
    ini:
      - section: callback_rollout_progress
        key: show_table
  output:
    description:
      - Where the lines go. V(stdout) prints them through Ansible's display (what the job output shows).
      - V(none) prints nothing, for a job that has the callback enabled in C(ansible.cfg) but does not want its lines.
    type: str
    default: stdout
    choices: [stdout, none]
    env:
      - name: AGENTFLEET_PROGRESS_OUTPUT
    ini:
      - section: callback_rollout_progress
        key: output
notes:
  - "The keys read from C(rollout_wave_summary): C(deployment_id), C(wave), C(wave_count), C(name), C(size),
    C(accepted), C(declined), C(deferred), C(rejected), C(unreachable), C(skipped), C(updated), C(healthy),
    C(elapsed) (seconds), C(passed) and C(halt_reason). Every key may be missing: counts count as 0, the wave
    number, wave count and elapsed time are shown as C(?)."
  - C(healthy) is shown out of C(updated), or out of C(accepted) when C(updated) is missing. C(skipped) is shown only
    when it is not 0.
  - "The deployment a wave belongs to is C(deployment_id) of the summary, else of the task result. Give one: two
    deployments in one run whose waves carry no id are told apart only by the end of the first deployment."
  - "The keys read from C(rollout_deployment_summary): C(deployment_id), C(status), C(target_version), C(totals)
    (counts by result), C(report_path) and C(summary_table) (a list of lines)."
seealso:
  - name: Rollout reports
    description: The JSON report and the audit log of a rollout (docs/reports.md in the collection).
    link: https://example.invalid/agentfleet/rollout/docs/reports.md
"""

import re
from collections.abc import Mapping

from ansible.plugins.callback import CallbackBase

PREFIX = "[agentfleet]"
WAVE_KEY = "rollout_wave_summary"
DEPLOYMENT_KEY = "rollout_deployment_summary"
DECISIONS = ("accepted", "declined", "deferred", "rejected", "unreachable")
MAX_TEXT = 300

_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[^\s\"',;]+")


def scrub(text, limit=MAX_TEXT):
    """One printable line: the first line of ``text``, a Bearer credential masked, at most ``limit`` characters."""
    text = "" if text is None else str(text)
    text = _BEARER.sub(r"\1\2********", text)
    lines = [part.strip() for part in text.splitlines() if part.strip()]
    line = lines[0] if lines else ""
    if limit and len(line) > limit:
        line = line[:limit - 3] + "..."
    return line


def _count(value):
    """A count from a summary value: an int, or 0 for anything missing or not a number."""
    if isinstance(value, bool):
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return 0


def _index(value):
    """A wave number or wave count, or ``?`` when missing or not a number."""
    if value is None or isinstance(value, bool):
        return "?"
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return "?"


def _seconds(value):
    if value is None or isinstance(value, bool):
        return "?s"
    try:
        return "%.1fs" % float(value)
    except (TypeError, ValueError):
        return "?s"


def _truth(value):
    """True, False, or None when the value says neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        return None
    if isinstance(value, int):
        return bool(value)
    return None


def format_wave_line(summary):
    """The one progress line of a finished wave (``summary`` is a ``rollout_wave_summary`` dict)."""
    name = scrub(summary.get("name"), 80)
    size = _count(summary.get("size"))
    head = "%s wave %s/%s%s: %d %s" % (
        PREFIX, _index(summary.get("wave")), _index(summary.get("wave_count")), (" " + name) if name else "",
        size, "agent" if size == 1 else "agents")
    decisions = ", ".join("%s %d" % (key, _count(summary.get(key))) for key in DECISIONS)
    skipped = _count(summary.get("skipped"))
    if skipped:
        decisions += ", skipped %d" % skipped
    watched = summary.get("updated")
    watched = _count(watched if watched is not None else summary.get("accepted"))
    healthy = "healthy %d/%d" % (_count(summary.get("healthy")), watched)
    passed = _truth(summary.get("passed"))
    halt_reason = scrub(summary.get("halt_reason"))
    if passed is True:
        verdict = "passed"
    elif passed is False or halt_reason:
        verdict = "FAILED: " + halt_reason if halt_reason else "FAILED"
    else:
        verdict = "result unknown"
    return " | ".join((head, decisions, healthy, _seconds(summary.get("elapsed")), verdict))


def format_deployment_lines(summary, show_table=True):
    """The end-of-run lines of one deployment (``summary`` is a ``rollout_deployment_summary`` dict)."""
    lines = []
    table = summary.get("summary_table")
    if show_table and isinstance(table, (list, tuple)) and table:
        for entry in table:
            for part in str(entry).splitlines() or [""]:
                lines.append("%s %s" % (PREFIX, scrub(part, 0)) if part.strip() else PREFIX)
    else:
        head = "%s deployment %s: %s" % (PREFIX, scrub(summary.get("deployment_id"), 120) or "?",
                                         scrub(summary.get("status"), 40) or "status unknown")
        target = scrub(summary.get("target_version"), 60)
        if target:
            head += ", target %s" % target
        totals = summary.get("totals")
        if isinstance(totals, Mapping) and totals:
            head += " | " + ", ".join("%s %d" % (scrub(k, 40), _count(v)) for k, v in totals.items())
        lines.append(head)
    report_path = scrub(summary.get("report_path"), 0)
    if report_path:
        lines.append("%s report: %s" % (PREFIX, report_path))
    return lines


def _result_dict(result):
    """The result dict of a callback's task result (``result`` on ansible-core 2.19+, ``_result`` before)."""
    data = getattr(result, "result", None)
    if not isinstance(data, Mapping):
        data = getattr(result, "_result", None)
    return data if isinstance(data, Mapping) else {}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "agentfleet.rollout.rollout_progress"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None, options=None):
        super().__init__(display=display, options=options)
        self._seen_waves = set()
        self._deployments = {}  # key -> latest summary; dicts keep the order in which deployments ended
        self._show_table = True
        self._output = "stdout"

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self._show_table = bool(self.get_option("show_table"))
        self._output = self.get_option("output") or "stdout"

    # ------------------------------------------------------------------ output

    def _emit(self, line):
        if self._output == "stdout":
            self._display.display(line)

    # ------------------------------------------------------------------ results

    def _summaries(self, data):
        """The result dict and its loop items' dicts (a looped task's final result carries them in ``results``)."""
        yield data
        items = data.get("results")
        if isinstance(items, list):
            for item in items:
                if isinstance(item, Mapping):
                    yield item

    def _handle(self, result):
        data = _result_dict(result)
        if not data:
            return
        for entry in self._summaries(data):
            wave = entry.get(WAVE_KEY)
            if isinstance(wave, Mapping):
                self._wave(wave, entry)
            deployment = entry.get(DEPLOYMENT_KEY)
            if isinstance(deployment, Mapping):
                self._deployment(deployment)

    def _wave(self, summary, entry):
        deployment_id = summary.get("deployment_id") or entry.get("deployment_id") or ""
        line = format_wave_line(summary)
        number = _index(summary.get("wave"))
        key = (str(deployment_id), number) if number != "?" else (str(deployment_id), "line", line)
        if key in self._seen_waves:
            return
        self._seen_waves.add(key)
        self._emit(line)

    def _deployment(self, summary):
        deployment_id = summary.get("deployment_id")
        if deployment_id:
            key = ("id", str(deployment_id))
        else:
            table = summary.get("summary_table")
            key = ("content", tuple(str(x) for x in table) if isinstance(table, (list, tuple)) else (),
                   str(summary.get("report_path")))
        self._deployments[key] = dict(summary)
        # the deployment has ended: waves of a later deployment that carry no id start afresh
        self._seen_waves = set(k for k in self._seen_waves if k[0] != "")

    def v2_runner_on_ok(self, result):
        self._handle(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._handle(result)

    def v2_runner_item_on_ok(self, result):
        self._handle(result)

    def v2_runner_item_on_failed(self, result):
        self._handle(result)

    def v2_playbook_on_stats(self, stats):
        for summary in self._deployments.values():
            for line in format_deployment_lines(summary, self._show_table):
                self._emit(line)
        self._deployments = {}
