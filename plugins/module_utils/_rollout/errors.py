# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The canary engine's exceptions."""

from __future__ import annotations


class RolloutError(Exception):
    """A rollout step failed in a way the operator must act on."""


class AuthenticationFailed(RolloutError):
    """Agents refused the token."""
