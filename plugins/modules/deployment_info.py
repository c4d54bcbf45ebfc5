#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: deployment_info
short_description: Read deployments from the rollout state - one deployment's report, or a fleet's history
version_added: 0.2.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - Reads the rollout state file (O(state_path)) and changes nothing. A state file that does not exist yet is not
    created (the result is empty).
  - With O(deployment_id), the deployment's full report (RV(report), the schema of docs/reports.md, for a rollout, a
    shutdown or a wakeup) and its RV(summary_table); it fails for a deployment id that is not in the state file.
  - Without it, RV(deployments) lists the deployments of O(fleet_key) (or of every fleet), newest first, at most
    O(max_deployments).
  - Runs on the controller (action plugin), without forking a Python interpreter per task.
options:
  deployment_id:
    description: The deployment to report on.
    type: str
  fleet_key:
    description: Without O(deployment_id), list only the deployments of this fleet key.
    type: str
  deployment_key:
    description:
      - Return the key's RV(status) (its newest version, or O(version), or O(deployment_id)) and RV(history)
        (docs/lifecycle.md); RV(report) is then that deployment's report.
    type: str
  version:
    description: With O(deployment_key), the version to show in RV(status).
    type: int
  max_deployments:
    description: Without O(deployment_id), list at most this many deployments (at least 1).
    type: int
    default: 50
extends_documentation_fragment:
  - agentfleet.rollout.state.EXISTING
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.CONTROLLER
  - agentfleet.rollout.attributes.info_module
seealso:
  - module: agentfleet.rollout.deployment
"""

EXAMPLES = r"""
- name: The history of the production fleet
  agentfleet.rollout.deployment_info:
    state_path: /var/lib/agentfleet/rollout.db
    fleet_key: production
  register: history

- name: Show it
  ansible.builtin.debug:
    msg: "{{ history.deployments | map(attribute='deployment_id') | zip(history.deployments | map(attribute='status')) }}"

- name: The status and version history of a deployment key
  agentfleet.rollout.deployment_info:
    state_path: /var/lib/agentfleet/rollout.db
    deployment_key: production
  register: production

- name: One deployment's report
  agentfleet.rollout.deployment_info:
    state_path: /var/lib/agentfleet/rollout.db
    deployment_id: deploy-20260101-120000
  register: info
"""

RETURN = r"""
deployments:
  description:
    - The deployments (with O(deployment_id), just that one), newest first. Each has C(deployment_id), C(fleet_key),
      C(strategy) (a shutdown's is C(shutdown), a wakeup's C(wakeup)), C(target_version), C(status), C(message),
      C(limit), C(active) (its owner is running it right now), C(created_at), C(started_at), C(finished_at)
      (ISO-8601 UTC) and C(totals) (agents per result).
    - Empty when the state file does not exist.
  returned: always
  type: list
  elements: dict
  sample: [{"deployment_id": "deploy-production-2.0.0", "fleet_key": "production", "strategy": "canary",
            "target_version": "2.0.0", "status": "completed", "message": null, "limit": null, "active": false,
            "created_at": "2026-01-01T12:00:00.000000Z", "started_at": "2026-01-01T12:00:00.000000Z",
            "finished_at": "2026-01-01T12:05:00.000000Z",
            "totals": {"updated": 10, "deferred": 0, "declined": 0, "rejected": 0, "failed": 0, "reverted": 0,
                       "skipped": 0, "pending": 0}}]
report:
  description:
    - With O(deployment_id), the deployment's report (docs/reports.md). C(schema), C(kind), C(deployment_id),
      C(fleet_key), C(strategy), C(target_version), C(status), C(message), C(limit), the times, C(totals), C(waves)
      and C(agents) (one per agent with its cohort, wave, decision, result, detail, versions and times), plus the
      keys of its kind.
    - Null without O(deployment_id) or when the state file does not exist.
  returned: always
  type: dict
  sample: {"schema": 2, "kind": "rollout", "deployment_id": "deploy-production-2.0.0", "fleet_key": "production",
           "strategy": "canary", "target_version": "2.0.0", "status": "completed", "message": null, "limit": null,
           "created_at": "2026-01-01T12:00:00.000000Z", "started_at": "2026-01-01T12:00:00.000000Z",
           "finished_at": "2026-01-01T12:05:00.000000Z", "generated_at": "2026-01-01T12:06:00.000000Z",
           "totals": {"updated": 10, "deferred": 0, "declined": 0, "rejected": 0, "failed": 0, "reverted": 0,
                      "skipped": 0, "pending": 0},
           "waves": [], "agents": []}
keys:
  description:
    - Without O(deployment_id) and O(deployment_key), every deployment key with its newest version's record (as in
      RV(history)).
  returned: always
  type: list
  elements: dict
  sample: []
keys_lines:
  description: RV(keys) as lines of text (what C(python -m agentfleet_cli list) prints).
  returned: without O(deployment_id) and O(deployment_key), when the state file exists
  type: list
  elements: str
  sample: ["key                  version status                  target     phase"]
status:
  description:
    - With O(deployment_key), the deployment record (docs/lifecycle.md) of its newest version (or O(version)).
      C(deployment_key), C(version), C(deployment_id), C(fleet_key), C(strategy), C(status), C(phase) (in words),
      C(source_version), C(target_version), C(policy), C(rollback_to) (a rollback's version), C(rollback_target)
      (the last completed version before it, C(version) and C(target_version)), C(actor), C(reason), C(message),
      C(active), the times, C(counts) (CIRISManager's C(total), C(updated), C(deferred), C(declined),
      C(rejected), C(failed), plus C(reverted), C(skipped), C(pending)), C(health) (C(waves), C(waves_passed),
      C(waves_failed), C(healthy), C(gated), C(last_failure)), C(events) and C(agents) (per-agent results).
  returned: always (null without O(deployment_key))
  type: dict
  sample: {"deployment_key": "production", "version": 2, "status": "completed", "phase": "completed",
           "source_version": "1.0.0", "target_version": "2.0.0",
           "counts": {"total": 10, "updated": 10, "deferred": 0, "declined": 0, "rejected": 0, "failed": 0}}
history:
  description: With O(deployment_key), every version's record (without events and agents), newest first.
  returned: always
  type: list
  elements: dict
  sample: []
status_lines:
  description: RV(status) as lines of text (what C(python -m agentfleet_cli status) prints).
  returned: with O(deployment_key)
  type: list
  elements: str
  sample: ["production version 2: completed (completed)"]
history_lines:
  description: RV(history) as a table (what C(python -m agentfleet_cli history) prints).
  returned: with O(deployment_key)
  type: list
  elements: str
  sample: ["version status                  strategy   from       to         updated    created"]
summary_table:
  description: With O(deployment_id) of a rollout, its report as a table, one line per wave and cohort and a total line.
  returned: always
  type: list
  elements: str
  sample: ["deployment deploy-production-2.0.0 (canary -> 2.0.0): completed",
           "total: 10 agents: 10 updated, 0 declined, 0 deferred, 0 rejected, 0 failed, 0 reverted, 0 skipped"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._module import run_module
from ansible_collections.agentfleet.rollout.plugins.module_utils import _argspecs
from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners


def main():
    run_module(AnsibleModule, _argspecs.DEPLOYMENT_INFO_SPEC, _runners.run_deployment_info, _runners.ENGINE_ERRORS)


if __name__ == "__main__":
    main()
