# -*- coding: utf-8 -*-
# Test helper (not part of the collection): how many forked workers each task of a run cost, per host.
# ansible-core queues one worker per host for every task but `meta` (and one for a run_once task); each
# queued worker sends v2_runner_on_start. Enabled with ANSIBLE_CALLBACK_PLUGINS=<this dir>,
# ANSIBLE_CALLBACKS_ENABLED=worker_count and WORKER_COUNT_OUT=<file.json>:
# {"<task's file:line>": {"name": <the task's name>, "batches": {"<play start #>": {host: workers}}}}
# (a serial play starts once per batch), and under "_plays" {"<play start #>": {"name": <the play's name>,
# "implicit": {<meta>: how many}}}: the implicit meta tasks ansible-core ran without a worker, one per host each
# (role_complete at the end of an imported role, flush_handlers), counted from v2_playbook_on_task_start.
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: worker_count
    type: aggregate
    short_description: forked workers per task and host (tests)
    description: Writes, per play and task, how many workers each host got to $WORKER_COUNT_OUT (JSON).
    requirements: [enable in configuration]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "worker_count"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # ansible-core sends the events of implicit tasks (role_complete, flush_handlers) only to callbacks that
        # ask (CallbackBase.__init__ sets it False)
        self.wants_implicit_tasks = True
        self._batch = 0
        self._counts = {}
        self._plays = {}

    def v2_playbook_on_play_start(self, play):
        self._batch += 1
        self._plays[str(self._batch)] = {"name": play.get_name(), "implicit": {}}

    def v2_playbook_on_task_start(self, task, is_conditional):
        meta = task._get_meta() if task.implicit else None
        if meta:
            implicit = self._plays[str(self._batch)]["implicit"]
            implicit[meta] = implicit.get(meta, 0) + 1

    def v2_runner_on_start(self, host, task):
        entry = self._counts.setdefault(task.get_path() or task.get_name(), {"name": task.get_name(), "batches": {}})
        per_host = entry["batches"].setdefault(str(self._batch), {})
        per_host[host.get_name()] = per_host.get(host.get_name(), 0) + 1

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["WORKER_COUNT_OUT"], "w") as f:
            json.dump(dict(self._counts, _plays=self._plays), f, indent=1, sort_keys=True)
