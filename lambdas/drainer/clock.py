"""Time helpers. ISO-8601 UTC strings travel through the state machine; datetimes stay inside."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(moment: datetime) -> str:
    """iso() to the millisecond, for a moment a whole second would misplace (a start slot)."""
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    """Parse the timestamps EventBridge and this package write ('…Z', optional fraction)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def seconds_between(start: str, end: datetime) -> float:
    return (end - parse_iso(start)).total_seconds()
