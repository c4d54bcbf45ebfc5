#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: notify
short_description: Ask a wave of agents for consent to update (shutdown request with a reason)
version_added: 0.1.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - "Sends C(POST {agent_url}/v1/system/shutdown) to every agent of a wave, concurrently (at most O(max_workers)
    at a time), with the body C(reason), C(force), C(confirm=true), C(deployment_id), C(target_version) and,
    when set, C(scope) and C(decision_ref) (see PROTOCOL.md)."
  - "The agent's answer maps to a decision. HTTP 200 or 202 without C(data.decision) is V(pending), what a real
    CIRIS agent answers: it decides as a task and shows its decision by acting, accepting by draining and stopping,
    declining by going on working (observed consent, PROTOCOL.md). This module only asks; the agents that answered
    V(accept) or V(pending) must be watched until they have stopped before anything updates them, as
    M(agentfleet.rollout.rollout_wave) does (its O(agentfleet.rollout.rollout_wave#module:stop_timeout))."
  - "HTTP 200 or 202 with C(data.decision) V(accept), V(defer) or V(reject) is that decision, with C(data.reason)
    and, for a defer, C(data.defer_until) (an ISO-8601 time or seconds from now). Any other
    C(data.decision) value is a reject."
  - "HTTP 409 (busy) is a V(defer), until C(retry_after_ms) from now when the agent gives it."
  - "HTTP 401 or 403 is an authentication error: the task fails, says so and never prints the token.
    The agents that did answer are recorded, but nothing is updated."
  - "Any other HTTP 4xx or 5xx is a V(reject), with the agent's C(detail) as reason."
  - "A timeout, a refused connection, a TLS error or an unparsable 200/202 body is V(unreachable):
    a failure, not a decision. The request is retried only when the connection was refused before anything
    was sent, never after a read timeout, and always with the same O(deployment_id)."
  - The reason text the agent deliberates on is O(reason) when given. Otherwise it is built from the deployment
    and reads, in order, C(Update to version 2.0.0 is available [deployment ID, canary rollout].) (with
    parentheses), the O(release_notes) as C(Changes ...), the wave as C(You are in the explorers group [wave 1 of 4].),
    the outcome of the earlier waves from O(previous_waves) (or, in the first of several waves,
    C(You are among the first to receive this version.)), C(This is an emergency update [force].) when
    O(force=true), and last what each answer means (accept to shut down gracefully so the new version can start,
    defer when busy, reject to decline).
  - With O(skip_if_on_target=true) each agent's health is probed first; an agent that is healthy and already
    reports O(target_version) is not asked and is returned as skipped.
  - With O(state_path), answers are recorded in the rollout state file, and an agent whose V(accept), V(reject),
    V(pending) or observed V(declined) answer or C(skipped) result is recorded for O(deployment_id) is never asked
    again (asking again would start another deliberation for the same deployment). A deferring agent is asked
    again only once its C(defer_until) has passed.
  - Runs on the controller (action plugin), without forking a Python interpreter per task.
options:
  deployment_id:
    description:
      - Identifier of the deployment, sent to every agent as the idempotency key.
      - By the protocol an agent that already answered V(accept) or V(reject) for this id answers the same again;
        real CIRIS agents do not deduplicate, so O(state_path) is what keeps an agent from being asked twice.
    type: str
    required: true
  target_version:
    description: The version the agents are asked to update to.
    type: str
    required: true
  reason:
    description:
      - The exact text sent to the agents as C(reason).
      - When not set, the text is built from O(target_version), O(deployment_id), O(strategy), O(release_notes),
        the wave options, O(previous_waves) and O(force) (see the description).
    type: str
  release_notes:
    description: What changes in the new version; added to the built reason as C(Changes) text.
    type: str
  strategy:
    description: The rollout strategy named in the built reason.
    type: str
    default: canary
  wave_name:
    description: The wave's cohort name, named in the built reason.
    type: str
  wave_index:
    description: The wave's position (1-based), named in the built reason.
    type: int
  wave_count:
    description: How many waves the deployment has, named in the built reason.
    type: int
  previous_waves:
    description:
      - One line per earlier wave (for example C(explorers 2/2 healthy on 2.0.0)), listed in the built reason.
      - The C(previous_waves) result of M(agentfleet.rollout.rollout_state) with O(agentfleet.rollout.rollout_state#module:op=wave_start).
    type: list
    elements: str
    default: []
  force:
    description: Sent to the agents as C(force); marks the update as an emergency in the built reason.
    type: bool
    default: false
  scope:
    description:
      - Sent as C(scope). V(all_occurrences) asks one occurrence to decide for every occurrence of its agent.
      - Not sent when not set.
    type: str
    choices: [occurrence, all_occurrences]
  decision_ref:
    description:
      - Sent as C(decision_ref), the id of a decision already made for all occurrences; the agent complies
        without deliberating again.
    type: str
  skip_if_on_target:
    description:
      - Probe each agent's health first and do not ask an agent that is healthy and already runs O(target_version).
    type: bool
    default: true
  reask_until:
    description:
      - A unix time (seconds since the epoch) until which deferring agents are asked again, each once its
        C(defer_until) has come (a 409 without C(retry_after_ms) is asked again after 30 seconds).
      - A deferral beyond this time is left deferred. When not set, nobody is asked twice in one task.
    type: float
  state_path:
    description:
      - The rollout state (a SQLite path, C(sqlite:///path) or C(s3://bucket/prefix)) that records every answer for
        O(deployment_id).
      - Agents whose V(accept), V(reject), V(pending) or V(declined) answer (or C(skipped) result) is recorded are not
        asked again; deferring agents only after their C(defer_until).
      - Not read or written in check mode.
    type: path
  audit_path:
    description:
      - Append one JSON line per answer (C(event=decision), host, agent id, cohort, wave, decision, reason,
        C(defer_until), HTTP status) to this audit log. The token is never written.
    type: path
extends_documentation_fragment:
  - agentfleet.rollout.agents
  - agentfleet.rollout.connection
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.CONTROLLER
  - agentfleet.rollout.attributes.PARTIAL
attributes:
  check_mode:
    details:
      - In check mode no agent is asked (and nothing is probed), the state file is neither read nor written,
        and RV(would_ask) lists the agents that would be asked; C(changed) tells whether anyone would be.
  idempotent:
    details:
      - A shutdown request is not idempotent by nature; an accepting agent stops.
      - What makes a rerun safe is O(deployment_id) plus O(state_path). An answer recorded in the state file
        (V(accept), V(reject), V(pending), V(declined)) is never asked for again. A rerun with the same deployment
        id and state file reports C(changed=false) when nobody is left to ask.
      - Without O(state_path) every agent is asked again (with the same O(deployment_id)).
notes:
  - A V(defer) is not final. Asked again after its C(defer_until) with the same O(deployment_id), the
    agent deliberates anew.
seealso:
  - module: agentfleet.rollout.health_gate
  - module: agentfleet.rollout.rollout_state
  - module: agentfleet.rollout.wave_split
"""

EXAMPLES = r"""
- name: Ask the first wave for consent
  agentfleet.rollout.notify:
    agents: "{{ plan.waves[0].members }}"
    deployment_id: deploy-20260101-120000
    target_version: 2.0.0
    release_notes: Faster memory consolidation
    wave_name: "{{ plan.waves[0].name }}"
    wave_index: 1
    wave_count: "{{ plan.waves | length }}"
    state_path: /var/lib/agentfleet/rollout.db
    token: "{{ rollout_token }}"
  register: consent

- name: Emergency update, re-asking deferring agents for up to 10 minutes
  agentfleet.rollout.notify:
    agents: "{{ groups['agents'] | map('extract', hostvars) | list }}"
    deployment_id: hotfix-42
    target_version: 2.0.1
    strategy: immediate
    force: true
    reask_until: "{{ now(utc=true).timestamp() + 600 }}"
    state_path: /var/lib/agentfleet/rollout.db

- name: The agents that consented (accept, or pending), to watch until they have stopped before updating them
  ansible.builtin.debug:
    msg: "{{ consent.update_agents | map(attribute='name') | list }}"
"""

RETURN = r"""
answers:
  description:
    - Per agent name, the answer of this task (or the one recorded in the state file).
    - C(decision) is V(accept), V(pending) (HTTP 200/202 without a decision), V(defer), V(reject), V(unreachable),
      V(declined) (recorded, observed to go on working after a pending answer) or V(skipped) (already on the
      target version, or recorded as skipped).
    - C(reason) is the agent's reason or the failure; C(defer_until) is a unix time; C(decision_id) the agent's id
      for its decision; C(http_status) the HTTP status; C(version_before) the version the health probe saw;
      C(recorded=true) marks an answer taken from the state file instead of asked.
  returned: success
  type: dict
  sample: {"agent-000": {"decision": "pending", "reason": null, "defer_until": null, "decision_id": null,
           "http_status": 200, "version_before": "1.9.0"}}
accepted:
  description: Names of the agents that accepted explicitly (C(data.decision) V(accept), or recorded as accepted).
  returned: success
  type: list
  elements: str
  sample: ["agent-000"]
pending:
  description:
    - Names of the agents that answered without a decision (what real CIRIS agents answer); whether they accept is
      observed by watching them stop.
  returned: success
  type: list
  elements: str
  sample: ["agent-001"]
declined:
  description: Names of the agents recorded as having declined (observed going on working after a pending answer).
  returned: success
  type: list
  elements: str
  sample: []
deferred:
  description: Names of the agents that deferred (including busy agents, HTTP 409).
  returned: success
  type: list
  elements: str
  sample: ["agent-002"]
rejected:
  description: Names of the agents that rejected.
  returned: success
  type: list
  elements: str
  sample: []
unreachable_agents:
  description: Names of the agents that gave no usable answer (timeout, refused, TLS error, unparsable answer).
  returned: success
  type: list
  elements: str
  sample: ["agent-003"]
skipped_agents:
  description: Names of the agents not asked because they already run O(target_version) (or are recorded as skipped).
  returned: success
  type: list
  elements: str
  sample: []
counts:
  description: Number of agents per answer.
  returned: success
  type: dict
  sample: {"accepted": 1, "pending": 1, "declined": 0, "deferred": 1, "rejected": 0, "unreachable": 1, "skipped": 0}
asked:
  description:
    - Names of the agents this task sent a shutdown request to (re-asked deferring agents appear again).
    - Empty in check mode.
  returned: success
  type: list
  elements: str
  sample: ["agent-000", "agent-001", "agent-002", "agent-003"]
consenting_agents:
  description:
    - The members (as given in O(agents)) that answered V(accept) or V(pending), that no update driver has had yet
      and that are not recorded C(declined) or C(reverted), with C(version_before) and C(version) set to the version
      they ran before (what a revert puts back).
    - The agents to watch until they have stopped (observed consent) before an update driver may act on them.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "agent-000", "agent_url": "http://127.0.0.1:8100", "version": "1.9.0", "version_before": "1.9.0"}]
retry_agents:
  description:
    - With O(state_path), the consenting members that an update driver already had in an earlier run of
      O(deployment_id) and whose update or gate failed; a rerun updates and gates them again (they have stopped).
  returned: success
  type: list
  elements: dict
  sample: []
update_agents:
  description: RV(consenting_agents) followed by RV(retry_agents).
  returned: success
  type: list
  elements: dict
  sample: [{"name": "agent-000", "agent_url": "http://127.0.0.1:8100", "version": "1.9.0", "version_before": "1.9.0"}]
would_ask:
  description: In check mode, the agents a real run would ask.
  returned: check mode
  type: list
  elements: str
  sample: ["agent-000", "agent-001"]
reason:
  description: The reason text sent to the agents (O(reason) or the built text).
  returned: success
  type: str
  sample: "Update to version 2.0.0 is available (deployment deploy-20260101-120000, canary rollout). You are in the
    explorers group (wave 1 of 4). You are among the first to receive this version. Accept to shut down gracefully
    so the new version can start; defer if you are busy; reject to decline."
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._module import run_module
from ansible_collections.agentfleet.rollout.plugins.module_utils import _argspecs
from ansible_collections.agentfleet.rollout.plugins.module_utils import _runners


def main():
    run_module(AnsibleModule, _argspecs.NOTIFY_SPEC, _runners.run_notify, _runners.ENGINE_ERRORS)


if __name__ == "__main__":
    main()
