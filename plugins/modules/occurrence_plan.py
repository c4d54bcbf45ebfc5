#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: occurrence_plan
short_description: Plan the graceful shutdown or wakeup of a multi-occurrence agent
version_added: 0.1.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - Discovers the occurrences of one agent (processes or replicas sharing one identity), assigns them to the
    groups C(explorer) (1), C(early_adopter) (30%, at least 1) and C(general) (the rest) with the
    C(occurrences) preset of M(agentfleet.rollout.wave_split), cuts the waves into batches that respect a
    capacity floor, and writes the shutdown message that states the plan to the explorer.
  - C(occurrence_id=default) is the explorer when present.
  - Read-only; it probes the occurrences' health endpoints (a GET) unless O(probe=false).
  - Every health answer is judged as C(working), C(draining) (C(cognitive_state=shutdown) while answering),
    C(stopped) (connection refused, or 502/503/504 from a proxy) or C(no_answer) (a timeout).
  - For a shutdown only working occurrences are planned; the others are listed in RV(left_out) with that state,
    never silently dropped. A wakeup plans every occurrence.
  - Runs on the controller (action plugin); with O(group) it reads C(agent_url), C(agent_id), C(occurrence_id)
    and C(canary_group) of each host from the inventory.
options:
  members:
    description:
      - The occurrences, as dicts with at least C(name) and C(agent_url) (and usually C(agent_id), C(occurrence_id)).
      - Mutually exclusive with O(group).
    type: list
    elements: dict
  group:
    description:
      - An inventory group whose hosts are the occurrences (resolved on the controller).
      - Mutually exclusive with O(members).
    type: str
  hosts:
    description:
      - Restrict O(group) to these hosts (those of O(group) that are in the list), for instance the play's hosts
        after C(--limit) (C(ansible_play_hosts)). An empty list leaves no occurrence (an error).
      - Requires O(group).
    type: list
    elements: str
  limit:
    description:
      - The C(--limit) the run was started with (C(ansible_limit)), recorded with the deployment and in the report
        (RV(limit)); informational, O(hosts) does the restricting.
    type: str
  purpose:
    description: Plan a V(shutdown) or a V(wakeup).
    type: str
    default: shutdown
    choices: [shutdown, wakeup]
  agent_id:
    description:
      - The agent to plan for. Required when the occurrences belong to several agents.
    type: str
  discovery:
    description:
      - V(inventory) groups occurrences by the inventory's C(agent_id) and C(occurrence_id).
      - V(health) takes C(agent_id) and C(occurrence_id) from each occurrence's health answer (the inventory's
        values are kept for occurrences that do not answer, which are reported).
    type: str
    default: inventory
    choices: [inventory, health]
  probe:
    description:
      - Probe every occurrence's health before planning (always done with O(discovery=health)).
      - Without probing every occurrence counts as serving.
    type: bool
    default: true
  method:
    description:
      - V(sorted) is the FSD's rule (occurrence ids sorted, C(default) first); V(stable) uses rendezvous hashing
        so an occurrence joining or leaving moves no other one.
    type: str
    default: sorted
    choices: [sorted, stable]
  salt:
    description: Salt for the V(stable) method.
    type: str
    default: ""
  reason:
    description: Why the agent is shut down; quoted in the plan message.
    type: str
  wave_delays:
    description: Seconds to wait before wave 2 and before wave 3 (after the previous wave is verified).
    type: list
    elements: float
    default: [30.0, 60.0]
  wave_timeout:
    description:
      - Seconds each wave has to stop (shutdown; every occurrence must have stopped, draining is not enough) or to
        reach its expected state (wakeup).
      - A shutdown's explorer wave has O(stop_timeout) instead.
    type: float
    default: 300.0
  stop_timeout:
    description:
      - Shutdown only - seconds the explorer has to stop after it was asked; stated in the plan message and given as
        the explorer wave's timeout in the plan. Pass the same value as C(stop_timeout) of
        M(agentfleet.rollout.occurrence_shutdown), which enforces it.
    type: float
    default: 600.0
  min_serving_fraction:
    description:
      - Capacity floor for a shutdown, in [0, 1). A batch takes at most C(floor((1 - fraction) * serving))
        occurrences (at least 1) out of those still serving, so that this fraction keeps serving while it drains;
        a wave is split into batches when needed. V(0) sends each wave at once.
      - The floor applies until the final wave; the final wave is one batch.
      - When even a batch of one would break the floor before the final wave, the plan fails
        (C(cannot keep 90% serving, taking out even one of 9 leaves 88.9%)) unless O(allow_below_floor).
    type: float
    default: 0.0
  allow_below_floor:
    description:
      - Plan anyway (batches of one) when O(min_serving_fraction) cannot be kept before the final wave;
        RV(below_floor) and a plan line say so.
    type: bool
    default: false
extends_documentation_fragment:
  - agentfleet.rollout.connection
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.CONTROLLER
  - agentfleet.rollout.attributes.IDEMPOTENT
"""

EXAMPLES = r"""
- name: Plan the shutdown of the agent datum
  agentfleet.rollout.occurrence_plan:
    group: agents
    agent_id: datum
    reason: "host maintenance"
    wave_delays: [30, 60]
    min_serving_fraction: 0.8
  register: plan

- name: Show the plan
  ansible.builtin.debug:
    msg: "{{ plan.plan + [plan.message] }}"
"""

RETURN = r"""
kind:
  description: What was planned.
  returned: success
  type: str
  sample: shutdown
agent_id:
  description: The agent the plan is for.
  returned: success
  type: str
  sample: datum
fleet_key:
  description: The key under which the rollout holds its lease in the state (group and agent).
  returned: success
  type: str
  sample: agents/datum
total:
  description: Occurrences of the agent found.
  returned: success
  type: int
  sample: 9
serving:
  description: Occurrences that were working (answered, not draining).
  returned: success
  type: int
  sample: 9
waves:
  description: The waves in order, each with its members, C(delay), C(timeout) and C(batches).
  returned: success
  type: list
  elements: dict
  sample: [{"index": 1, "name": "explorer", "size": 1, "delay": 0.0, "timeout": 300.0,
            "members": [{"name": "datum-default", "occurrence_id": "default", "cohort": "explorer", "wave": 1}],
            "batches": [{"index": 1, "members": ["datum-default"], "serving_before": 9, "serving_fraction": 0.8889,
                         "fleet_serving_fraction": 0.8889, "floor_kept": true}]}]
explorer:
  description: The one occurrence asked to decide for all (null when nothing serves).
  returned: success
  type: str
  sample: datum-default
left_out:
  description:
    - Occurrences of the agent not in a shutdown plan, with their state (C(draining), C(stopped) or C(no_answer))
      and cause.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "datum-occ-8", "state": "stopped", "cause": "connection refused"}]
unknown:
  description: With O(discovery=health), occurrences that did not answer and whose agent is unknown.
  returned: success
  type: list
  elements: dict
  sample: []
message:
  description: The shutdown message sent to the explorer (null for a wakeup).
  returned: success
  type: str
  sample: "SYSTEM SHUTDOWN REQUEST ..."
reason:
  description: The reason given.
  returned: success
  type: str
  sample: host maintenance
min_serving_fraction:
  description: The capacity floor used.
  returned: success
  type: float
  sample: 0.8
lowest_serving_fraction:
  description:
    - Lowest planned share of the occurrences serving at the start (RV(serving)) that keeps serving while a batch
      before the final wave drains (null without such batches).
  returned: success
  type: float
  sample: 0.6667
lowest_batch_serving_fraction:
  description:
    - Lowest planned share, before the final wave, of the occurrences still serving when a batch starts that keep
      serving while it drains (what the floor bounds).
  returned: success
  type: float
  sample: 0.8571
lowest_serving_fraction_final_wave:
  description: Lowest planned share of the occurrences serving at the start in the final wave (the floor does not apply there).
  returned: success
  type: float
  sample: 0.0
below_floor:
  description: With O(allow_below_floor), why the floor cannot be kept (null when it can).
  returned: success
  type: str
  sample: null
limit:
  description: The O(limit) given (null without one); the deployment and its report record it.
  returned: success
  type: str
  sample: datum-default,datum-occ-1
plan:
  description: One human-readable line per wave (and per occurrence left out).
  returned: success
  type: list
  elements: str
  sample: ["wave 1 explorer: 1 occurrence (default)", "wave 2 early_adopter: 3 occurrences (occ-1, occ-2, occ-3), after 30s"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._module import run_module
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.plan import occurrence_plan
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.specs import PLAN_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.steps import PLAN_ERRORS
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.steps import PLAN_MUTUALLY_EXCLUSIVE
from ansible_collections.agentfleet.rollout.plugins.module_utils._occurrence.steps import PLAN_REQUIRED_ONE_OF


def main():
    run_module(AnsibleModule, PLAN_SPEC, occurrence_plan, PLAN_ERRORS, controller_only="group",
               required_one_of=PLAN_REQUIRED_ONE_OF, mutually_exclusive=PLAN_MUTUALLY_EXCLUSIVE,
               required_by={"hosts": "group"})


if __name__ == "__main__":
    main()
