#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: notify_webhook
short_description: Tell a webhook (Slack, Mattermost, any JSON receiver) what a rollout did
version_added: 0.2.0
author: agentfleet.rollout contributors (@agentfleet)
description:
  - One JSON POST per event a registered result stands for - C(deployment_started) (O(source=deployment)),
    C(wave_passed) / C(wave_failed), C(deployment_paused), C(deployment_staged) and C(deployment_finished)
    (O(source=wave)) - with C(deployment_id), C(deployment_key), C(strategy), C(target_version), C(wave), C(counts),
    C(status), C(reason) and a human C(text) field, which a Slack or Mattermost incoming webhook shows as it is.
  - What the rollout playbooks do with C(rollout_notify_url) and C(rollout_notify_headers) (docs/variables.md).
  - A receiver that fails (refused, timed out, an HTTP error) is a warning, never a failure; each event is tried up to
    three times within what is left of O(budget), which is the whole C(ansible-playbook) run's, so a dead or slow
    receiver never slows a rollout by more than O(budget) seconds.
  - No token and no header goes into a payload; the URL (an incoming webhook's URL is a secret) and the headers are
    never printed - a warning names the receiver's scheme and host only.
  - Runs on the controller only (action plugin); nothing is sent in check mode.
options:
  url:
    description: The receiver, C(http://) or C(https://).
    type: str
    required: true
  headers:
    description: Extra request headers (an C(Authorization) header for a receiver that wants one), values strings.
    type: dict
    default: {}
  source:
    description:
      - What O(result) is - V(deployment) the registered result of M(agentfleet.rollout.deployment) (a deployment
        that starts or goes on sends C(deployment_started)), V(wave) that of M(agentfleet.rollout.rollout_wave).
    type: str
    required: true
    choices: [deployment, wave]
  result:
    description: The registered result the events are taken from.
    type: dict
    required: true
  deployment_key:
    description: The deployment key to put into every payload (docs/lifecycle.md).
    type: str
  strategy:
    description: The deployment's strategy, for a wave's result (which does not carry it).
    type: str
  target_version:
    description: The deployment's target version, for a wave's result (which does not carry it).
    type: str
  budget:
    description: Seconds the whole run's notifications may take at most (tries and waits included).
    type: float
    default: 5.0
  validate_certs:
    description: Verify the receiver's TLS certificate.
    type: bool
    default: true
  ca_path:
    description: A CA bundle to verify the receiver's certificate with.
    type: path
extends_documentation_fragment:
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.CONTROLLER
  - agentfleet.rollout.attributes.NOT_IDEMPOTENT
attributes:
  check_mode:
    details: Nothing is sent in check mode; RV(events) lists what would be.
  idempotent:
    details:
      - Each run sends its events again.
"""

EXAMPLES = r"""
- name: Tell the team's channel what the wave did
  agentfleet.rollout.notify_webhook:
    url: "{{ lookup('ansible.builtin.env', 'SLACK_WEBHOOK_URL') }}"
    source: wave
    result: "{{ _rollout_wave_result }}"
  run_once: true
"""

RETURN = r"""
events:
  description: The events O(result) stands for, in the order sent.
  returned: always
  type: list
  elements: str
  sample: ["wave_passed", "deployment_finished"]
sent:
  description: The events the receiver took (HTTP 2xx).
  returned: always
  type: list
  elements: str
  sample: ["wave_passed"]
undelivered:
  description: The events not delivered (each also a warning).
  returned: always
  type: list
  elements: str
  sample: []
spent:
  description: Seconds this call spent sending.
  returned: always
  type: float
  sample: 0.012
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._webhook import WEBHOOK_SPEC


def main():
    module = AnsibleModule(argument_spec=WEBHOOK_SPEC, supports_check_mode=True)
    module.fail_json(msg="agentfleet.rollout.notify_webhook runs on the controller (its action plugin); it has no "
                         "remote part")


if __name__ == "__main__":
    main()
