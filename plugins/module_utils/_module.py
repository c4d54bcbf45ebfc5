# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one ``main()`` every engine-backed module shares (thin module, testable core)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any
    from typing import Callable
    from typing import Dict
    from typing import NoReturn
    from typing import Optional
    from typing import Protocol
    from typing import Tuple
    from typing import Type
    from typing import Union

    class _Module(Protocol):
        """What ``run_module`` uses of an ``AnsibleModule`` (ansible-core ships no type information)."""

        params: Dict[str, Any]
        check_mode: bool

        def fail_json(self, msg: str, **kwargs: Any) -> NoReturn:
            ...

        def exit_json(self, **kwargs: Any) -> NoReturn:
            ...

    # the module's validated parameters and check mode -> its result
    Runner = Callable[..., Dict[str, Any]]
    Errors = Union[Type[BaseException], Tuple[Type[BaseException], ...]]


def run_module(module_class: Callable[..., _Module], argument_spec: dict[str, Any], runner: Runner, errors: Errors,
               controller_only: Optional[str] = None, **module_kwargs: Any) -> None:
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
