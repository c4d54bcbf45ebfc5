# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """AWS connection options (names and aliases as in amazon.aws) and the rollout report options."""

    DOCUMENTATION = r"""
options:
  region:
    description:
      - The AWS region to use.
      - If not set, the E(AWS_REGION), E(AWS_DEFAULT_REGION) or E(EC2_REGION) environment variable is used,
        then the region of the profile.
    type: str
    aliases: [aws_region, ec2_region]
  endpoint_url:
    description:
      - URL to connect to instead of the default AWS endpoint, for example a VPC endpoint or
        a local moto server (C(http://127.0.0.1:5000)).
      - If not set, the E(AWS_ENDPOINT_URL), E(AWS_URL) or E(EC2_URL) environment variable is used.
    type: str
    aliases: [aws_endpoint_url, ec2_url]
  profile:
    description:
      - A named profile from the AWS shared configuration files.
      - If not set, the E(AWS_PROFILE) or E(AWS_DEFAULT_PROFILE) environment variable is used.
      - Explicit O(access_key) and O(secret_key) take precedence over the profile's credentials.
    type: str
    aliases: [aws_profile]
  access_key:
    description:
      - AWS access key ID.
      - If not set, the E(AWS_ACCESS_KEY_ID), E(AWS_ACCESS_KEY) or E(EC2_ACCESS_KEY) environment variable is used,
        then boto3's own credential chain (shared files, container or instance role).
      - Requires O(secret_key) (and the reverse); giving only one of them is an error.
    type: str
    aliases: [aws_access_key_id, aws_access_key, ec2_access_key]
  secret_key:
    description:
      - AWS secret access key. Never logged, reported or shown in a diff.
      - If not set, the E(AWS_SECRET_ACCESS_KEY), E(AWS_SECRET_KEY) or E(EC2_SECRET_KEY) environment variable is used.
      - Requires O(access_key).
    type: str
    aliases: [aws_secret_access_key, aws_secret_key, ec2_secret_key]
  session_token:
    description:
      - AWS STS session token for temporary credentials. Never logged, reported or shown.
      - If not set, the E(AWS_SESSION_TOKEN), E(AWS_SECURITY_TOKEN) or E(EC2_SECURITY_TOKEN) environment variable is used.
    type: str
    aliases: [aws_session_token, security_token, aws_security_token, access_token]
  validate_certs:
    description:
      - When V(false), TLS certificates of the AWS endpoint (and of HTTPS health URLs) are not verified.
      - Only for test endpoints with self-signed certificates.
    type: bool
    default: true
  retry_mode:
    description:
      - botocore retry mode. Both retry throttling and transient errors with exponential
        backoff and full jitter; V(adaptive) also rate-limits the client on the caller's side
        after throttling responses.
    type: str
    choices: [standard, adaptive]
    default: standard
  retry_max_attempts:
    description:
      - Total attempts per API call (first call plus retries) before an error is returned.
    type: int
    default: 10
requirements:
  - python >= 3.9
  - boto3 >= 1.28.0
  - botocore >= 1.31.0
notes:
  - Credentials come from the options, then the environment, then boto3's default chain
    (shared files, ECS task role, EC2 instance profile). No option of amazon.aws is required.
"""

    REPORT = r"""
options:
  deployment_id:
    description:
      - Identifier of the deployment, written to the report and to every audit line.
      - The C(agentfleet.rollout.ecs_deploy) playbook defaults it to C(deploy-YYYYmmdd-HHMMSS).
    type: str
  report_path:
    description:
      - Write the rollout's JSON report to this path on the host running the module (atomically, secrets redacted).
      - 'Shape: C(deployment_id), C(strategy=ecs), C(mode), C(target) (C(family), C(revision), C(image)),
        C(previous_task_definition), C(task_definition), C(rollout_state), C(events), C(started_at),
        C(finished_at), C(result) and C(check_mode).'
      - The report is also written when the module fails, but never in check mode (check mode changes nothing).
    type: path
  audit_path:
    description:
      - Append one JSON line per event of this module to this audit log (not in check mode).
    type: path
  report_extra:
    description:
      - Fields merged into the report's top level, for example C(mode) and C(started_at) of the playbook.
      - An C(events) list given here is put before this module's own events.
    type: dict
"""
