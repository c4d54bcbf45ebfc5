#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: wave_split
short_description: Split a fleet of agents into ordered rollout waves (cohorts)
version_added: 0.1.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - Assigns every member of a fleet to a cohort and returns the non-empty cohorts as ordered waves.
  - "Preset C(ciris): explorers 10%, early_adopters 30%, pragmatists 40%, conservatives 20% (CIRISManager's canary groups)."
  - "Preset C(occurrences): explorer 1, early_adopter 30% (at least 1), general the rest (the multi-occurrence FSD)."
  - "Preset C(all): one wave with everyone."
  - Every non-empty fleet gets a non-empty first wave.
  - A member's C(canary_group) (host var) pins it to that cohort whatever the method says.
  - Runs on the controller (action plugin); with O(group) or O(hosts) it reads C(agent_url), C(agent_id),
    C(occurrence_id) and C(canary_group) of each host from the inventory (a host without C(agent_url) is an error).
  - The rollout playbooks plan over O(hosts) set to C(ansible_play_hosts) (the play's agents after C(--limit)) and
    hand the waves to M(agentfleet.rollout.deployment) with O(agentfleet.rollout.deployment#module:state=running).
options:
  members:
    description:
      - The fleet members, as names or dicts with at least C(name) (and usually C(agent_url), C(agent_id),
        C(occurrence_id), C(canary_group)). Duplicate names are an error.
      - Mutually exclusive with O(group) and O(hosts).
    type: list
    elements: raw
  group:
    description:
      - An inventory group whose hosts are the members (resolved on the controller).
      - Mutually exclusive with O(members).
    type: str
  hosts:
    description:
      - Inventory host names whose hosts are the members (resolved on the controller), for example
        C(ansible_play_hosts), the play's hosts after C(--limit).
      - With O(group), only the hosts of O(hosts) that are in the group.
      - Mutually exclusive with O(members).
    type: list
    elements: str
  cohorts:
    description:
      - A preset name (V(ciris), V(occurrences), V(all)) or a list of cohorts, each a dict with C(name) and exactly
        one of C(percent), C(count) or C(rest=true); optional C(min).
      - Percentages must sum to 100 when every cohort is a percentage; at most one cohort takes the rest;
        without a rest cohort the last cohort takes what counts and percentages leave.
    type: raw
    default: ciris
  method:
    description:
      - V(sorted) cuts the members sorted by id (C(default) first), the FSD's rule.
      - V(stable) uses weighted rendezvous hashing of id and O(salt); a member joining or leaving the fleet changes
        no other member's cohort (except when the first wave would otherwise be empty and a member is lifted into it).
    type: str
    default: sorted
    choices: [sorted, stable]
  salt:
    description: Salt for the V(stable) method; change it to draw different cohorts.
    type: str
    default: ""
  id_key:
    description: The member field that orders/hashes members.
    type: str
    default: name
    choices: [name, occurrence_id, agent_id]
  strategy:
    description:
      - Plan the waves of a rollout strategy from the update policy (O(canary), O(max_parallel), O(auto_promote))
        instead of from O(cohorts) alone.
      - V(canary) - the cohorts of O(canary) (default O(cohorts)), or with a count N a C(canary) wave of N members
        then the rest in one wave.
      - V(rolling), V(blue_green) - a C(canary) wave of O(canary) members when it is a count > 0, then the rest in
        batches of at most O(max_parallel) (waves C(batch-1), C(batch-2), ...).
      - V(immediate) - one wave C(all).
      - Without it the waves are O(cohorts).
    type: str
    choices: [canary, rolling, blue_green, immediate]
  canary:
    description:
      - With O(strategy), the canary - a count (a whole number >= 0) or cohorts (a preset name or a list, as
        O(cohorts); V(canary) strategy only). Empty - the strategy's default (V(canary) uses O(cohorts), the others
        no canary wave).
    type: raw
  max_parallel:
    description:
      - With O(strategy=rolling) or O(strategy=blue_green), the most members of a batch (>= 1). Ignored otherwise.
    type: int
    default: 0
  auto_promote:
    description:
      - With O(strategy), whether the rollout goes on after its canary wave by itself. Empty - false when O(canary) is
        a count (the update block's default), true for cohorts (which roll on, as CIRISManager's do).
      - The result's RV(promote_after) says after which wave the rollout stops, awaiting promotion.
    type: raw
extends_documentation_fragment:
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.CONTROLLER
  - agentfleet.rollout.attributes.IDEMPOTENT
"""

EXAMPLES = r"""
- name: Plan CIRIS-style waves for the agents group
  agentfleet.rollout.wave_split:
    group: agents
    cohorts: ciris
  register: plan

- name: Plan the waves over the play's agents (after --limit), once
  agentfleet.rollout.wave_split:
    hosts: "{{ ansible_play_hosts }}"
    cohorts: ciris
  register: split
  run_once: true

- name: Custom cohorts, stable across fleet changes
  agentfleet.rollout.wave_split:
    members: "{{ groups['agents'] }}"
    cohorts:
      - {name: canary, count: 2}
      - {name: half, percent: 50}
      - {name: rest, rest: true}
    method: stable
    salt: "2026-q4"

- name: A rolling plan - a canary of 2, then batches of at most 3
  agentfleet.rollout.wave_split:
    hosts: "{{ ansible_play_hosts }}"
    strategy: rolling
    canary: 2
    max_parallel: 3
  register: split
  run_once: true
"""

RETURN = r"""
waves:
  description: The non-empty waves in rollout order; every member carries its C(cohort) and C(wave).
  returned: success
  type: list
  elements: dict
  sample: [{"index": 1, "name": "explorers", "size": 1, "members": [{"name": "agent-000", "cohort": "explorers", "wave": 1}]}]
cohort_sizes:
  description: Members per cohort (empty cohorts included).
  returned: success
  type: dict
  sample: {"explorers": 1, "early_adopters": 3, "pragmatists": 4, "conservatives": 2}
total:
  description: Number of members.
  returned: success
  type: int
  sample: 10
plan:
  description: One human-readable line per wave.
  returned: success
  type: list
  elements: str
  sample: ["wave 1 explorers: 1", "wave 2 early_adopters: 3"]
canary_wave:
  description: The index of the canary wave (the first wave, when the plan has a canary and more than one wave), else 0.
  returned: success
  type: int
  sample: 1
auto_promote:
  description: Whether the rollout goes on after its canary wave by itself (O(auto_promote), or its default).
  returned: success
  type: bool
  sample: false
promote_after:
  description: The wave after which the rollout stops, its deployment staged awaiting promotion (0 - it does not stop).
  returned: success
  type: int
  sample: 1
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._cohorts import WAVE_SPLIT_ERRORS
from ansible_collections.agentfleet.rollout.plugins.module_utils._cohorts import WAVE_SPLIT_MUTUALLY_EXCLUSIVE
from ansible_collections.agentfleet.rollout.plugins.module_utils._cohorts import WAVE_SPLIT_REQUIRED_ONE_OF
from ansible_collections.agentfleet.rollout.plugins.module_utils._cohorts import WAVE_SPLIT_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._cohorts import wave_plan
from ansible_collections.agentfleet.rollout.plugins.module_utils._module import run_module


def plan(params, check_mode):
    return wave_plan(params)


def main():
    run_module(AnsibleModule, WAVE_SPLIT_SPEC, plan, WAVE_SPLIT_ERRORS, controller_only="group",
               required_one_of=WAVE_SPLIT_REQUIRED_ONE_OF, mutually_exclusive=WAVE_SPLIT_MUTUALLY_EXCLUSIVE)


if __name__ == "__main__":
    main()
