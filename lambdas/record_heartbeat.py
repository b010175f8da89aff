"""Lambda: record a lifecycle heartbeat so the hook's timeout does not cut the drain, in the
drain loop or, before DRAINING, while a lifecycle drain waits for its start slot
(drainer/pacing.py)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from drainer import lifecycle_action, log, outcome, progress
from drainer.clock import iso, utcnow
from drainer.request import DrainRequest
from drainer.settings import Settings, settings

if TYPE_CHECKING:  # type hints only: no cold start compiles these
    from drainer.state import Progress


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> Progress:
    request, current, now = DrainRequest.from_state(event["request"]), event["progress"], utcnow()
    if current.get("drain") is None and current.get("startSlotAt"):
        return before_start_slot(request, current, settings(), now)
    return heartbeat(request, current, now)


def before_start_slot(
    request: DrainRequest, current: Progress, config: Settings, now: datetime
) -> Progress:
    """Not yet DRAINING: "Start draining" found the drain's start slot still ahead as the
    heartbeat fell due (lambdas/start_drain.py). Record it, then wait for the slot again."""
    recorded = heartbeat(request, current, now)
    if recorded["verdict"] == progress.FINISH:  # the action ended elsewhere
        return recorded
    return progress.paced(request, recorded, config, now)


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
