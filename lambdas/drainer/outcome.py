"""The one-word outcome of a drain: each is recorded by the step that decides it.

These words are the `Outcome` metric dimension, the SNS message's `outcome` attribute and the
README's runbook headings: keep them stable.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from drainer.clock import parse_iso
from drainer.request import (
    INVALID,
    ROUTE_ALREADY_ENDED,
    ROUTE_COMPLETE_ONLY,
    ROUTE_FINISH,
    ROUTE_IGNORE,
    ROUTE_TEST_EVENT_REFUSED,
    DrainRequest,
)

if TYPE_CHECKING:  # type hints only: no cold start compiles these
    from drainer.state import Completion

DRAINED = "drained"
CEILING = "ceiling"
INSTANCE_GONE = "instance-gone"
NOT_IN_CLUSTER = "not-in-cluster"
ACTION_ENDED_EXTERNALLY = "action-ended-externally"
SPOT_DRAINED = "spot-drained"
SPOT_INTERRUPTED = "spot-interrupted"
REBALANCE_IGNORED = "rebalance-ignored"
REBALANCE_DRAINING = "rebalance-draining"
REPLACEMENT_REQUESTED = "replacement-requested"
REPLACEMENT_SKIPPED = "replacement-skipped"
NOT_OURS = "not-ours"
DUPLICATE = "duplicate"
ALREADY_ENDED = "already-ended"
TEST_EVENT_REFUSED = "test-event-refused"
INVALID_EVENT = "invalid-event"
FAILED = "failed"

# Each outcome (in the runbook's order), and the step that records it as `ending` in its part of
# the state document: poll = "Poll tasks" (drainer/progress.py ENDINGS), resolve = "Resolve drain
# request" (on_resolve), complete = "Complete lifecycle action" (after_completion), start =
# "Start draining", heartbeat = "Record heartbeat", replace = "Rebalance: replace instance"
# (drainer/rebalance.py); FAILED: any step's error (the rescue path).
OUTCOMES = {
    DRAINED: "every task stopped; lifecycle action completed",  # poll
    CEILING: "maximum drain time reached; stragglers handled per policy; action completed",  # poll
    INSTANCE_GONE: "the container instance left ECS mid-drain; action completed",  # poll
    # resolve
    NOT_IN_CLUSTER: "lifecycle instance in no configured cluster; action completed at once",
    # heartbeat, or complete
    ACTION_ENDED_EXTERNALLY: "the lifecycle action ended before the drain did",
    SPOT_DRAINED: "every task stopped before the Spot interruption",  # poll
    SPOT_INTERRUPTED: "the Spot interruption came with tasks still alive",  # poll
    REBALANCE_IGNORED: "rebalance recommendation ignored by policy",  # resolve
    REBALANCE_DRAINING: "rebalance recommendation: instance set to DRAINING",  # start
    # replace
    REPLACEMENT_REQUESTED: "rebalance recommendation: Auto Scaling replaces the instance",
    REPLACEMENT_SKIPPED: "rebalance recommendation: instance not replaceable (see detail)",
    NOT_OURS: "the instance is in none of the configured clusters",  # resolve
    DUPLICATE: "another execution already handles this event",  # resolve, or start (Spot)
    # resolve, or complete (for not-in-cluster)
    ALREADY_ENDED: "the lifecycle action had already ended (event delivered again or late); "
    "nothing drained, nothing completed",
    TEST_EVENT_REFUSED: "test event for an instance without the ecs-drainer:test-events = "
    "allow tag; nothing drained",  # resolve
    INVALID_EVENT: "the event could not be used (see problem); nothing drained; an action of "
    "ours it still identified was completed",  # resolve
    FAILED: "the drain failed (see error); the rescue path completed the lifecycle action (a "
    "duplicate leaves it to the execution that owns the drain: actionLeftTo)",
}

# Routes that end at Resolve, with their outcome (ROUTE_FINISH: see on_resolve).
ROUTE_OUTCOMES = {
    ROUTE_ALREADY_ENDED: ALREADY_ENDED,
    ROUTE_TEST_EVENT_REFUSED: TEST_EVENT_REFUSED,
    ROUTE_COMPLETE_ONLY: NOT_IN_CLUSTER,
    ROUTE_IGNORE: REBALANCE_IGNORED,
}
# Later steps' parts first: the last step that decided an ending has the last word.
ENDING_PARTS = ("completion", "replacement", "progress")


def on_resolve(request: DrainRequest, duplicate: bool) -> str | None:
    """The outcome Resolve decides; None for a drain or a replacement still to come."""
    if duplicate:
        return DUPLICATE
    if request.kind == INVALID:
        return INVALID_EVENT
    if request.route == ROUTE_FINISH:
        # A lifecycle event refused with a reason (other group, no live action) is unusable;
        # an account-wide event for someone else's instance is simply not ours.
        return INVALID_EVENT if request.problem else NOT_OURS
    return ROUTE_OUTCOMES.get(request.route)


def after_completion(request: DrainRequest, completion: Completion) -> str | None:
    """The outcome "Complete lifecycle action" decides: only when the action had ended
    elsewhere (Resolve's look and the completion raced; or the drain outlived the action)."""
    if not completion["alreadyEnded"] or request.kind == INVALID:
        return None
    if request.route == ROUTE_COMPLETE_ONLY:
        return ALREADY_ENDED  # nothing was done: not-in-cluster becomes already-ended
    return ACTION_ENDED_EXTERNALLY  # tasks may have died with it


def outcome_name(state: dict[str, Any]) -> str:
    if state.get("error"):
        return FAILED
    for part in ENDING_PARTS:
        ending = (state.get(part) or {}).get("ending")
        if ending:
            return ending
    return FAILED


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
        "actionAlreadyEnded": bool(completion.get("alreadyEnded")) or name == ALREADY_ENDED,
        "actionLeftTo": completion.get("leftTo"),
        "dryRun": bool(request.get("dryRun")),
        "problem": request.get("problem"),
        "error": state.get("error"),
        "executionArn": execution_arn,
        # The instance goes only when these hooks' actions are complete too.
        "otherTerminateHooks": request.get("otherTerminateHooks") or [],
    }
