# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration: the rollout_progress callback, enabled from the installed collection, in a real ansible-playbook run.

A test-only action plugin (written next to the playbook, in action_plugins/) returns the
rollout_wave_summary / rollout_deployment_summary dicts the rollout roles return.
"""

from __future__ import annotations

import json
import textwrap

from conftest import ansible_env, run_playbook

ACTION = '''
from __future__ import annotations

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    """Returns its arguments as the task result; fail=true makes it a failed result."""

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        failed = bool(args.pop("fail", False))
        result.update(args)
        result["changed"] = False
        if failed:
            result["failed"] = True
            result["msg"] = "the wave failed its gate"
        return result
'''


def wave(index, name, **kw):
    s = {"wave": index, "wave_count": 4, "name": name, "size": 10, "accepted": 8, "deferred": 1, "declined": 1,
         "rejected": 0, "unreachable": 0, "skipped": 0, "healthy": 8, "updated": 8, "elapsed": 2.04,
         "passed": True, "halt_reason": None}
    s.update(kw)
    return s


DEPLOYMENT = {
    "deployment_id": "d-cb-1", "status": "failed", "target_version": "2.0.0",
    "totals": {"updated": 24, "deferred": 3, "failed": 1},
    "report_path": "/var/tmp/agentfleet/d-cb-1.json",
    "summary_table": ["deployment d-cb-1 (canary -> 2.0.0): failed", "total: 40 agents: 24 updated, 3 deferred, 1 failed"],
}


def playbook():
    def task(name, args, **kw):
        t = {"name": name, "emit_summary": args}
        t.update(kw)
        return t

    tasks = [
        task("Wave 1 (run_once)", {"rollout_wave_summary": wave(1, "explorers"), "deployment_id": "d-cb-1"},
             run_once=True),
        task("Wave 2 (every host returns it)", {"rollout_wave_summary": wave(2, "early_adopters", deployment_id="d-cb-1")}),
        task("Waves 3 and 4 (a loop)", {"rollout_wave_summary": "{{ item }}", "deployment_id": "d-cb-1"},
             loop=[wave(3, "pragmatists"),
                   wave(4, "conservatives", passed=False, healthy=5,
                        halt_reason="wave 4 (conservatives) failed its health gate\ncause table")]),
        task("End of the deployment (a failed result)", {"rollout_deployment_summary": DEPLOYMENT, "fail": True},
             run_once=True, ignore_errors=True),
        task("A result without a summary", {"msg": "nothing for the callback"}),
    ]
    return [{"name": "Callback test", "hosts": "all", "gather_facts": False, "tasks": tasks}]


def setup(tmp_path):
    (tmp_path / "action_plugins").mkdir()
    (tmp_path / "action_plugins" / "emit_summary.py").write_text(ACTION)
    (tmp_path / "play.yml").write_text(json.dumps(playbook(), indent=1))
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("agent-a ansible_connection=local\nagent-b ansible_connection=local\n")
    return inventory


def progress_lines(output):
    return [line for line in output.splitlines() if line.startswith("[agentfleet]")]


WAVE_LINES = [
    "[agentfleet] wave 1/4 explorers: 10 agents | accepted 8, declined 1, deferred 1, rejected 0, unreachable 0"
    " | healthy 8/8 | 2.0s | passed",
    "[agentfleet] wave 2/4 early_adopters: 10 agents | accepted 8, declined 1, deferred 1, rejected 0, unreachable 0"
    " | healthy 8/8 | 2.0s | passed",
    "[agentfleet] wave 3/4 pragmatists: 10 agents | accepted 8, declined 1, deferred 1, rejected 0, unreachable 0"
    " | healthy 8/8 | 2.0s | passed",
    "[agentfleet] wave 4/4 conservatives: 10 agents | accepted 8, declined 1, deferred 1, rejected 0, unreachable 0"
    " | healthy 5/8 | 2.0s | FAILED: wave 4 (conservatives) failed its health gate",
]


def test_enabled_in_ansible_cfg_prints_each_wave_once_and_the_summary_after_the_recap(tmp_path):
    inventory = setup(tmp_path)
    (tmp_path / "ansible.cfg").write_text(textwrap.dedent("""\
        [defaults]
        callbacks_enabled = agentfleet.rollout.rollout_progress
        """))
    env = ansible_env(tmp_path)
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    env["ANSIBLE_CONFIG"] = str(tmp_path / "ansible.cfg")
    res = run_playbook(str(tmp_path / "play.yml"), tmp_path, inventory=inventory, env=env, timeout=120)
    assert res.rc == 0, res.output
    assert progress_lines(res.stdout) == WAVE_LINES + [
        "[agentfleet] deployment d-cb-1 (canary -> 2.0.0): failed",
        "[agentfleet] total: 40 agents: 24 updated, 3 deferred, 1 failed",
        "[agentfleet] report: /var/tmp/agentfleet/d-cb-1.json",
    ]
    # the waves as they happen (before the recap), the deployment after it
    stdout = res.stdout
    recap = stdout.index("PLAY RECAP")
    assert stdout.index(WAVE_LINES[3]) < recap < stdout.index("[agentfleet] report:")
    assert stdout.index(WAVE_LINES[0]) < stdout.index("TASK [Wave 2")


def test_enabled_from_the_environment_with_options(tmp_path):
    inventory = setup(tmp_path)
    env = ansible_env(tmp_path, ANSIBLE_CALLBACKS_ENABLED="agentfleet.rollout.rollout_progress",
                      AGENTFLEET_PROGRESS_SHOW_TABLE="false")
    res = run_playbook(str(tmp_path / "play.yml"), tmp_path, inventory=inventory, env=env, timeout=120)
    assert res.rc == 0, res.output
    assert progress_lines(res.stdout) == WAVE_LINES + [
        "[agentfleet] deployment d-cb-1: failed, target 2.0.0 | updated 24, deferred 3, failed 1",
        "[agentfleet] report: /var/tmp/agentfleet/d-cb-1.json",
    ]

    env["AGENTFLEET_PROGRESS_OUTPUT"] = "none"
    quiet = run_playbook(str(tmp_path / "play.yml"), tmp_path, inventory=inventory, env=env, timeout=120)
    assert quiet.rc == 0, quiet.output
    assert "TASK [Wave 1" in quiet.stdout and progress_lines(quiet.stdout) == []


def test_not_enabled_prints_nothing(tmp_path):
    inventory = setup(tmp_path)
    env = ansible_env(tmp_path)
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    res = run_playbook(str(tmp_path / "play.yml"), tmp_path, inventory=inventory, env=env, timeout=120)
    assert res.rc == 0, res.output
    assert "TASK [Wave 1" in res.stdout and progress_lines(res.stdout) == []
