"""Lambda: complete the lifecycle action with CONTINUE so the termination goes ahead.

Also the rescue path's first step: after any failure it re-reads the execution's input, so even
a drain that failed before its request was resolved ends with its action completed.
"""

from __future__ import annotations

from typing import Any

from drainer import lifecycle_action, log
from drainer.clock import utcnow
from drainer.parsers import parse_event, salvage
from drainer.request import DrainRequest, EventError
from drainer.settings import Settings, settings


def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    config = settings()
    state = event["state"]
    if "executionInput" in event and not isinstance(state.get("request"), dict):
        # Rescue after a failure before the request was resolved: read the raw event again.
        request = request_from_raw(event["executionInput"], config)
        state = {"request": request.to_state(), "error": state.get("error")}
    else:
        request = DrainRequest.from_state(state["request"])
    return {**state, "completion": complete(request, config, event.get("executionArn"))}


def request_from_raw(raw: Any, config: Settings) -> DrainRequest:
    try:
        return parse_event(raw, config.test_event_source, utcnow())
    except EventError as problem:
        return salvage(raw, str(problem))


def complete(
    request: DrainRequest, config: Settings, execution_arn: str | None = None
) -> dict[str, Any]:
    problem = lifecycle_action.not_ours_because(
        request, config.auto_scaling_group_names, config.lifecycle_hook_name
    )
    if problem:
        log.info(
            "no lifecycle action to complete",
            reason=problem,
            instanceId=request.instance_id,
            executionArn=execution_arn,
        )
        return {"completed": False, "alreadyEnded": False, "result": None}
    # Dry run completes too: the hooks exist, and an unfinished action would only delay the
    # termination that would have happened without the drainer.
    return lifecycle_action.complete(request)
