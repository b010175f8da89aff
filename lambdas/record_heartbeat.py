"""Lambda: record a lifecycle heartbeat so the hook's timeout does not cut the drain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from drainer import lifecycle_action, log, progress
from drainer.clock import iso, utcnow
from drainer.request import DrainRequest


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    state = event["state"]
    return {**state, "progress": heartbeat(state, utcnow())}


def heartbeat(state: dict[str, Any], now: datetime) -> dict[str, Any]:
    request = DrainRequest.from_state(state["request"])
    current = state["progress"]
    try:
        lifecycle_action.record_heartbeat(request)
    except lifecycle_action.ActionNotFound as ended:
        # Someone completed the action, or it timed out: the instance is going; stop here.
        log.warning(
            "lifecycle action ended under the drain",
            instanceId=request.instance_id,
            detail=str(ended),
        )
        return {**current, "verdict": progress.ACTION_ENDED}
    return {
        **current,
        "verdict": progress.WAIT,
        "lastHeartbeatAt": iso(now),
        "heartbeats": current["heartbeats"] + 1,
    }
