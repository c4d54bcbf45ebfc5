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


class EcsError(Exception):
    """The one domain error the ECS modules turn into ``fail_json``.

    ``result`` carries return values worth showing even on failure
    (previous/new task definition, rollout state, events).
    """

    def __init__(self, msg, **result):
        super().__init__(msg)
        self.msg = msg
        self.result = result
