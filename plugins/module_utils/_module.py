# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one ``main()`` every engine-backed module shares (thin module, testable core)."""

from __future__ import annotations


def run_module(module_class, argument_spec, runner, errors, controller_only=None, **module_kwargs):
    """Build the module, call ``runner(params, check_mode=...)`` once, exit or fail.

    ``errors`` are the engine's domain exceptions, turned into ``fail_json``;
    a result carrying ``failed: True`` fails with its data. ``controller_only``
    names an option only the action plugin can resolve (e.g. an inventory group).
    """
    module = module_class(argument_spec=argument_spec, supports_check_mode=True, **module_kwargs)
    if controller_only and module.params.get(controller_only):
        module.fail_json(msg="%s is resolved by the controller-side action plugin; pass members when running the module directly"
                         % controller_only)
    try:
        result = runner(module.params, check_mode=module.check_mode)
    except errors as exc:
        module.fail_json(msg=str(exc))
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)
