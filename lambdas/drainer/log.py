"""One-line JSON logs that CloudWatch Logs Insights can filter on (instanceId, executionArn).

Every handler is wrapped in `per_invocation`, which binds the invocation's `instanceId` and
`executionArn` once, so every line written during the invocation carries them — also the lines of
the shared modules (ECS calls, CompleteLifecycleAction, heartbeats) that never see the event.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
# Only an EC2 instance id goes into every line, never whatever a hand-written event put there.
INSTANCE_ID = re.compile(r"i-[0-9a-f]{8}(?:[0-9a-f]{9})?")

# A ContextVar, not a module dict: warm invocations must not inherit the last one's ids, and the
# offline harness runs many invocations at once, one per thread.
_bound: ContextVar[Mapping[str, Any] | None] = ContextVar("drainer_log_fields", default=None)


def bound_fields() -> dict[str, Any]:
    """The fields every line of the current invocation carries."""
    return dict(_bound.get() or {})


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Every line written inside the block carries `fields` (a line's own fields win)."""
    token = _bound.set({**bound_fields(), **fields})
    try:
        yield
    finally:
        _bound.reset(token)


def per_invocation(handler: Handler) -> Handler:
    """Decorate a Lambda handler: its lines carry the invocation's instanceId and executionArn."""

    @functools.wraps(handler)
    def logged(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with bound(**invocation_ids(event)):
            return handler(event, context)

    return logged


def invocation_ids(event: Any) -> dict[str, str | None]:
    """instanceId and executionArn of any event a handler receives (null when it names none).

    Task payloads carry `executionArn` and the request (`request.instanceId`, or
    `state.request.instanceId` on the rescue path), or the raw
    EventBridge event before it is resolved (`event`, or `executionInput` on the rescue path);
    the "Step Functions Execution Status Change" event carries both in `detail`.
    """
    payload = event if isinstance(event, Mapping) else {}
    status_change = _mapping(payload.get("detail"))
    execution_arn = payload.get("executionArn") or status_change.get("executionArn")
    # A Task passes the parts its Lambda needs (`request`), the rescue path the whole `state`.
    request = _mapping(payload.get("request")) or _mapping(
        _mapping(payload.get("state")).get("request")
    )
    instance_id = request.get("instanceId")
    if not instance_id:
        raw = payload.get("event") or payload.get("executionInput") or _json(status_change)
        detail = _mapping(_mapping(raw).get("detail"))
        instance_id = detail.get("EC2InstanceId") or detail.get("instance-id")
    return {
        "instanceId": instance_id if _is_instance_id(instance_id) else None,
        "executionArn": execution_arn if isinstance(execution_arn, str) else None,
    }


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _json(status_change: Mapping[str, Any]) -> Any:
    try:
        return json.loads(status_change.get("input") or "null")
    except (TypeError, ValueError):
        return None


def _is_instance_id(value: Any) -> bool:
    return isinstance(value, str) and INSTANCE_ID.fullmatch(value) is not None


def log(level: str, message: str, **fields: Any) -> None:
    bound_now = bound_fields()
    record = {
        "level": level,
        "message": message,
        "timestamp": round(time.time(), 3),
        **bound_now,
        # A line's own null does not hide the invocation's value (a salvaged request's id).
        **{
            key: value for key, value in fields.items() if value is not None or key not in bound_now
        },
    }
    sys.stdout.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")


def info(message: str, **fields: Any) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    log("ERROR", message, **fields)
