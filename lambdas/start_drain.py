"""Lambda: set the container instance to DRAINING (ECS then moves its service tasks)."""

from __future__ import annotations

from typing import Any

from drainer import log
from drainer.clock import utcnow
from drainer.ecs import InstanceGone, set_draining
from drainer.reporting import drain_started
from drainer.request import SPOT
from drainer.settings import settings


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    state = event["state"]
    state = {
        **state,
        "progress": start_drain(state["target"], state["progress"], state["request"]["dryRun"]),
    }
    # The Spot path announces after its claim: nothing may stand before DRAINING there.
    if state["request"]["kind"] != SPOT:
        drain_started(state, event.get("executionArn"), settings(), utcnow())
    return state


def start_drain(target: dict[str, Any], progress: dict[str, Any], dry_run: bool) -> dict[str, Any]:
    try:
        result = set_draining(target, dry_run)
    except InstanceGone as gone:
        result = {"changed": False, "gone": str(gone)}  # the next poll ends the drain as "gone"
    return {**progress, "drain": result}
