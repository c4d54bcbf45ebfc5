# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one ``main()`` the ECS modules share: AWS + report options, boto3 check, one engine call."""

from __future__ import annotations

from typing import Any, Callable

from ansible.module_utils.basic import missing_required_lib  # type: ignore[import-untyped]  # ansible-core has no py.typed

from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import ArgumentSpec
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import ClientFactory
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import EcsError
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import Params
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import Result
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import aws
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs.report import REPORT_ARGUMENT_SPEC


def run_ecs_module(module_class: Callable[..., Any], engine_run: Callable[[ClientFactory, Params, bool], Result],
                   argument_spec: ArgumentSpec, **module_kwargs: Any) -> None:
    """Build the module from the AWS, report and ``argument_spec`` options, run ``engine_run(client_factory, params,
    check_mode)`` and exit; an :class:`EcsError` fails with its message and partial result."""
    spec = dict(aws.AWS_ARGUMENT_SPEC)
    spec.update(REPORT_ARGUMENT_SPEC)
    spec.update(argument_spec)
    module = module_class(argument_spec=spec, required_together=aws.AWS_REQUIRED_TOGETHER, supports_check_mode=True,
                          **module_kwargs)
    if not aws.HAS_BOTO3:
        module.fail_json(msg=missing_required_lib("boto3"), exception=str(aws.BOTO3_IMPORT_ERROR))
    try:
        result = engine_run(lambda: aws.boto3_client("ecs", module.params), module.params, module.check_mode)
    except EcsError as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    module.exit_json(**result)
