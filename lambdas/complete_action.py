"""Lambda: complete the lifecycle action with CONTINUE so the termination goes ahead.

Also the rescue path's first step: after any failure it re-reads the execution's input, so even
a drain that failed before its request was resolved ends with its action completed.
"""

from __future__ import annotations

from typing import Any

from drainer import log
from drainer.clock import utcnow
from drainer.lifecycle_action import complete_if_ours, left_to
from drainer.parsers import parse_or_salvage
from drainer.request import DrainRequest
from drainer.settings import settings


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    config = settings()
    state = event["state"]
    if "executionInput" in event and not isinstance(state.get("request"), dict):
        # Rescue after a failure before the request was resolved: read the raw event again.
        request = parse_or_salvage(event["executionInput"], config.test_event_source, utcnow())
        state = {"request": request.to_state(), "error": state.get("error")}
    else:
        request = DrainRequest.from_state(state["request"])
    claim = state.get("claim") or {}
    if claim.get("duplicate"):
        # Only a rescue gets here with a duplicate: the owning execution is draining and
        # completes the action; completing it now would cut that drain's tasks short.
        log.info("duplicate: the owning execution completes the action", owner=claim.get("owner"))
        return {**state, "completion": left_to(claim.get("owner"))}
    completion = complete_if_ours(
        request,
        config.auto_scaling_group_names,
        config.lifecycle_hook_name,
        event.get("executionArn"),
    )
    return {**state, "completion": completion}
