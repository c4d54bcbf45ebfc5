# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's version, generated from galaxy.yml by scripts/sync-version.py (`make version`): do not edit."""

from __future__ import annotations

COLLECTION_VERSION = "0.1.0"
USER_AGENT = "agentfleet.rollout/" + COLLECTION_VERSION
