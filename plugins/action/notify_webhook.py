# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import hashlib
import os
import tempfile

from ansible_collections.agentfleet.rollout.plugins.module_utils._run import controller_run_id
from ansible_collections.agentfleet.rollout.plugins.module_utils._webhook import WEBHOOK_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._webhook import events_of
from ansible_collections.agentfleet.rollout.plugins.module_utils._webhook import post_events
from ansible_collections.agentfleet.rollout.plugins.module_utils._webhook import validate_webhook
from ansible_collections.agentfleet.rollout.plugins.plugin_utils._action import EngineAction


class ActionModule(EngineAction):
    ARGUMENT_SPEC = WEBHOOK_SPEC

    def run_engine(self, params, task_vars):
        validate_webhook(params)
        events = events_of(params["source"], params["result"], params.get("deployment_key"), params.get("strategy"),
                           params.get("target_version"))
        out = {"changed": False, "events": [e["event"] for e in events], "sent": [], "undelivered": [], "spent": 0.0}
        if self.check_mode or not events:
            return out
        # the budget is the run's: what earlier events of this ansible-playbook spent is kept in a small file
        key = hashlib.sha256(("%s|%s" % (controller_run_id(os.getppid()), events[0].get("deployment_id"))).encode("utf-8")).hexdigest()[:24]
        ledger = os.path.join(tempfile.gettempdir(), "agentfleet-notify-%s" % key)
        try:
            with open(ledger) as handle:
                spent = float(handle.read().strip() or 0)
        except (OSError, ValueError):
            spent = 0.0
        sent = post_events(params["url"], params.get("headers"), events, max(0.0, params["budget"] - spent),
                           validate_certs=params["validate_certs"], ca_path=params.get("ca_path"))
        try:
            with open(ledger, "w") as handle:
                handle.write("%.3f" % (spent + sent["spent"]))
        except OSError:
            pass
        out.update(sent=sent["sent"], undelivered=sent["undelivered"], spent=sent["spent"])
        if sent["warnings"]:
            out["warnings"] = sent["warnings"]
        return out
