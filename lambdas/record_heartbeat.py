"""Lambda: record a lifecycle heartbeat so the hook's timeout does not cut the drain."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from drainer import lifecycle_action, log, outcome, progress
from drainer.clock import iso, utcnow
from drainer.request import DrainRequest

if TYPE_CHECKING:  # type hints only: no cold start compiles these
    from drainer.state import Progress


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> Progress:
    return heartbeat(DrainRequest.from_state(event["request"]), event["progress"], utcnow())


def heartbeat(request: DrainRequest, current: Progress, now: datetime) -> Progress:
    try:
        lifecycle_action.record_heartbeat(request)
    except lifecycle_action.ActionNotFound as ended:
        # Someone completed the action, or it timed out: the instance is going; stop here.
        log.warning("lifecycle action ended under the drain", detail=str(ended))
        return {**current, **progress.finished(outcome.ACTION_ENDED_EXTERNALLY)}
    return {
        **current,
        "verdict": progress.WAIT,
        "lastHeartbeatAt": iso(now),
        "heartbeats": current["heartbeats"] + 1,
    }
