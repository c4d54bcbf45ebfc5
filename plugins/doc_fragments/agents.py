# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The ``agents`` option (``_common.AGENT_SPEC``) of the modules that act on a list of agents."""

    DOCUMENTATION = r"""
options:
  agents:
    description:
      - The agents to act on, usually a wave's C(members) from M(agentfleet.rollout.wave_split).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Inventory name of the agent; the key of every per-agent result.
        type: str
        required: true
      agent_url:
        description:
          - Base URL of the agent (C(http://) or C(https://)), possibly with a path prefix
            (C(https://agents.example.org/api/datum)).
        type: str
        required: true
      agent_id:
        description: The agent identity shared by its occurrences; recorded in the state and the audit log.
        type: str
      occurrence_id:
        description: The occurrence of the agent; recorded in the state.
        type: str
      cohort:
        description: The agent's cohort (set by M(agentfleet.rollout.wave_split)); recorded in the state and the audit log.
        type: str
      wave:
        description: The agent's wave index (set by M(agentfleet.rollout.wave_split)); recorded in the state and the audit log.
        type: int
      version:
        description: The version the agent runs (what a revert would put back).
        type: str
      version_before:
        description: The version the agent ran before the update.
        type: str
      canary_group:
        description: The cohort this agent is pinned to.
        type: str
"""
