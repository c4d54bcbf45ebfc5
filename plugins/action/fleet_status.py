# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from ansible_collections.agentfleet.rollout.plugins.module_utils._fleet import FLEET_STATUS_ONE_OF
from ansible_collections.agentfleet.rollout.plugins.module_utils._fleet import FLEET_STATUS_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._fleet import run_fleet_status
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._action import EngineAction
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._inventory import members_from_group


class ActionModule(EngineAction):
    ARGUMENT_SPEC = FLEET_STATUS_SPEC
    REQUIRED_ONE_OF = FLEET_STATUS_ONE_OF
    MUTUALLY_EXCLUSIVE = [["agents", "group"], ["agents", "hosts"]]

    def run(self, tmp=None, task_vars=None):
        task_vars = dict(task_vars or {})
        args = self._task.args
        if args.get("group") is not None or args.get("hosts") is not None:
            # each agent's own token (rollout_token of its host) is read for the hosts probed, not for the
            # play's batch (this runs once on the controller)
            groups = task_vars.get("groups") or {}
            names = list(args["hosts"]) if args.get("hosts") is not None else list(groups.get(args["group"]) or [])
            if args.get("group") is not None and args.get("hosts") is not None:
                names = [h for h in groups.get(args["group"]) or [] if h in set(args["hosts"])]
            task_vars["ansible_play_batch"] = names
        return super().run(tmp, task_vars)

    def run_engine(self, params, task_vars):
        if params.get("group") or params.get("hosts") is not None:
            params = dict(params, agents=members_from_group(task_vars, params.get("group"), params.get("hosts")),
                          group=None, hosts=None)
        return run_fleet_status(params, check_mode=self.check_mode)
