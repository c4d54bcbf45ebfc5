# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from ansible.utils.display import Display

from ansible_collections.agentfleet.rollout.plugins.module_utils import _argspecs
from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners
from ansible_collections.agentfleet.rollout.plugins.module_utils import _wave
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._action import EngineAction

display = Display()

# What the role's round (roles/rollout/tasks/wave_round.yml) leaves on each agent's host: the error of its
# failed tasks (set in the rescue, tagged with the round's id) and what the driver reported (docker_update.yml)
TASK_ERROR_FACT = "_rollout_task_error"
DRIVER_RESULTS_FACT = "_rollout_driver_results"


def round_results(task_vars, rnd):
    """Read what the previous round's tasks did on each of its hosts: ``(failed, driver_results)``.

    ``failed`` maps a host to its error: the message its rescue recorded for this round, or "unreachable"
    when the host left the batch. Only the round's hosts are read (one get_vars each).
    """
    hosts = list((rnd or {}).get("hosts") or [])
    if not hosts:
        return {}, {}
    hostvars = task_vars.get("hostvars") or {}
    batch = set(task_vars.get("ansible_play_batch") or hosts)
    purpose = rnd.get("purpose") or "update"
    failed, driver = {}, {}
    for host in hosts:
        if host not in batch:
            failed[host] = "its host became unreachable during the %s tasks" % purpose
            continue
        try:
            host_vars = hostvars[host]
        except KeyError:
            failed[host] = "not in the inventory"
            continue
        error = host_vars.get(TASK_ERROR_FACT)
        if isinstance(error, dict) and error.get("round") == rnd.get("id"):
            failed[host] = str(error.get("msg") or "the %s tasks failed" % purpose)
        results = host_vars.get(DRIVER_RESULTS_FACT)
        if isinstance(results, dict) and isinstance(results.get("on_" + purpose), dict):
            driver[host] = dict(results["on_" + purpose])
    return failed, driver


def blue_green_results(task_vars, phase, hosts):
    """What the blue-green wave's tasks did on each host (roles/rollout/tasks/wave_blue_green_driver.yml):
    ``(candidate_urls, failed)``. Phase ``retire``: each host's ``rollout_candidate_url`` (set by the user's candidate
    tasks) and ``_rollout_candidate_error``; phase ``finish``: ``_rollout_retire_error``. A host that left the batch
    failed."""
    hostvars = task_vars.get("hostvars") or {}
    batch = set(task_vars.get("ansible_play_batch") or hosts)
    fact = "_rollout_candidate_error" if phase == "retire" else "_rollout_retire_error"
    urls, failed = {}, {}
    for host in hosts:
        if host not in batch:
            failed[host] = "its host became unreachable while %s" % (
                "starting the candidate" if phase == "retire" else "promoting the candidate")
            continue
        host_vars = hostvars[host]
        error = host_vars.get(fact)
        if error:
            failed[host] = str(error)
        if phase == "retire" and host_vars.get("rollout_candidate_url"):
            urls[host] = str(host_vars.get("rollout_candidate_url"))
    return urls, failed


class ActionModule(EngineAction):
    ARGUMENT_SPEC = _argspecs.WAVE_SPEC
    REQUIRED_IF = _argspecs.WAVE_REQUIRED_IF
    ENGINE_ERRORS = _runners.ENGINE_ERRORS
    # a wave is one long task: it stops with the ansible-playbook that started it
    WATCH_CONTROLLER = True

    def more_token_hosts(self, params):
        # the next wave, asked ahead by this one (none driver): its agents are not in this batch
        return [m.get("name") for m in ((params.get("next_wave") or {}).get("members") or []) if m.get("name")]

    def run_engine(self, params, task_vars):
        if params["phase"] == "round" and not params.get("update_failed") and not params.get("driver_results"):
            failed, driver = round_results(task_vars, params.get("round"))
            params = dict(params, update_failed=failed, driver_results=driver)
        elif params["phase"] in ("retire", "finish") and params.get("strategy") == "blue_green" \
                and not params.get("update_failed") and not params.get("candidate_urls"):
            urls, failed = blue_green_results(task_vars, params["phase"], params.get("update_hosts") or [])
            params = dict(params, update_failed=failed, candidate_urls=urls)
        # long waves are not silent: the engine reports every few seconds while it waits
        # (in a worker process Display forwards to the controller's output, and so to AWX's job output)
        return _wave.run_wave(params, check_mode=self.check_mode,
                              progress=lambda line: display.display("[agentfleet] " + line), run=self.run_ctx)
