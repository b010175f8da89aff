"""Lambda: the last line of defence when a drain execution itself fails, times out or is aborted.

Inside the state machine every step's errors are caught and end in the rescue path, which
completes the lifecycle action. What the state machine cannot catch — the execution aborted by
hand, its timeout, the history quota, a service fault — reaches this function through the
"Step Functions Execution Status Change" event. It reads the drain's original event from the
execution input, completes the action and reports the failure, so no instance waits for the
hook's timeout because of a failed drain.
"""

from __future__ import annotations

import json
from typing import Any

from drainer import claims, log
from drainer.aws import call
from drainer.clock import utcnow
from drainer.lifecycle_action import complete_if_ours, left_to
from drainer.parsers import parse_or_salvage
from drainer.reporting import report
from drainer.request import LIFECYCLE
from drainer.settings import settings

FAIL_STATE = "Drain failed"  # the state machine's own rescue path ends here, already reported


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    return rescue(event.get("detail") or {})


def rescue(detail: dict[str, Any]) -> dict[str, Any]:
    config = settings()
    execution_arn = detail.get("executionArn")
    if execution_arn and _rescued_inside(execution_arn):
        log.info("execution already rescued by its own rescue path", executionArn=execution_arn)
        return {"rescued": False, "reason": "rescued inside the state machine"}
    try:
        raw = json.loads(detail.get("input") or "null")
    except json.JSONDecodeError:
        raw = None
    request = parse_or_salvage(raw, config.test_event_source, utcnow())
    status = detail.get("status", "FAILED")
    state = {
        "request": request.to_state(),
        "error": {
            "Error": f"Execution{status.title().replace('_', '')}",
            "Cause": f"the drain execution ended {status}",
        },
    }
    owner = None
    if request.kind == LIFECYCLE:
        owner = claims.owner_elsewhere(config.claims_table, request, execution_arn)
        # Reporting releases the claim if this execution held it, so that the instance's next
        # lifecycle action (a warm-pool instance coming back) is not taken for a duplicate.
        key = claims.claim_key(request)
        state["claim"] = {"duplicate": bool(owner), "key": key, "owner": owner or execution_arn}
    if owner:  # a failed duplicate: the owner completes the action (or its own rescue does)
        log.info("duplicate: the owning execution completes the action", owner=owner)
        state["completion"] = left_to(owner)
    else:
        state["completion"] = complete_if_ours(
            request, config.auto_scaling_group_names, config.lifecycle_hook_name, execution_arn
        )
    summary = report(state, execution_arn, config, utcnow())
    return {"rescued": True, "outcome": summary}


def _rescued_inside(execution_arn: str) -> bool:
    """Did the execution's own rescue path complete and report before its Fail state?

    The rescue steps catch their own failures and go on to the Fail state all the same, with
    `rescueError` / `reportError` in the state: then the action may still be open.
    """
    tail = call(
        "stepfunctions",
        "get_execution_history",
        executionArn=execution_arn,
        reverseOrder=True,
        maxResults=5,
    )
    for event in tail.get("events", []):
        entered = event.get("stateEnteredEventDetails") or {}
        if entered.get("name") == FAIL_STATE:
            try:
                state = json.loads(entered.get("input") or "null")
            except json.JSONDecodeError:
                return False
            return isinstance(state, dict) and not (
                state.get("rescueError") or state.get("reportError")
            )
    return False
