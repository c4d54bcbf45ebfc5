# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Objects in S3 for the rollout state, reports and audit logs: ``s3://`` URLs, one boto3 client per process
and settings, conditional get/put/delete (``If-Match`` / ``If-None-Match``) whose lost races raise
:class:`ConflictError`, and whole-text reads, writes and appends.

The state store built on it is ``_state_s3``; reports and audit logs (``_report``) use the text helpers.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import TYPE_CHECKING

from urllib.parse import parse_qsl
from urllib.parse import urlsplit

try:
    import boto3
    import botocore.config
    import botocore.exceptions
    HAS_BOTO3 = True
except ImportError:
    HAS_BOTO3 = False

from ansible_collections.agentfleet.rollout.plugins.module_utils._state import StateError

if TYPE_CHECKING:
    from typing import Any
    from typing import Dict
    from typing import Iterable
    from typing import Mapping
    from typing import Optional
    from typing import Tuple

# options an s3:// URL may carry in its query string (never secrets: those come from the environment,
# a profile or the keyword arguments)
URL_OPTIONS = ("endpoint_url", "region", "profile", "lock_ttl")
CLIENT_OPTIONS = ("endpoint_url", "region", "profile", "access_key", "secret_key", "session_token")
CONFLICT_RETRIES = 8


class ConflictError(StateError):
    """A conditional write lost to another controller (412/409): the caller reloads and retries."""


def parse_s3_url(url: str) -> Tuple[str, str, dict[str, str]]:
    """``s3://bucket/prefix?opt=value`` -> ``(bucket, prefix, options)``; ValueError naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise ValueError("state_path: %r is not an s3:// URL" % url)
    bucket = parts.netloc
    if not bucket or "@" in bucket:
        raise ValueError("state_path: %r has no bucket (expected s3://bucket/prefix)" % _safe_url(url))
    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in URL_OPTIONS:
            raise ValueError("state_path: unknown option %r in the s3:// URL (known: %s; credentials come from the "
                             "environment or a profile, never from the URL)" % (key, ", ".join(URL_OPTIONS)))
        options[key] = value
    prefix = parts.path.strip("/")
    return bucket, prefix, options


def _safe_url(url: str) -> str:
    """The URL without its query string or user info (nothing secret reaches a message)."""
    parts = urlsplit(url)
    return "%s://%s%s" % (parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path)


# boto3 ships no type information: a client is Any
_clients: Dict[Tuple[Optional[str], ...], Any] = {}
_clients_lock = threading.Lock()


def s3_client(endpoint_url: Optional[str] = None, region: Optional[str] = None, profile: Optional[str] = None,
              access_key: Optional[str] = None, secret_key: Optional[str] = None, session_token: Optional[str] = None) -> Any:
    """A boto3 S3 client from the usual AWS settings (one per process and settings: building one costs ~0.3 s).

    Unset settings fall back to boto3's own chain (``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, instance roles,
    ...); the endpoint to ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (MinIO, Ceph).
    """
    if not HAS_BOTO3:
        raise StateError("an s3:// state needs boto3 and botocore on the controller (pip install boto3)")
    endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    if bool(access_key) != bool(secret_key):
        raise ValueError("access_key and secret_key go together: give both or neither")
    # the environment is part of the key: boto3 reads credentials and the region from it
    key = (endpoint_url, region, profile, access_key, secret_key, session_token) + tuple(
        os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                                          "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _new_client(endpoint_url, region, profile, access_key, secret_key, session_token)
    return client


def _new_client(endpoint_url: Optional[str], region: Optional[str], profile: Optional[str], access_key: Optional[str],
                secret_key: Optional[str], session_token: Optional[str]) -> Any:
    try:
        session = boto3.session.Session(profile_name=profile or None, aws_access_key_id=access_key or None,
                                        aws_secret_access_key=secret_key or None,
                                        aws_session_token=session_token or None)
        config = botocore.config.Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10,
                                        read_timeout=30, s3={"addressing_style": "path"} if endpoint_url else None)
        return session.client("s3", region_name=region or None, endpoint_url=endpoint_url, config=config)
    except botocore.exceptions.ProfileNotFound:
        raise StateError("AWS profile %r not found" % profile)
    except botocore.exceptions.BotoCoreError as exc:
        raise StateError("cannot build the S3 client: %s" % type(exc).__name__)


def _code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        return str(err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
    return type(exc).__name__


def _is_conflict(exc: BaseException) -> bool:
    return _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


def _is_missing(exc: BaseException) -> bool:
    return _code(exc) in ("NoSuchKey", "404", "NotFound")


class S3Objects:
    """Get, put and delete of one bucket's objects, conditional, with errors that name the object only."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def url(self, key: str) -> str:
        return "s3://%s/%s" % (self.bucket, key)

    def _fail(self, op: str, key: str, exc: BaseException) -> StateError:
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return StateError("%s %s: no AWS credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE "
                              "or an instance role)" % (op, self.url(key)))
        if isinstance(exc, botocore.exceptions.ClientError):
            msg = exc.response.get("Error", {}).get("Message") or ""
            return StateError("%s %s failed: %s%s" % (op, self.url(key), _code(exc), (" (%s)" % msg) if msg else ""))
        return StateError("%s %s failed: %s" % (op, self.url(key), type(exc).__name__))

    def get(self, key: str) -> Tuple[Optional[bytes], Optional[str]]:
        """``(bytes, etag)``, or ``(None, None)`` when there is no such object."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key)
            return resp["Body"].read(), resp["ETag"]
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            if _is_missing(exc):
                return None, None
            raise self._fail("GET", key, exc)

    def etag(self, key: str) -> Optional[str]:
        try:
            etag: str = self.client.head_object(Bucket=self.bucket, Key=key)["ETag"]
            return etag
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            if _is_missing(exc):
                return None
            raise self._fail("HEAD", key, exc)

    def put(self, key: str, body: bytes, if_match: Optional[str] = None, if_none_match: bool = False,
            content_type: str = "application/octet-stream") -> str:
        """Write ``body``; with a condition, :class:`ConflictError` when another writer got there first."""
        args = dict(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        if if_match:
            args["IfMatch"] = if_match
        elif if_none_match:
            args["IfNoneMatch"] = "*"
        try:
            etag: str = self.client.put_object(**args)["ETag"]
            return etag
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            if _is_conflict(exc) or (if_match and _is_missing(exc)):
                raise ConflictError("%s changed under this run (conditional PUT refused)" % self.url(key))
            raise self._fail("PUT", key, exc)

    def delete(self, key: str, if_match: Optional[str] = None) -> None:
        args = dict(Bucket=self.bucket, Key=key)
        if if_match:
            args["IfMatch"] = if_match
        try:
            self.client.delete_object(**args)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            if _is_conflict(exc):
                raise ConflictError("%s changed under this run (conditional DELETE refused)" % self.url(key))
            if _is_missing(exc):
                return
            raise self._fail("DELETE", key, exc)


def join_key(prefix: str, name: str) -> str:
    return "%s/%s" % (prefix, name) if prefix else name


def backoff(attempt: int) -> None:
    time.sleep(min(2.0, 0.05 * (2 ** attempt)) * random.uniform(0.5, 1.0))


def read_text(url: str, client: Any = None, **client_options: Optional[str]) -> Optional[str]:
    """The text of the object at ``s3://bucket/key`` (None when missing)."""
    bucket, key, options = parse_s3_url(url)
    objects = S3Objects(client or s3_client(**client_kwargs(options, client_options)), bucket)
    body, dummy = objects.get(key)
    return None if body is None else body.decode("utf-8")


def write_text(url: str, text: str, client: Any = None, content_type: str = "application/json", **client_options: Optional[str]) -> str:
    """Write ``text`` to ``s3://bucket/key`` (one PUT: readers see the old or the new object, never half)."""
    bucket, key, options = parse_s3_url(url)
    objects = S3Objects(client or s3_client(**client_kwargs(options, client_options)), bucket)
    objects.put(key, text.encode("utf-8"), content_type=content_type)
    return url


def append_lines(url: str, lines: Iterable[str], client: Any = None, **client_options: Optional[str]) -> str:
    """Append ``lines`` to the text object at ``s3://bucket/key`` (read, then a conditional PUT; retried)."""
    bucket, key, options = parse_s3_url(url)
    objects = S3Objects(client or s3_client(**client_kwargs(options, client_options)), bucket)
    added = "".join(line + "\n" for line in lines).encode("utf-8")
    for attempt in range(CONFLICT_RETRIES):
        body, etag = objects.get(key)
        try:
            objects.put(key, (body or b"") + added, if_match=etag, if_none_match=etag is None,
                        content_type="application/x-ndjson")
            return url
        except ConflictError:
            backoff(attempt)
    raise StateError("%s changed %d times in a row while appending to it" % (objects.url(key), CONFLICT_RETRIES))


def client_kwargs(url_options: Mapping[str, str], given: Mapping[str, Optional[str]]) -> dict[str, Optional[str]]:
    out: dict[str, Optional[str]] = dict((k, v) for k, v in url_options.items() if k in CLIENT_OPTIONS)
    out.update(dict((k, v) for k, v in given.items() if k in CLIENT_OPTIONS and v not in (None, "")))
    return out
