"""Lambda: turn a raw EventBridge event into a drain request, find its container instance and,
for a lifecycle or rebalance drain, claim it. A lifecycle drain's instance is found later, by
"Start draining" after the drain's start slot (drainer/pacing.py): no ECS call here for it.
A slot past the first heartbeat is waited for in rounds, "Start draining" recording the
heartbeat between them (lambdas/start_drain.py).

Claiming here rather than in a Task of its own saves a lifecycle drain two state transitions
(a Claim Task and its "duplicate?" Choice): "Route by event kind" sends a duplicate straight
to "Report outcome". A Spot drain claims after DRAINING instead ("Start draining"), so that
nothing, not even a DynamoDB write, stands between the two-minute warning and DRAINING.

Resolve writes the first state document (request, target, progress); every later step writes
its own part of it (drainer/state.py).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from drainer import log, pacing, progress, rebalance
from drainer.claims import claim
from drainer.clock import iso, iso_ms, parse_iso, utcnow
from drainer.ecs import locate
from drainer.lifecycle_action import LIVE, NEVER, action_standing, lifecycle_state, not_ours_because
from drainer.opt_in import TEST_EVENTS_ALLOWED, TEST_EVENTS_TAG, accepts_test_events
from drainer.other_hooks import other_terminate_hooks
from drainer.parsers import parse_event, salvage
from drainer.request import (
    INVALID,
    LIFECYCLE,
    REBALANCE,
    ROUTE_ALREADY_ENDED,
    ROUTE_COMPLETE_ONLY,
    ROUTE_FINISH,
    ROUTE_IGNORE,
    ROUTE_LIFECYCLE,
    ROUTE_SPOT,
    ROUTE_TEST_EVENT_REFUSED,
    SPOT,
    DrainRequest,
    EventError,
)
from drainer.schedule import ceiling_seconds
from drainer.settings import Settings, settings

if TYPE_CHECKING:  # type hints only: no cold start compiles these
    from drainer.state import Claim, StateDocument

# Routes whose drain is claimed here; the Spot route claims after DRAINING ("Start draining").
CLAIMED_ROUTES = frozenset({ROUTE_LIFECYCLE}) | rebalance.CLAIMED_ROUTES


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> StateDocument:
    return resolve(event.get("event"), event["executionArn"], settings(), utcnow())


def resolve(raw: Any, execution_arn: str, config: Settings, now: datetime) -> StateDocument:
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
        request.route = _lifecycle_route(request, config)
        if request.route == ROUTE_LIFECYCLE:
            ceiling = ceiling_seconds(config.max_drain_seconds, config.heartbeat_timeout_seconds)
            request.deadline = iso(parse_iso(request.event_time) + timedelta(seconds=ceiling))
            # Located by "Start draining", after the drain's start slot (drainer/pacing.py).
    elif request.kind == SPOT:
        if _refused_test_event(request, config):
            request.route = ROUTE_TEST_EVENT_REFUSED
        else:
            target = locate(request.instance_id, config.cluster_names)
            request.route = ROUTE_SPOT if target else ROUTE_FINISH
    elif request.kind == REBALANCE:
        request.route = rebalance.route(config.rebalance_policy)
        if request.route != ROUTE_IGNORE and _refused_test_event(request, config):
            request.route = ROUTE_TEST_EVENT_REFUSED
        elif request.route != ROUTE_IGNORE:
            target = locate(request.instance_id, config.cluster_names)
            request.route = request.route if target else ROUTE_FINISH
    elif request.kind == INVALID and _our_action(request, config):
        request.route = ROUTE_COMPLETE_ONLY  # never leave an action open, even on a bad event
    held: Claim = progress.UNCLAIMED
    if request.route in CLAIMED_ROUTES:
        held = claim(config.claims_table, request, execution_arn, now)
    pace, slot_at = 0, None
    if request.route == ROUTE_LIFECYCLE and not held["duplicate"]:
        request.other_terminate_hooks = other_terminate_hooks(request)
        pace, slot_at = _start_slot(request, config, now)
    log.info(
        "resolved drain request",
        executionArn=execution_arn,
        instanceId=request.instance_id,
        kind=request.kind,
        route=request.route,
        cluster=(target or {}).get("cluster"),
        duplicate=held["duplicate"],
    )
    first = progress.initial(request, target, config, now, held)
    if request.route == ROUTE_LIFECYCLE:
        first["nextWaitSeconds"] = pace  # "Wait for a drain start slot"; then Start draining
        first["startSlotAt"] = slot_at
    return {"request": request.to_state(), "target": target, "progress": first}


def _start_slot(request: DrainRequest, config: Settings, now: datetime) -> tuple[int, str]:
    """Seconds to wait for the drain's start slot, and the slot's moment. The wait ends no
    later than the first heartbeat falls due, nor past the ceiling: the heartbeat schedule and
    the ceiling hold as without it. A slot further off is waited for from "Start draining",
    which records the heartbeat and waits again (start_drain.py)."""
    delay = pacing.reserve(config.claims_table, config.drain_start_rate_per_second, now)
    since_action = (now - parse_iso(request.event_time)).total_seconds()
    limits = [delay, progress.heartbeat_gap(request, {"heartbeats": 0}, config) - since_action]
    left = progress.seconds_left(request, now)
    if left is not None:
        limits.append(left)
    return max(0, math.ceil(min(limits))), iso_ms(now + timedelta(seconds=delay))


def _our_action(request: DrainRequest, config: Settings) -> bool:
    problem = not_ours_because(request, config.auto_scaling_group_names, config.lifecycle_hook_name)
    if problem:
        request.problem = request.problem or problem
    return problem is None


def _lifecycle_route(request: DrainRequest, config: Settings) -> str:
    """Drain (ROUTE_LIFECYCLE) only an action of ours whose instance Auto Scaling holds in a
    terminate wait, whatever the source: a test-source event is written by hand, and an AWS
    event can be a late redelivery. Outside that wait no terminate action is open (the wait
    lasts until every hook completes), so nothing is left open by not completing."""
    if not _our_action(request, config):
        return ROUTE_FINISH
    state = lifecycle_state(request.instance_id)
    standing = action_standing(request, state)
    if standing == LIVE:
        return ROUTE_LIFECYCLE
    where = f"Auto Scaling reports instance {request.instance_id} {state or 'gone'}"
    if standing == NEVER:
        request.problem = (
            f"{where}: no terminate lifecycle action is live for it, so the event is stale or "
            "forged; nothing was drained"
        )
        return ROUTE_FINISH
    request.problem = (
        f"{where}: the lifecycle action this event names had already ended (the event was "
        "delivered again or late); nothing was drained or completed"
    )
    return ROUTE_ALREADY_ENDED


def _refused_test_event(request: DrainRequest, config: Settings) -> bool:
    """A Spot or rebalance event from the test source, for an instance that did not opt in.
    Events from AWS's own sources are never asked (no call before a real Spot DRAINING)."""
    if request.source != config.test_event_source or accepts_test_events(request.instance_id):
        return False
    request.problem = (
        f"test event refused: instance {request.instance_id} does not carry the EC2 tag "
        f"{TEST_EVENTS_TAG} = {TEST_EVENTS_ALLOWED}, so events from the test source may not "
        "drain it; nothing was drained"
    )
    return True
