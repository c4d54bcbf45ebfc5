#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: ecs_taskdef
short_description: Register an agent runtime ECS task definition from a template, only when it changed
version_added: 0.1.0
author:
  - agentfleet.rollout contributors (@agentfleet)
description:
  - Renders an ECS task definition from a template (a JSON or YAML file, or a dict), sets the agent
    container's image and injects the agent runtime's environment (the variables of the PAR deployment
    guide, with its defaults).
  - Validates everything before any AWS call - C(PACKAGE_URL) only C(s3://) or C(https://), C(PACKAGE_SHA256)
    64 hex characters, C(AGENT_APP_ID) not empty, the container's C(stopTimeout) greater than
    C(GRACEFUL_SHUTDOWN_TIMEOUT_SEC), an image - and reports every problem at once.
  - Registers a new revision B(only when something differs) from the latest ACTIVE revision of the family.
    Both sides are compared after the API's defaults are filled in (C(essential), port protocol and host
    port, container C(cpu) 0, network mode, health-check timers, read-only flags), task C(cpu)/C(memory)
    converted to the API's strings, read-only fields dropped and unordered lists sorted. Changes to task
    C(cpu), C(memory), C(networkMode), secrets or port mappings are all detected; equal definitions
    written differently do not churn revisions. Empty strings (for example an empty C(taskRoleArn)) count as absent and are
    not sent; API defaults described as V(false) (C(enableFaultInjection), C(privileged),
    C(readonlyRootFilesystem)...) equal their absence.
  - Tags are passed on registration but not compared (a tag change alone registers nothing), and neither is
    the C(DEPLOYMENT_ID) environment variable (see O(agent_env.DEPLOYMENT_ID)).
options:
  base:
    description:
      - What the new revision is made from.
      - V(template) renders O(template) or O(task_definition) with O(image) and O(agent_env) (both required).
      - V(service) takes the task definition the service O(cluster)/O(service) runs now (C(DescribeServices),
        then C(DescribeTaskDefinition)), replaces the image of the O(container_name) container by O(image) and
        keeps everything else, environment included - for deploying a new image tag without the template or the
        agent environment. O(template), O(task_definition) and O(agent_env) are then refused. A revision is
        registered only if the result differs from the service's revision and from the family's latest ACTIVE
        one (the same comparison as with V(template)); an equal one is returned instead.
    type: str
    choices: [template, service]
    default: template
  cluster:
    description: With O(base=service), name or ARN of the cluster of O(service). Required then.
    type: str
  service:
    description: With O(base=service), name or ARN of the service whose task definition is the base. Required then.
    type: str
  family:
    description:
      - Task definition family. Overrides the template's C(family); required if the template has none.
    type: str
  template:
    description:
      - Path to a task definition template (JSON or YAML), in the format of
        C(aws ecs register-task-definition --cli-input-json) or the output of C(describe-task-definition).
      - For Jinja templating, render it in the play and pass O(task_definition) instead, for example
        C(task_definition="{{ lookup('ansible.builtin.template', 'td.json.j2') | from_json }}").
    type: path
  task_definition:
    description:
      - The task definition template as a dict (same format as O(template)).
    type: dict
  image:
    description:
      - Image of the agent container (for example C(123456789012.dkr.ecr.us-east-2.amazonaws.com/pixell-agent-runtime:abc123)).
      - Overrides the template's image; required if the template's agent container has none.
    type: str
  container_name:
    description:
      - Name of the container that gets the image and the agent environment.
      - If no container has this name and the definition has exactly one container, that one is used.
    type: str
    default: agent-runtime
  agent_env:
    description:
      - The agent runtime's environment, injected into the agent container's C(environment)
        (overriding the template's variables of the same name; other template variables are kept).
      - Values are converted to strings as ECS stores them (booleans as C(true)/C(false)).
      - Required with O(base=template); refused with O(base=service).
    type: dict
    suboptions:
      AGENT_APP_ID:
        description: Unique agent identifier. Required (the runtime refuses to boot without it).
        type: str
      PACKAGE_URL:
        description:
          - C(s3://) or C(https://) URL of the agent package (APKG). Required.
          - C(file://) and C(http://) URLs are refused.
        type: str
      DEPLOYMENT_ID:
        description:
          - Deployment identifier for tracking.
          - Not compared - a new deployment id alone registers no revision (the latest ACTIVE revision,
            with its earlier C(DEPLOYMENT_ID), is kept and RV(changed) is V(false)); when anything else
            differs, the new revision carries the new id.
        type: str
      PACKAGE_SHA256:
        description: SHA256 of the package (64 hex characters), checked by the runtime. Recommended in production.
        type: str
      BASE_PATH:
        description: Base path for the agent's routes. Defaults to C(/agents/<AGENT_APP_ID>).
        type: str
      REST_PORT:
        description: REST API port.
        type: int
        default: 8080
      A2A_PORT:
        description: gRPC A2A port.
        type: int
        default: 50051
      UI_PORT:
        description: UI port.
        type: int
        default: 3000
      MULTIPLEXED:
        description: Serve the UI on the REST port.
        type: bool
        default: true
      MAX_PACKAGE_SIZE_MB:
        description: Maximum package size in MB.
        type: int
        default: 100
      BOOT_BUDGET_MS:
        description: Boot time soft budget in milliseconds (a warning when exceeded).
        type: int
        default: 5000
      BOOT_HARD_LIMIT_MULTIPLIER:
        description: Hard boot limit = budget x multiplier (the runtime exits when exceeded); V(0) disables it.
        type: float
        default: 2.0
      GRACEFUL_SHUTDOWN_TIMEOUT_SEC:
        description:
          - Graceful shutdown timeout in seconds. The agent container's C(stopTimeout) must be greater
            (ECS's default C(stopTimeout) is 30 seconds).
        type: int
        default: 30
  force_create:
    description:
      - Register a new revision even when nothing differs from the latest ACTIVE one.
    type: bool
    default: false
extends_documentation_fragment:
  - agentfleet.rollout.aws
  - agentfleet.rollout.aws.report
  - agentfleet.rollout.attributes
attributes:
  check_mode:
    support: full
    details: Describes the latest revision (and with O(base=service) the service) and reports whether a new one would
      be registered; registers nothing and writes no report.
  diff_mode:
    support: full
    details:
      - C(before) is the latest ACTIVE revision, C(after) the rendered one, both normalised.
      - Masked in the diff, in RV(task_definition) and in the report - environment values, log-driver C(options)
        and C(dockerLabels) whose names look secret (ending in C(KEY), or containing C(TOKEN), C(SECRET),
        C(PASSWORD), C(PASSWD), C(CREDENTIAL), C(PRIVATE) or C(AUTH)), C(repositoryCredentials), and credentials
        inside URLs. C(secrets) and C(secretOptions) keep their C(valueFrom) references (ARNs, not values).
  idempotent:
    support: full
    details: A second run with the same arguments registers nothing unless O(force_create=true).
seealso:
  - module: agentfleet.rollout.ecs_service_rollout
"""

EXAMPLES = r"""
- name: Register the agent runtime task definition from the template
  agentfleet.rollout.ecs_taskdef:
    family: pixell-agent-runtime
    template: files/ecs-task-definition-template.json
    image: "123456789012.dkr.ecr.us-east-2.amazonaws.com/pixell-agent-runtime:{{ image_tag }}"
    agent_env:
      AGENT_APP_ID: python-executor
      PACKAGE_URL: s3://pixell-agent-packages/python-executor/package.apkg
      PACKAGE_SHA256: "{{ package_sha256 }}"
      DEPLOYMENT_ID: "{{ deployment_id }}"
    region: us-east-2
  register: taskdef

- name: New image tag from CI, everything else as the service runs it now (no template, no agent_env)
  agentfleet.rollout.ecs_taskdef:
    base: service
    cluster: pixell-runtime-cluster
    service: pixell-runtime
    image: "123456789012.dkr.ecr.us-east-2.amazonaws.com/pixell-agent-runtime:{{ image_tag }}"
  register: taskdef

- name: Same, from a dict, with a longer graceful shutdown
  agentfleet.rollout.ecs_taskdef:
    task_definition:
      family: pixell-agent-runtime
      requiresCompatibilities: [FARGATE]
      networkMode: awsvpc
      cpu: 1 vCPU
      memory: 2 GB
      executionRoleArn: arn:aws:iam::123456789012:role/ecsTaskExecutionRole
      containerDefinitions:
        - name: agent-runtime
          stopTimeout: 65
          portMappings:
            - containerPort: 8080
    image: public.ecr.aws/example/agent-runtime:1.4.2
    agent_env:
      AGENT_APP_ID: python-executor
      PACKAGE_URL: https://packages.example.com/python-executor.apkg
      GRACEFUL_SHUTDOWN_TIMEOUT_SEC: 60
"""

RETURN = r"""
changed:
  description: Whether a new revision was (or, in check mode, would be) registered.
  returned: always
  type: bool
  sample: true
family:
  description: The task definition family.
  returned: success
  type: str
  sample: pixell-agent-runtime
revision:
  description:
    - Revision registered, or the unchanged latest ACTIVE revision.
    - V(null) in check mode when a new revision would be registered.
  returned: success
  type: int
  sample: 7
arn:
  description: ARN of that revision (V(null) in check mode when a new one would be registered).
  returned: success
  type: str
  sample: arn:aws:ecs:us-east-2:123456789012:task-definition/pixell-agent-runtime:7
task_definition:
  description:
    - The registered (or unchanged, or in check mode the rendered) task definition, normalised as compared,
      with secret-looking environment values masked.
  returned: success
  type: dict
  sample:
    family: pixell-agent-runtime
    networkMode: awsvpc
    cpu: "1024"
    memory: "2048"
    requiresCompatibilities: [FARGATE]
    containerDefinitions:
      - name: agent-runtime
        image: 123456789012.dkr.ecr.us-east-2.amazonaws.com/pixell-agent-runtime:abc123
        essential: true
        cpu: 0
        stopTimeout: 35
        environment:
          - {name: AGENT_APP_ID, value: python-executor}
        portMappings:
          - {containerPort: 8080, hostPort: 8080, protocol: tcp}
image:
  description: Image of the agent container.
  returned: success
  type: str
  sample: 123456789012.dkr.ecr.us-east-2.amazonaws.com/pixell-agent-runtime:abc123
differences:
  description: Paths in the normalised task definition that differ from the latest ACTIVE revision.
  returned: success
  type: list
  elements: str
  sample: ["containerDefinitions[agent-runtime].environment[PACKAGE_URL].value", "cpu"]
started_at:
  description: When the module started (ISO-8601 UTC).
  returned: success
  type: str
  sample: "2025-01-31T10:00:00.000000Z"
events:
  description: What happened, as written to the report and the audit log.
  returned: success
  type: list
  elements: dict
  sample:
    - {event: taskdef_registered, family: pixell-agent-runtime, revision: 7, ts: "2025-01-31T10:00:01.000000Z"}
report_path:
  description: Path of the report written, when O(report_path) was given.
  returned: when O(report_path) is set, not in check mode
  type: str
  sample: /var/tmp/deploy-20250131-100000.json
audit_path:
  description: Path of the audit log appended to, when O(audit_path) was given.
  returned: when O(audit_path) is set, not in check mode
  type: str
  sample: /var/tmp/deploy-20250131-100000.audit.jsonl
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import register
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs.module import run_ecs_module


def main():
    run_ecs_module(
        AnsibleModule, register.run, register.TASKDEF_ARGUMENT_SPEC,
        mutually_exclusive=[("template", "task_definition")],
        required_if=[("base", "template", ("template", "task_definition"), True), ("base", "template", ("agent_env",)),
                     ("base", "service", ("cluster", "service", "image"))],
    )


if __name__ == "__main__":
    main()
