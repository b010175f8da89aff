"""The one-word outcome of a drain, derived from the final execution state.

These words are the `Outcome` metric dimension, the SNS message's `outcome` attribute and the
README's runbook headings: keep them stable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from drainer.clock import parse_iso
from drainer.progress import ACTION_ENDED, CEILING, DRAINED, GONE
from drainer.request import (
    INVALID,
    ROUTE_ALREADY_ENDED,
    ROUTE_COMPLETE_ONLY,
    ROUTE_FINISH,
    ROUTE_IGNORE,
    ROUTE_REBALANCE_DRAIN,
    ROUTE_REBALANCE_REPLACE,
    ROUTE_TEST_EVENT_REFUSED,
    SPOT,
)

FAILED = "failed"
OUTCOMES = {
    "drained": "every task stopped; lifecycle action completed",
    "ceiling": "maximum drain time reached; stragglers handled per policy; action completed",
    "instance-gone": "the container instance left ECS mid-drain; action completed",
    "not-in-cluster": "lifecycle instance in no configured cluster; action completed at once",
    "action-ended-externally": "the lifecycle action ended before the drain did",
    "spot-drained": "every task stopped before the Spot interruption",
    "spot-interrupted": "the Spot interruption came with tasks still alive",
    "rebalance-ignored": "rebalance recommendation ignored by policy",
    "rebalance-draining": "rebalance recommendation: instance set to DRAINING",
    "replacement-requested": "rebalance recommendation: Auto Scaling replaces the instance",
    "replacement-skipped": "rebalance recommendation: instance not replaceable (see detail)",
    "not-ours": "the instance is in none of the configured clusters",
    "duplicate": "another execution already handles this event",
    "already-ended": "the lifecycle action had already ended (event delivered again or late); "
    "nothing drained, nothing completed",
    "test-event-refused": "test event for an instance without the ecs-drainer:test-events = "
    "allow tag; nothing drained",
    "invalid-event": "the event could not be used (see problem); nothing drained; an action of "
    "ours it still identified was completed",
    FAILED: "the drain failed (see error); the rescue path completed the lifecycle action (a "
    "duplicate leaves it to the execution that owns the drain: actionLeftTo)",
}


def outcome_name(state: dict[str, Any]) -> str:
    request = state.get("request") or {}
    progress = state.get("progress") or {}
    if state.get("error"):
        return FAILED
    if (state.get("claim") or {}).get("duplicate"):
        return "duplicate"
    route, kind = request.get("route"), request.get("kind")
    if kind == INVALID:
        return "invalid-event"
    if route == ROUTE_ALREADY_ENDED:
        return "already-ended"
    if route == ROUTE_TEST_EVENT_REFUSED:
        return "test-event-refused"
    if route == ROUTE_COMPLETE_ONLY:
        # Ended between Resolve's look at the instance and the completion: nothing was done.
        ended = (state.get("completion") or {}).get("alreadyEnded")
        return "already-ended" if ended else "not-in-cluster"
    if route == ROUTE_IGNORE:
        return "rebalance-ignored"
    if route == ROUTE_FINISH:
        # A lifecycle event refused with a reason (other group, no live action) is unusable;
        # an account-wide event for someone else's instance is simply not ours.
        return "invalid-event" if request.get("problem") else "not-ours"
    if route == ROUTE_REBALANCE_DRAIN:
        return "rebalance-draining"
    if route == ROUTE_REBALANCE_REPLACE:
        return "replacement-requested" if progress.get("replaced") else "replacement-skipped"
    verdict = progress.get("verdict")
    if (state.get("completion") or {}).get("alreadyEnded"):
        # Completed, abandoned or timed out by someone else: tasks may have died with it.
        return "action-ended-externally"
    if kind == SPOT:
        if verdict == DRAINED:
            return "spot-drained"
        return "instance-gone" if verdict == GONE else "spot-interrupted"
    return {
        DRAINED: "drained",
        GONE: "instance-gone",
        CEILING: "ceiling",
        ACTION_ENDED: "action-ended-externally",
    }.get(verdict, FAILED)


def summarise(state: dict[str, Any], execution_arn: str | None, now: datetime) -> dict[str, Any]:
    request = state.get("request") or {}
    progress = state.get("progress") or {}
    completion = state.get("completion") or {}
    name = outcome_name(state)
    started = progress.get("startedAt")
    return {
        "outcome": name,
        "meaning": OUTCOMES[name],
        "instanceId": request.get("instanceId"),
        "kind": request.get("kind"),
        "reason": request.get("reason"),
        "autoScalingGroupName": request.get("autoScalingGroupName"),
        "cluster": (state.get("target") or {}).get("cluster"),
        "durationSeconds": round((now - parse_iso(started)).total_seconds()) if started else 0,
        "polls": progress.get("polls", 0),
        "heartbeats": progress.get("heartbeats", 0),
        "tasksAtStart": progress.get("tasksAtStart"),
        "tasksLeft": (progress.get("tasks") or {}).get("alive"),
        "tasksStopped": progress.get("tasksStopped", 0),
        "tasksCutShort": progress.get("tasksCutShort", 0),
        "actionCompleted": bool(completion.get("completed")),
        # already-ended: Resolve found it ended (Auto Scaling's state), no completion was tried.
        "actionAlreadyEnded": bool(completion.get("alreadyEnded")) or name == "already-ended",
        "actionLeftTo": completion.get("leftTo"),
        "dryRun": bool(request.get("dryRun")),
        "problem": request.get("problem"),
        "error": state.get("error"),
        "executionArn": execution_arn,
    }
