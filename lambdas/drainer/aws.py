"""Lazily created boto3 clients and the AWS error vocabulary the state machine retries on.

boto3 comes from the Lambda runtime. Clients are created on first use and cached per process,
so a warm function reuses its connections.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as SdkConnectionError

# Throttling is retried by the state machine with jittered back-off (Retry on "Throttled"), where
# the wait costs nothing; the SDK retries only briefly in-process.
_CONFIG = Config(
    retries={
        "mode": "standard",
        "max_attempts": int(os.environ.get("DRAINER_SDK_MAX_ATTEMPTS", "3")),
    },
    connect_timeout=5,
    read_timeout=20,
)

THROTTLING_CODES = frozenset(
    {
        "Throttling",  # Auto Scaling
        "ThrottlingException",  # ECS, DynamoDB, SNS
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
    }
)
TRANSIENT_CODES = frozenset(
    {"ServerException", "InternalFailure", "ServiceUnavailable", "InternalError"}
)


class Throttled(Exception):
    """AWS throttled us; the state machine retries with jittered exponential back-off."""


class AwsTransientError(Exception):
    """AWS answered with a 5xx; the state machine retries a few times."""


# Whatever `call` raises when AWS refuses or fails a call: for lookups that are only hints
# (pacing, caches, the DRAINING moment), whose loss costs an ECS call, never a drain.
AWS_FAILURES = (ClientError, Throttled, AwsTransientError)


@cache
def client(service: str) -> Any:
    return boto3.client(service, config=_CONFIG)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def reraise_retryable(error: ClientError) -> None:
    """Turn throttling and 5xx answers into the two errors the state machine retries on."""
    code = error_code(error)
    if code in THROTTLING_CODES:
        raise Throttled(f"{code}: {error_message(error)}") from error
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in TRANSIENT_CODES or status >= 500:
        raise AwsTransientError(f"{code or status}: {error_message(error)}") from error


def call(service: str, operation: str, **params: Any) -> dict[str, Any]:
    """Call one AWS operation; throttling and 5xx become Throttled / AwsTransientError, and so
    do connection errors and read timeouts once the SDK's own retries are spent (under their
    own names they match no Retry, and the rescue path would cut the drain short)."""
    try:
        return getattr(client(service), operation)(**params)
    except ClientError as error:
        reraise_retryable(error)
        raise
    except (SdkConnectionError, HTTPClientError) as error:
        raise AwsTransientError(f"{type(error).__name__}: {error}") from error
