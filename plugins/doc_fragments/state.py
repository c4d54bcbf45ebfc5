# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Rollout state, report and audit options of the occurrence_* modules (``DOCUMENTATION``), and the state file
    of the modules that read or record an existing deployment (``EXISTING``: deployment_info, rollout_state)."""

    DOCUMENTATION = r"""
options:
  takeover:
    description: Abort an interrupted rollout of another kind that holds the fleet key, and start this one.
    type: bool
    default: false
  state_path:
    description:
      - The rollout state. A path or C(sqlite:///path) (a SQLite file, created with its directory when missing).
      - Or C(s3://bucket/prefix) (boto3), the same database kept in S3 as C(<prefix>/state.db), written with
        conditional PUTs, and the one-active-deployment lock of each fleet key as C(<prefix>/locks/<key>.json), a lease
        that the running rollout renews and that expires C(lock_ttl) seconds after a crashed controller's last renewal.
      - The S3 client takes the usual AWS settings from the environment (C(AWS_ACCESS_KEY_ID), C(AWS_SECRET_ACCESS_KEY),
        C(AWS_SESSION_TOKEN), C(AWS_PROFILE), C(AWS_REGION), C(AWS_ENDPOINT_URL) for MinIO or Ceph) or an instance role;
        the URL's query string may set C(endpoint_url), C(region), C(profile) and C(lock_ttl) (seconds, default 600),
        never credentials. See docs/reliability.md and docs/ci.md.
    type: path
    default: ~/.agentfleet/state.db
  report_path:
    description: The JSON report; default C(~/.agentfleet/reports/<deployment_id>.json). May be an C(s3://bucket/key) URL.
    type: path
  audit_path:
    description: The audit log (JSON lines); default next to the report, C(.audit.jsonl). May be an C(s3://bucket/key) URL.
    type: path
"""

    EXISTING = r"""
options:
  state_path:
    description: The rollout state, a SQLite file (a path or C(sqlite:///path)) or C(s3://bucket/prefix) (docs/reliability.md).
    type: path
    required: true
"""
