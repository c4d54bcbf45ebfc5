# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS connection options (amazon.aws names) and a boto3 client factory.

amazon.aws is deliberately not a dependency: the few options the ECS modules
need are declared here once, documented once in the ``agentfleet.rollout.aws``
doc fragment, and turned into a boto3 client with botocore's retry modes
(``standard`` or ``adaptive``), which back off with jitter on throttling.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ansible.module_utils.basic import env_fallback  # type: ignore[import-untyped]  # ansible-core has no py.typed

from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import ArgumentSpec
from ansible_collections.agentfleet.rollout.plugins.module_utils._ecs import Params
from ansible_collections.agentfleet.rollout.plugins.module_utils._version import USER_AGENT

try:
    import boto3
    import botocore
    from botocore.config import Config
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR: Optional[ImportError] = None
except ImportError as exc:  # pragma: no cover - depends on the controller
    boto3 = botocore = Config = None
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = exc


AWS_ARGUMENT_SPEC: ArgumentSpec = dict(
    region=dict(
        type="str",
        aliases=["aws_region", "ec2_region"],
        fallback=(env_fallback, ["AWS_REGION", "AWS_DEFAULT_REGION", "EC2_REGION"]),
    ),
    endpoint_url=dict(
        type="str",
        aliases=["aws_endpoint_url", "ec2_url"],
        fallback=(env_fallback, ["AWS_ENDPOINT_URL", "AWS_URL", "EC2_URL"]),
    ),
    profile=dict(
        type="str",
        aliases=["aws_profile"],
        fallback=(env_fallback, ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"]),
    ),
    access_key=dict(
        type="str",
        aliases=["aws_access_key_id", "aws_access_key", "ec2_access_key"],
        no_log=False,
        fallback=(env_fallback, ["AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "EC2_ACCESS_KEY"]),
    ),
    secret_key=dict(
        type="str",
        aliases=["aws_secret_access_key", "aws_secret_key", "ec2_secret_key"],
        no_log=True,
        fallback=(env_fallback, ["AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "EC2_SECRET_KEY"]),
    ),
    session_token=dict(
        type="str",
        aliases=["aws_session_token", "security_token", "aws_security_token", "access_token"],
        no_log=True,
        fallback=(env_fallback, ["AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "EC2_SECURITY_TOKEN"]),
    ),
    validate_certs=dict(type="bool", default=True),
    retry_mode=dict(type="str", default="standard", choices=["standard", "adaptive"]),
    retry_max_attempts=dict(type="int", default=10),
)

AWS_PARAM_NAMES = tuple(AWS_ARGUMENT_SPEC)
# An access key without its secret (or the reverse) is a mistake, not "use the profile instead".
AWS_REQUIRED_TOGETHER = [("access_key", "secret_key")]


def secrets_of(params: Params) -> List[str]:
    """The values a report, audit line or message must never contain."""
    return [params[k] for k in ("secret_key", "session_token", "access_key") if params.get(k)]


def client_config(params: Params) -> Any:
    """botocore Config (``botocore.config.Config``): retry mode / attempts and our user agent."""
    return Config(
        retries={"mode": params.get("retry_mode") or "standard",
                 "total_max_attempts": int(params.get("retry_max_attempts") or 10)},
        user_agent_extra=USER_AGENT,
    )


def boto3_client(service: str, params: Params, session_factory: Optional[Callable[..., Any]] = None) -> Any:
    """A boto3 client for ``service`` from the module's AWS options.

    Explicit keys win over ``profile``; with neither, boto3's own chain
    (environment, shared files, instance/task role) applies.
    """
    if not HAS_BOTO3:
        raise RuntimeError("boto3 and botocore are required: %s" % BOTO3_IMPORT_ERROR)
    session_kwargs: Dict[str, Any] = {}
    if params.get("profile"):
        session_kwargs["profile_name"] = params["profile"]
    if params.get("access_key") and params.get("secret_key"):
        session_kwargs["aws_access_key_id"] = params["access_key"]
        session_kwargs["aws_secret_access_key"] = params["secret_key"]
        if params.get("session_token"):
            session_kwargs["aws_session_token"] = params["session_token"]
    if params.get("region"):
        session_kwargs["region_name"] = params["region"]
    session = (session_factory or boto3.session.Session)(**session_kwargs)
    client_kwargs: Dict[str, Any] = {"config": client_config(params)}
    if params.get("endpoint_url"):
        client_kwargs["endpoint_url"] = params["endpoint_url"]
    if params.get("validate_certs") is False:
        client_kwargs["verify"] = False
    return session.client(service, **client_kwargs)


def error_message(exc: BaseException) -> str:
    """Short text for a botocore error: code and message, never credentials."""
    if botocore is not None and isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        return "%s: %s" % (err.get("Code", "ClientError"), err.get("Message", str(exc)))
    return "%s: %s" % (type(exc).__name__, exc)
