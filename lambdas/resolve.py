"""Lambda: turn a raw EventBridge event into a drain request, find its container instance and,
for a lifecycle or rebalance drain, claim it.

Claiming here rather than in a Task of its own saves a lifecycle drain two state transitions
(the Claim Task and its "duplicate?" Choice): "Route by event kind" sends a duplicate straight
to "Report outcome". A Spot drain claims after DRAINING instead, so that nothing, not even a
DynamoDB write, stands between the two-minute warning and DRAINING.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from drainer import log, progress
from drainer.claims import claim
from drainer.clock import iso, parse_iso, utcnow
from drainer.ecs import locate
from drainer.lifecycle_action import lifecycle_state, not_ours_because
from drainer.parsers import parse_event, salvage
from drainer.request import (
    INVALID,
    LIFECYCLE,
    REBALANCE,
    ROUTE_COMPLETE_ONLY,
    ROUTE_FINISH,
    ROUTE_IGNORE,
    ROUTE_LIFECYCLE,
    ROUTE_REBALANCE_DRAIN,
    ROUTE_REBALANCE_REPLACE,
    ROUTE_SPOT,
    SPOT,
    DrainRequest,
    EventError,
)
from drainer.schedule import ceiling_seconds
from drainer.settings import Settings, settings

# Routes whose drain is claimed here; the Spot route claims after DRAINING ("Spot: claim").
CLAIMED_ROUTES = frozenset({ROUTE_LIFECYCLE, ROUTE_REBALANCE_DRAIN, ROUTE_REBALANCE_REPLACE})
UNCLAIMED = {"duplicate": False, "key": None, "owner": None}


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    return resolve(event.get("event"), event["executionArn"], settings(), utcnow())


def resolve(raw: Any, execution_arn: str, config: Settings, now: datetime) -> dict[str, Any]:
    try:
        request = parse_event(raw, config.test_event_source, now)
    except EventError as problem:
        request = salvage(raw, str(problem), now)
        log.error(
            "unusable event",
            problem=str(problem),
            field=problem.field,
            executionArn=execution_arn,
            instanceId=request.instance_id,
        )
    request.dry_run = config.dry_run
    target = None
    if request.kind == LIFECYCLE:
        ours = _our_action(request, config) and _action_is_live(request)
        if ours:
            ceiling = ceiling_seconds(config.max_drain_seconds, config.heartbeat_timeout_seconds)
            request.deadline = iso(parse_iso(request.event_time) + timedelta(seconds=ceiling))
            target = locate(request.instance_id, config.cluster_names)
        request.route = (
            (ROUTE_LIFECYCLE if target else ROUTE_COMPLETE_ONLY) if ours else ROUTE_FINISH
        )
    elif request.kind == SPOT:
        target = locate(request.instance_id, config.cluster_names)
        request.route = ROUTE_SPOT if target else ROUTE_FINISH
    elif request.kind == REBALANCE:
        request.route = _rebalance_route(request, config)
        if request.route != ROUTE_IGNORE:
            target = locate(request.instance_id, config.cluster_names)
            request.route = request.route if target else ROUTE_FINISH
    elif request.kind == INVALID and _our_action(request, config):
        request.route = ROUTE_COMPLETE_ONLY  # never leave an action open, even on a bad event
    held = dict(UNCLAIMED)
    if request.route in CLAIMED_ROUTES:
        held = claim(config.claims_table, request, execution_arn, now)
    log.info(
        "resolved drain request",
        executionArn=execution_arn,
        instanceId=request.instance_id,
        kind=request.kind,
        route=request.route,
        cluster=(target or {}).get("cluster"),
        duplicate=held["duplicate"],
    )
    return {
        "request": request.to_state(),
        "target": target,
        "progress": progress.initial(request, target, config, now),
        "claim": held,  # always present: "Route by event kind" tests $.claim.duplicate
    }


def _our_action(request: DrainRequest, config: Settings) -> bool:
    problem = not_ours_because(request, config.auto_scaling_group_names, config.lifecycle_hook_name)
    if problem:
        request.problem = request.problem or problem
    return problem is None


def _action_is_live(request: DrainRequest) -> bool:
    """Refuse a lifecycle event for an instance Auto Scaling reports InService: it has no live
    terminate action, so the event is stale or forged (a test-source event is written by hand),
    and draining would take a healthy instance's tasks away for nothing."""
    if lifecycle_state(request.instance_id) != "InService":
        return True
    request.problem = (
        f"instance {request.instance_id} is InService: no terminate lifecycle action is live for "
        "it, so the event is stale or forged; nothing was drained"
    )
    return False


def _rebalance_route(request: DrainRequest, config: Settings) -> str:
    return {
        "ignore": ROUTE_IGNORE,
        "drain": ROUTE_REBALANCE_DRAIN,
        "replace": ROUTE_REBALANCE_REPLACE,
    }[config.rebalance_policy]
