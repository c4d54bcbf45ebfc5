# -*- coding: utf-8 -*-
# Benchmark helper (not part of the collection): per-task wall time.
# Enabled by bench/run.py with ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins,
# ANSIBLE_CALLBACKS_ENABLED=bench_timer and BENCH_TIMER_OUT=<file.json>.
# BENCH_TIMER_HOSTS=<task name>[,<task name>...]: also when each host's worker for those tasks
# started ("host_starts": {task name: {host: [time, ...]}}), e.g. the first of the user's update tasks.
# A task's time runs from its "task start" event to the next task's start (or
# the end of the play), so it includes templating, include processing, worker
# forks and the action/module itself, as the linear strategy runs them.
from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: bench_timer
    type: aggregate
    short_description: per-task wall time for bench/run.py
    description: Writes every task's start and end time to $BENCH_TIMER_OUT (JSON).
    requirements: [enable in configuration]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._loaded = time.time()
        self._playbook_start = None
        self._tasks = []
        self._current = None
        self._results = 0
        self._host_tasks = set(n for n in os.environ.get("BENCH_TIMER_HOSTS", "").split(",") if n)
        self._host_starts = {}

    def _close(self, now):
        if self._current is not None:
            self._current["end"] = now
            self._current["results"] = self._results
            self._tasks.append(self._current)
            self._current = None
        self._results = 0

    def v2_playbook_on_start(self, playbook):
        self._playbook_start = time.time()

    def _start(self, task, kind):
        now = time.time()
        self._close(now)
        role = task._role.get_name() if getattr(task, "_role", None) else ""
        self._current = {"name": task.get_name(), "action": task.action, "role": role,
                         "kind": kind, "start": now}

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start(task, "task")

    def v2_playbook_on_handler_task_start(self, task):
        self._start(task, "handler")

    def v2_playbook_on_play_start(self, play):
        self._close(time.time())

    def v2_runner_on_start(self, host, task):
        name = task.name   # without the role's prefix
        if name in self._host_tasks:
            self._host_starts.setdefault(name, {}).setdefault(host.get_name(), []).append(time.time())

    def _count(self, *args, **kwargs):
        self._results += 1

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_skipped = _count
    v2_runner_on_unreachable = _count

    def v2_playbook_on_stats(self, stats):
        now = time.time()
        self._close(now)
        out = os.environ.get("BENCH_TIMER_OUT")
        if not out:
            return
        with open(out, "w") as f:
            json.dump({"loaded": self._loaded, "playbook_start": self._playbook_start,
                       "end": now, "tasks": self._tasks, "host_starts": self._host_starts}, f)
