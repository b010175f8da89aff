"""Lambda: the last line of defence when a drain execution itself fails, times out or is aborted.

Inside the state machine every step's errors are caught and end in the rescue path, which
completes the lifecycle action. What the state machine cannot catch — the execution aborted by
hand, its timeout, the history quota, a service fault — reaches this function through the
"Step Functions Execution Status Change" event. It reads the execution's last state document
from its history (falling back to the drain's original event, the execution input), gives a
started drain the same grace as the in-machine rescue path, completes the action and reports the
failure with the facts the execution had gathered, so no instance waits for the hook's timeout
because of a failed drain.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from drainer import claims, log
from drainer.aws import call
from drainer.clock import iso, parse_iso, utcnow
from drainer.lifecycle_action import ActionNotFound, complete_if_ours, left_to, record_heartbeat
from drainer.parsers import parse_or_salvage
from drainer.reporting import report
from drainer.request import LIFECYCLE, DrainRequest
from drainer.settings import Settings, settings

FAIL_STATE = "Drain failed"  # the state machine's own rescue path ends here, already reported
# The state machine's own rescue path: its Choice, then its grace (counted from there).
RESCUE_CHOICE = "Rescue: was the instance draining?"
GRACE_STATE = "Rescue: let ECS move the tasks"
HISTORY_TAIL = 25  # enough newest events to reach the last state entered (a Task writes ~5)
# Kept for the completion and the report after the grace, when the Lambda's time runs short.
FINISH_RESERVE_SECONDS = 60
WAKE_UP_SECONDS = 1.0  # the grace is waited in short sleeps, each checked against the clock

Clock = Callable[[], datetime]
Sleep = Callable[[float], None]


@log.per_invocation
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    budget = remaining() / 1000 - FINISH_RESERVE_SECONDS if remaining else None
    return rescue(event.get("detail") or {}, time_budget_seconds=budget)


def rescue(
    detail: dict[str, Any],
    now: Clock = utcnow,
    sleep: Sleep = time.sleep,
    time_budget_seconds: float | None = None,
) -> dict[str, Any]:
    """Complete and report the failed execution `detail` describes (the status-change event's
    detail). `now` and `sleep` are the clock the grace is measured and waited on; the grace
    never outlasts `time_budget_seconds` (the Lambda's time left, less a reserve)."""
    config = settings()
    execution_arn = detail.get("executionArn")
    tail = _history_tail(execution_arn)
    if _rescued_inside(tail):
        log.info("execution already rescued by its own rescue path", executionArn=execution_arn)
        return {"rescued": False, "reason": "rescued inside the state machine"}
    last, last_name, last_time = _last_state(tail)
    stopped = _epoch_ms(detail.get("stopDate")) or now()
    request = _request(last, detail, config, now())
    status = detail.get("status", "FAILED")
    # The facts the execution had gathered (instance, cluster, tasks at the last poll), so the
    # report says what happened rather than "no cluster, no time".
    state: dict[str, Any] = {
        key: last[key] for key in ("target", "progress", "completion") if key in last
    }
    state["request"] = request.to_state()
    state["error"] = {
        "Error": f"Execution{status.title().replace('_', '')}",
        "Cause": f"the drain execution ended {status}",
    }
    started = _epoch_ms(detail.get("startDate"))
    if not (state.get("progress") or {}).get("startedAt") and started:
        # No drain yet: the execution's own run time is the duration worth reporting.
        state["progress"] = {**(state.get("progress") or {}), "startedAt": iso(started)}
    owner = None
    if request.kind == LIFECYCLE:
        owner = claims.owner_elsewhere(config.claims_table, request, execution_arn)
        # Reporting releases the claim if this execution held it, so that the instance's next
        # lifecycle action (a warm-pool instance coming back) is not taken for a duplicate.
        key = claims.claim_key(request)
        state["progress"] = {
            **(state.get("progress") or {}),
            "claim": {"duplicate": bool(owner), "key": key, "owner": owner or execution_arn},
        }
    if owner:  # a failed duplicate: the owner completes the action (or its own rescue does)
        log.info("duplicate: the owning execution completes the action", owner=owner)
        state["completion"] = left_to(owner)
    elif "completion" not in state:  # completed before the execution ended: not again
        grace = _grace_seconds(state, request, config)
        if "error" in last and last_name not in (RESCUE_CHOICE, GRACE_STATE):
            grace = 0  # the execution's own rescue path was past its grace: not twice
        if grace:
            # Counted from the stop, or from where the execution's own grace began.
            began = last_time if last_name == GRACE_STATE else None
            deadline = (began or stopped) + timedelta(seconds=grace)
            if time_budget_seconds is not None:
                deadline = min(deadline, now() + timedelta(seconds=max(0, time_budget_seconds)))
            _let_ecs_move_the_tasks(request, deadline, now, sleep, execution_arn)
        state["completion"] = complete_if_ours(
            request, config.auto_scaling_group_names, config.lifecycle_hook_name, execution_arn
        )
    summary = report(state, execution_arn, config, now())
    return {"rescued": True, "outcome": summary}


def _grace_seconds(state: dict[str, Any], request: DrainRequest, config: Settings) -> int:
    """The in-machine rescue path's rule ("Rescue: was the instance draining?"): a lifecycle
    drain that had set the instance DRAINING gets `rescueWaitSeconds`, within today's cap."""
    progress = state.get("progress") or {}
    wait = progress.get("rescueWaitSeconds")
    if request.kind != LIFECYCLE or progress.get("drain") is None or not isinstance(wait, int):
        return 0
    return max(0, min(wait, config.rescue_wait_seconds))


def _let_ecs_move_the_tasks(
    request: DrainRequest, deadline: datetime, now: Clock, sleep: Sleep, execution_arn: str | None
) -> None:
    """Wait until `deadline` while ECS moves the tasks of the DRAINING instance.

    A heartbeat first, so the hook's heartbeat timeout cannot end the action during the wait
    (the grace fits within one timeout). If it fails, the action may have little time left:
    complete at once rather than risk it.
    """
    if deadline <= now():
        return
    try:
        record_heartbeat(request)
    except ActionNotFound as ended:
        log.info(
            "lifecycle action already ended", instanceId=request.instance_id, detail=str(ended)
        )
        return
    except Exception as error:  # the completion must happen whatever the heartbeat did
        log.error(
            "heartbeat failed; completing without the grace",
            instanceId=request.instance_id,
            executionArn=execution_arn,
            error=str(error),
        )
        return
    log.info(
        "letting ECS move the tasks before completing",
        instanceId=request.instance_id,
        executionArn=execution_arn,
        until=iso(deadline),
    )
    # Never more sleep in all than the grace, whatever the clock says (a clock that stands
    # still must not hold the action open).
    total = (deadline - now()).total_seconds()
    slept = 0.0
    while slept < total and (left := (deadline - now()).total_seconds()) > 0:
        step = min(left, WAKE_UP_SECONDS, total - slept)
        sleep(step)
        slept += step


def _request(
    last: dict[str, Any], detail: dict[str, Any], config: Settings, at: datetime
) -> DrainRequest:
    """The resolved request of the last state, else the one parsed from the original event."""
    if isinstance(last.get("request"), dict):
        try:
            return DrainRequest.from_state(last["request"])
        except (KeyError, TypeError, ValueError):
            pass
    try:
        raw = json.loads(detail.get("input") or "null")
    except json.JSONDecodeError:
        raw = None
    return parse_or_salvage(raw, config.test_event_source, at)


def _history_tail(execution_arn: str | None) -> list[dict[str, Any]]:
    """The execution's newest history events, newest first; none when they cannot be read
    (the rescue then completes at once from the execution input: never leave the action open)."""
    if not execution_arn:
        return []
    try:
        events = call(
            "stepfunctions",
            "get_execution_history",
            executionArn=execution_arn,
            reverseOrder=True,
            maxResults=HISTORY_TAIL,
        ).get("events", [])
    except Exception as error:
        log.error(
            "execution history unreadable; rescuing from the execution input",
            executionArn=execution_arn,
            error=str(error),
        )
        return []
    # Newest first by event id, whatever order the answer came in (moto ignores reverseOrder).
    return sorted(events, key=lambda event: event.get("id", 0), reverse=True)


def _rescued_inside(tail: list[dict[str, Any]]) -> bool:
    """Did the execution's own rescue path complete and report before its Fail state?

    The rescue steps catch their own failures and go on to the Fail state all the same, with
    `rescueError` / `reportError` in the state: then the action may still be open.
    """
    for event in tail:
        entered = event.get("stateEnteredEventDetails") or {}
        if entered.get("name") == FAIL_STATE:
            # Any document: one that failed before Resolve has no request, yet was rescued.
            state = _json_object(entered.get("input"))
            return bool(state) and not (state.get("rescueError") or state.get("reportError"))
    return False


def _last_state(
    tail: list[dict[str, Any]],
) -> tuple[dict[str, Any], str | None, datetime | None]:
    """The newest state document in the history tail, with its state's name and the time of
    that history event; ({}, None, None) when there is none."""
    for event in tail:
        details = event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails")
        if not details:
            continue
        state = _document(details.get("input", details.get("output")))
        if state:
            return state, details.get("name"), _moment(event.get("timestamp"))
    return {}, None, None


def _document(text: Any) -> dict[str, Any]:
    """A drain state document (it carries `request`), or {}."""
    state = _json_object(text)
    return state if "request" in state else {}


def _json_object(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _epoch_ms(value: Any) -> datetime | None:
    """The status-change event's startDate/stopDate: milliseconds since the epoch."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value / 1000, UTC)
    return None


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            return parse_iso(value)
        except ValueError:
            return None
    return None
