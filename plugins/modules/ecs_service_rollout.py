#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: ecs_service_rollout
short_description: Point an ECS service at a task-definition revision, wait until the deployment succeeded, roll back
version_added: 0.1.0
author:
  - agentfleet.rollout contributors (@agentfleet)
description:
  - Updates an existing ECS service to a task-definition revision, optionally with a deployment
    configuration (minimum healthy / maximum percent, deployment circuit breaker with rollback).
  - With O(wait=true) waits until the B(deployment) succeeded, not merely until the service looks
    stable - the PRIMARY deployment runs the new revision, its C(rolloutState) is C(COMPLETED), its
    running count equals its desired count and no more than O(max_failed_tasks) tasks failed to start.
    A C(FAILED) rollout state (the circuit breaker tripped) or a primary deployment on another revision
    fails at once; otherwise the module fails at O(timeout) (one deadline for the deployment and the health
    check together) with what the service reported.
  - Optionally probes health URLs (C(/health) of the tasks, as in the PAR deployment guide) until all answer 200.
  - On failure with O(rollback=true) the service is put back on the revision it ran before and the module
    waits for that deployment too (up to O(rollback_timeout)); the module then fails with C(result=rolled_back).
  - Returns the previous and the new revision so a later play can roll back on purpose.
options:
  cluster:
    description: Name or ARN of the cluster.
    type: str
    required: true
  service:
    description: Name or ARN of the service. It must exist (create it with your infrastructure tooling).
    type: str
    required: true
  task_definition:
    description:
      - The revision to deploy, as C(family:revision), a full ARN, or a bare C(family) for its latest ACTIVE revision.
    type: str
    required: true
  deployment_configuration:
    description:
      - Deployment configuration to set with the update. Only the keys given are compared and sent.
    type: dict
    suboptions:
      minimum_healthy_percent:
        description: Lower limit of running tasks during the deployment, in percent of the desired count.
        type: int
      maximum_percent:
        description: Upper limit of running and pending tasks during the deployment, in percent of the desired count.
        type: int
      deployment_circuit_breaker:
        description: ECS deployment circuit breaker.
        type: dict
        suboptions:
          enable:
            description: Stop a deployment whose tasks keep failing (its rollout state becomes C(FAILED)).
            type: bool
            required: true
          rollback:
            description: Let ECS itself roll back to the last completed deployment when the breaker trips.
            type: bool
            required: true
  force_new_deployment:
    description: Start a new deployment even if the revision is unchanged (for example to pull a moved image tag).
    type: bool
    default: false
  wait:
    description:
      - Wait until the deployment succeeded (and the health URLs answer), or failed.
      - With V(false) the module returns right after the update, with C(result=started).
    type: bool
    default: true
  timeout:
    description:
      - One overall deadline, in seconds from the update, for the deployment to complete B(and) the health
        URLs to answer; the health check gets whatever time the deployment left.
    type: int
    default: 900
  rollback_timeout:
    description:
      - Seconds to wait for the rollback's deployment (its own deadline, starting when the rollback begins).
      - Defaults to O(timeout).
    type: int
  delay:
    description: Seconds between two polls of the service.
    type: int
    default: 15
  max_failed_tasks:
    description: Number of failed tasks of the new deployment tolerated before it counts as failed.
    type: int
    default: 0
  rollback:
    description:
      - When the deployment fails or times out, update the service back to the previous revision and wait for it.
    type: bool
    default: true
  health_urls:
    description:
      - URLs to GET after the deployment completed; each must return HTTP 200 before O(timeout).
      - C({address}) in a URL is replaced by each private IPv4 address of the service's running tasks of
        the new revision (awsvpc network mode), for example C(http://{address}:8080/health). Other URLs
        (a load balancer's) are probed as given.
      - A failing health check counts as a failed deployment (and triggers O(rollback)).
    type: list
    elements: str
  health_timeout:
    description: Timeout in seconds of each health request.
    type: int
    default: 5
  container_name:
    description: The agent container, whose image is reported as the target's image.
    type: str
    default: agent-runtime
extends_documentation_fragment:
  - agentfleet.rollout.aws
  - agentfleet.rollout.aws.report
  - agentfleet.rollout.attributes
  - agentfleet.rollout.attributes.IDEMPOTENT
attributes:
  check_mode:
    details: Describes the service and the revision; reports whether the service would be updated. No update, no wait.
  idempotent:
    details:
      - Without O(force_new_deployment), a service already on the revision (and deployment configuration)
        is not updated; with O(wait=true) the module still verifies its deployment.
notes:
  - The service's deployment controller should be C(ECS). Services without a rollout state (C(CODE_DEPLOY),
    C(EXTERNAL)) count as done when a single deployment runs all desired tasks.
  - The IAM policy needs C(ecs:DescribeServices), C(ecs:DescribeTaskDefinition), C(ecs:UpdateService),
    and for C({address}) health URLs C(ecs:ListTasks) and C(ecs:DescribeTasks).
seealso:
  - module: agentfleet.rollout.ecs_taskdef
"""

EXAMPLES = r"""
- name: Roll the service onto the new revision, prove it, roll back on failure
  agentfleet.rollout.ecs_service_rollout:
    cluster: pixell-runtime-cluster
    service: pixell-runtime
    task_definition: "{{ taskdef.arn }}"
    deployment_configuration:
      minimum_healthy_percent: 100
      maximum_percent: 200
      deployment_circuit_breaker:
        enable: true
        rollback: true
    timeout: 900
    health_urls:
      - "http://{address}:8080/health"
    region: us-east-2
  register: rollout

- name: Later, roll back on purpose
  agentfleet.rollout.ecs_service_rollout:
    cluster: pixell-runtime-cluster
    service: pixell-runtime
    task_definition: "{{ rollout.previous_task_definition }}"
"""

RETURN = r"""
changed:
  description: Whether the service was (or, in check mode, would be) updated.
  returned: always
  type: bool
  sample: true
previous_task_definition:
  description: ARN of the revision the service ran before.
  returned: when the service was found
  type: str
  sample: arn:aws:ecs:us-east-2:123456789012:task-definition/pixell-agent-runtime:6
task_definition:
  description: ARN of the revision deployed.
  returned: when the service was found
  type: str
  sample: arn:aws:ecs:us-east-2:123456789012:task-definition/pixell-agent-runtime:7
rollout_state:
  description:
    - C(rolloutState) of the primary deployment at the end (C(COMPLETED), C(IN_PROGRESS), C(FAILED)),
      or C(TIMEOUT) when the deadline passed - of the deployment of O(task_definition), also when it was
      rolled back afterwards (see RV(result)).
  returned: always
  type: str
  sample: COMPLETED
result:
  description: C(succeeded), C(started) (O(wait=false)), C(failed) or C(rolled_back).
  returned: always
  type: str
  sample: succeeded
rolled_back:
  description: Whether the service was put back on the previous revision.
  returned: always
  type: bool
  sample: false
differences:
  description: What the update changes (C(taskDefinition), C(deploymentConfiguration.<key>), C(forceNewDeployment)).
  returned: always
  type: list
  elements: str
  sample: [taskDefinition]
deployment:
  description: The primary deployment as last described (after waiting).
  returned: when O(wait=true)
  type: dict
  sample: {id: ecs-svc/1234567890, status: PRIMARY, rolloutState: COMPLETED, runningCount: 2, desiredCount: 2, failedTasks: 0}
health:
  description: Last result of each health URL.
  returned: always
  type: list
  elements: dict
  sample: [{url: "http://10.0.1.12:8080/health", status: 200}]
service_events:
  description: The service's latest event messages (up to five), when it was waited on.
  returned: always
  type: list
  elements: str
  sample: ["(service pixell-runtime) has reached a steady state."]
message:
  description: The last evaluation of the deployment (or the health check).
  returned: when O(wait=true)
  type: str
  sample: "deployment ecs-svc/1234567890 COMPLETED: running 2/2, pending 0, failed 0"
events:
  description: What happened, as written to the report and the audit log.
  returned: always
  type: list
  elements: dict
  sample:
    - {event: service_updated, previous: pixell-agent-runtime:6, task_definition: pixell-agent-runtime:7, ts: "2025-01-31T10:00:02.000000Z"}
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

from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import service
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs.module import run_ecs_module


def main():
    run_ecs_module(AnsibleModule, service.run, service.SERVICE_ARGUMENT_SPEC)


if __name__ == "__main__":
    main()
