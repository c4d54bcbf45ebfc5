# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Rollout state, report and audit options of the occurrence_* modules."""

    DOCUMENTATION = r"""
options:
  takeover:
    description: Abort an interrupted rollout of another kind that holds the fleet key, and start this one.
    type: bool
    default: false
  state_path:
    description: The rollout state (SQLite).
    type: path
    default: ~/.agentfleet/state.db
  report_path:
    description: The JSON report; default C(~/.agentfleet/reports/<deployment_id>.json).
    type: path
  audit_path:
    description: The audit log (JSON lines); default next to the report, C(.audit.jsonl).
    type: path
"""
