#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: agent_result
short_description: Show one agent's rollout outcome as its own task result (its PLAY RECAP row)
version_added: 0.2.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - The rollout playbooks ask, gate and judge a whole wave in one controller-side call. This per-host task turns
    the outcome recorded for each agent into that agent's own task result, so that PLAY RECAP, AWX host summaries,
    AWX's "relaunch on failed hosts" and C(ansible-playbook)'s exit code show every agent as Ansible users expect.
  - C(changed) when the agent was updated in this run; C(ok) when it was skipped (already on the target), rejected,
    deferred or declined, or was updated by an earlier run; C(failed) when its update or health gate failed, it
    accepted but did not stop, it was reverted, or it was unreachable.
  - The outcome comes either from O(from_result), the name of a registered result of
    M(agentfleet.rollout.rollout_wave) (its RV(agentfleet.rollout.rollout_wave#module:outcomes) mapping, read for
    C(inventory_hostname) without templating anything per host), or from O(outcome) given directly.
  - Runs on the controller (action plugin); it needs no connection to the host.
options:
  from_result:
    description:
      - Name of a variable holding a result of M(agentfleet.rollout.rollout_wave) (registered with C(run_once), so
        every host of the batch has it). The host's entry of its C(outcomes) is used; a host without one had
        nothing to do in the wave (C(ok)). When that result is a failure without outcomes, every host fails with
        its message.
      - Resolved by the action plugin; running the module on a host needs O(outcome) instead.
    type: str
  outcome:
    description:
      - The outcome itself, a dict with C(result), C(changed), C(failed), C(detail) and optionally C(decision),
        C(version_before), C(version_after).
    type: dict
  host:
    description: The agent the outcome belongs to (default, C(inventory_hostname)); only used in messages.
    type: str
notes:
  - Exactly one of O(from_result) and O(outcome) is required.
extends_documentation_fragment:
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.CONTROLLER
  - agentfleet.rollout.attributes.IDEMPOTENT
attributes:
  check_mode:
    details:
      - The same result as outside check mode (the outcome describes what happened or, in check mode, what is planned).
  idempotent:
    details:
      - It reports an outcome and changes nothing; C(changed) mirrors whether the agent was updated in this run.
seealso:
  - module: agentfleet.rollout.rollout_wave
"""

EXAMPLES = r"""
# In a batch of the waves play, after the wave ran once for the batch (run_once, register: wave_result)
- name: Each agent's result (PLAY RECAP)
  agentfleet.rollout.agent_result:
    from_result: wave_result

- name: An outcome computed by your own tasks
  agentfleet.rollout.agent_result:
    outcome:
      result: updated
      changed: true
      failed: false
      detail: "recreated on 2.0.0"
"""

RETURN = r"""
agent_result:
  description:
    - The agent's result, C(result) of its outcome (V(updated), V(declined), V(deferred), V(rejected), V(failed),
      V(reverted), V(skipped), V(pending), V(not asked); V(planned) in check mode).
    - Null when it had nothing to do in the wave.
  returned: always
  type: str
  sample: updated
decision:
  description: The agent's recorded decision (accept, pending, declined, defer, reject, unreachable), if any.
  returned: when the agent had an outcome
  type: str
  sample: accept
version_before:
  description: The version the agent ran before, where known.
  returned: when the agent had an outcome
  type: str
  sample: "1.0.0"
version_after:
  description: The version the agent reported after its gate, where known.
  returned: when the agent had an outcome
  type: str
  sample: "2.0.0"
msg:
  description: "The result and its detail, in one line (C(<host>: not part of this wave) without an outcome)."
  returned: always
  type: str
  sample: "failed: not stable: status degraded"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._module import run_module
from ansible_collections.agentfleet.rollout.plugins.module_utils._outcome import OUTCOME_ONE_OF
from ansible_collections.agentfleet.rollout.plugins.module_utils._outcome import OUTCOME_SPEC
from ansible_collections.agentfleet.rollout.plugins.module_utils._outcome import run_outcome


def main():
    run_module(AnsibleModule, OUTCOME_SPEC, run_outcome, (ValueError,), required_one_of=OUTCOME_ONE_OF,
               mutually_exclusive=OUTCOME_ONE_OF)


if __name__ == "__main__":
    main()
