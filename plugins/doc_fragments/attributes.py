# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Shared ``attributes`` documentation (check mode, diff mode, idempotency).

    ``DOCUMENTATION`` describes the three attributes every module has; ``CONTROLLER`` adds those of a module with an
    action plugin. The others are the support levels most modules share (a module's own ``attributes`` add the
    ``details``): ``INFO_MODULE``; ``IDEMPOTENT`` (check mode full, no diff mode, idempotent);
    ``PARTIAL`` (check mode and idempotency partial, no diff mode); ``NOT_IDEMPOTENT`` (check mode full, no diff
    mode, every run acts again).
    """

    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
      - This assumes that the system controlled/queried by the module has not changed in a relevant way.
"""

    CONTROLLER = r"""
options: {}
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
  async:
    description: Supports being used with the C(async) keyword.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: all
"""

    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: This action does not modify state.
  diff_mode:
    support: N/A
    details: This action does not modify state.
  idempotent:
    support: full
    details: This action does not modify state.
"""

    IDEMPOTENT = r"""
options: {}
attributes:
  check_mode: {support: full}
  diff_mode: {support: none}
  idempotent: {support: full}
"""

    PARTIAL = r"""
options: {}
attributes:
  check_mode: {support: partial}
  diff_mode: {support: none}
  idempotent: {support: partial}
"""

    NOT_IDEMPOTENT = r"""
options: {}
attributes:
  check_mode: {support: full}
  diff_mode: {support: none}
  idempotent: {support: none}
"""
