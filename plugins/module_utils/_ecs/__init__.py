# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ECS engine for agentfleet.rollout (private: not a public API).

* ``taskdef``    render / inject / validate / redact task definitions (pure)
* ``normalise``  fill in the API's defaults and compare task definitions (pure)
* ``service``    update a service, evaluate a deployment (pure), wait, roll back
* ``waiter``     generic poll loop with an injectable clock and sleep
* ``aws``        option spec shared by the ECS modules and the boto3 client factory
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Protocol, TypedDict

# The shapes the ECS engine passes around (JSON from the ECS API and Ansible's parameters):
# a task definition, described, rendered or normalised (the API's camelCase keys)
TaskDefinition = Dict[str, Any]
# a module's validated parameters
Params = Mapping[str, Any]
# a module's result (also what an EcsError carries)
Result = Dict[str, Any]
# an event of the report and the audit log (report.event)
Event = Dict[str, Any]
# an argument spec: option name -> its settings (type, default, choices, ...)
ArgumentSpec = Dict[str, Dict[str, Any]]


class TaskDefinitionResponse(TypedDict):
    """The answer of describe_task_definition and register_task_definition (the keys the engine reads)."""

    taskDefinition: TaskDefinition


class ServicesResponse(TypedDict, total=False):
    """The answer of describe_services (the keys the engine reads)."""

    services: List[Dict[str, Any]]
    failures: List[Dict[str, Any]]


class EcsClient(Protocol):
    """The calls the ECS engine makes on boto3's ECS client (boto3 ships no type information; the client checks
    the parameters when called); ``ServiceRollout._call`` makes the others (update_service, describe_tasks) by name."""

    def describe_task_definition(self, *, taskDefinition: str) -> TaskDefinitionResponse:
        ...

    def describe_services(self, **kwargs: Any) -> ServicesResponse:
        ...

    def register_task_definition(self, **kwargs: Any) -> TaskDefinitionResponse:
        ...

    def get_paginator(self, operation_name: str) -> Any:
        ...


# makes the boto3 ECS client (aws.boto3_client, bound to the module's AWS options)
ClientFactory = Callable[[], EcsClient]


class EcsError(Exception):
    """The one domain error the ECS modules turn into ``fail_json``.

    ``result`` carries return values worth showing even on failure
    (previous/new task definition, rollout state, events).
    """

    def __init__(self, msg: str, **result: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result: Result = result
