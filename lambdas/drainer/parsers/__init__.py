"""One parser per event kind, chosen by detail-type; each returns a DrainRequest.

Like Karpenter's interruption controller: the detail-type picks the parser, the source only has to
be AWS's own or the configured test source (AWS refuses `aws.*` sources in PutEvents).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from drainer.clock import iso, parse_iso, utcnow
from drainer.parsers import lifecycle, rebalance, spot
from drainer.parsers.fields import INSTANCE_ID, MAX_TEXT, TOKEN, text_field
from drainer.request import INVALID, DrainRequest, EventError

Parser = Callable[[Mapping[str, Any], datetime], DrainRequest]

PARSERS: dict[str, tuple[str, Parser]] = {
    lifecycle.DETAIL_TYPE: (lifecycle.SOURCE, lifecycle.parse),
    spot.DETAIL_TYPE: (spot.SOURCE, spot.parse),
    rebalance.DETAIL_TYPE: (rebalance.SOURCE, rebalance.parse),
}


def parse_event(event: Any, test_source: str | None, now: datetime | None = None) -> DrainRequest:
    """Parse a raw EventBridge event. Raises EventError naming the field and the fix."""
    if not isinstance(event, Mapping):
        raise EventError(
            "event",
            f"expected a JSON object, got {type(event).__name__}",
            "Send an EventBridge event envelope (see events/*.json)",
        )
    detail_type = text_field(event, "detail-type")
    if detail_type not in PARSERS:
        raise EventError(
            "detail-type",
            f"{detail_type!r} is not an event the drainer handles",
            f"Use one of: {', '.join(sorted(PARSERS))}",
        )
    aws_source, parser = PARSERS[detail_type]
    source = text_field(event, "source")
    allowed = {aws_source, test_source} - {None}
    if source not in allowed:
        raise EventError(
            "source",
            f"{source!r} is not allowed for {detail_type!r}",
            f"Use {' or '.join(sorted(allowed))}",
        )
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise EventError(
            "detail",
            "missing or not an object",
            "Put the event's fields under 'detail' as AWS does",
        )
    return parser(event, event_time(event, now or utcnow()))


def event_time(event: Mapping[str, Any], now: datetime) -> datetime:
    """The event's `time`, or now when it is absent or unparseable.

    AWS's sample events carry the placeholder 'yyyy-mm-ddThh:mm:ssZ'; a drain must not fail on it,
    nor on a time that exists only with its offset ('0001-01-01T00:00:00+01:00' is year 0 in UTC).
    A time in the future is clamped to now so a hostile event cannot extend a deadline.
    """
    raw = event.get("time")
    if not isinstance(raw, str):
        return now
    try:
        # In UTC at once: an offset that pushes the moment past year 1 or 9999 is junk too.
        moment = parse_iso(raw).astimezone(UTC)
    except (ValueError, OverflowError):
        return now
    return min(moment, now)


def salvage(event: Any, problem: str, now: datetime | None = None) -> DrainRequest:
    """Best-effort request from an event that failed to parse.

    Keeps whatever identifies a lifecycle action, so that even a malformed lifecycle event ends
    with its action completed instead of waiting for the hook's timeout.
    """
    now = now or utcnow()
    mapping = event if isinstance(event, Mapping) else {}
    detail = mapping.get("detail") if isinstance(mapping.get("detail"), Mapping) else {}

    def pick(source: Mapping[str, Any], key: str) -> str | None:
        value = source.get(key)
        if isinstance(value, str) and value and len(value) <= MAX_TEXT:
            return value
        return None

    instance_id = pick(detail, "EC2InstanceId") or pick(detail, "instance-id")
    if instance_id is not None and not INSTANCE_ID.fullmatch(instance_id):
        instance_id = None
    token = pick(detail, "LifecycleActionToken")
    if token is not None and not TOKEN.fullmatch(token):
        token = None
    return DrainRequest(
        kind=INVALID,
        instance_id=instance_id,
        reason="invalid-event",
        event_id=pick(mapping, "id"),
        event_time=iso(event_time(mapping, now)),
        source=pick(mapping, "source"),
        detail_type=pick(mapping, "detail-type"),
        auto_scaling_group_name=pick(detail, "AutoScalingGroupName"),
        lifecycle_hook_name=pick(detail, "LifecycleHookName"),
        lifecycle_action_token=token,
        problem=problem,
    )


def parse_or_salvage(
    event: Any, test_source: str | None, now: datetime | None = None
) -> DrainRequest:
    """The drain request of a raw event; a salvaged INVALID one when it does not parse."""
    try:
        return parse_event(event, test_source, now)
    except EventError as problem:
        return salvage(event, str(problem), now)


def request_of(
    document: Mapping[str, Any], execution_input: Any, test_source: str | None, now: datetime
) -> DrainRequest:
    """The rescue path's request: the document's, or, when a step failed before Resolve gave
    it one, the raw event's (the execution input) parsed again."""
    if isinstance(document.get("request"), dict):
        return DrainRequest.from_state(document["request"])
    return parse_or_salvage(execution_input, test_source, now)
