"""Lambda: set the container instance to DRAINING (ECS then moves its service tasks).

A Spot drain is claimed right after, so that a duplicate warning ends as a duplicate: nothing,
not even a DynamoDB write, stands between the two-minute warning and DRAINING. For a `stop` or
`hibernate` interruption the instance is also noted as parked, so that it is set ACTIVE again
when it comes back (drainer/parking.py, lambdas/reactivate_instance.py). Lifecycle and
rebalance drains were claimed by Resolve (lambdas/resolve.py). A lifecycle drain comes here
after its start slot (drainer/pacing.py) and finds its container instance first: its first ECS
call is paced; Spot's DRAINING is not. A slot past the first heartbeat is waited for in rounds:
each time it comes here before the slot, "Record heartbeat" keeps the action alive and it waits
again (before_start_slot).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from drainer import log, outcome, progress, watch
from drainer.claims import claim
from drainer.clock import iso, utcnow
from drainer.ecs import InstanceGone, locate, set_draining
from drainer.reporting import drain_started
from drainer.request import (
    ROUTE_COMPLETE_ONLY,
    ROUTE_LIFECYCLE,
    ROUTE_REBALANCE_DRAIN,
    SPOT,
    DrainRequest,
)
from drainer.settings import EVENTS, Settings, settings

if TYPE_CHECKING:  # type hints only: no cold start compiles these
    from drainer.state import Progress, StateDocument, Target

COUNT_MARGIN_SECONDS = 2


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> StateDocument:
    """The whole document: a lifecycle drain's target is found here, after its start slot."""
    request = DrainRequest.from_state(event["request"])
    target, current, config, now = event["target"], event["progress"], settings(), utcnow()
    if target is None and request.route == ROUTE_LIFECYCLE:
        waiting = before_start_slot(request, current, config, now)
        if waiting is not None:
            return {"request": request.to_state(), "target": None, "progress": waiting}
        target = locate(request.instance_id, config.cluster_names)
        if target is None:  # in no configured cluster: complete the action at once
            request.route = ROUTE_COMPLETE_ONLY
            log.info("container instance not found; completing", instanceId=request.instance_id)
            ending = {"verdict": progress.COMPLETE, "ending": outcome.NOT_IN_CLUSTER}
            return {
                "request": request.to_state(),
                "target": None,
                "progress": {**current, **ending},
            }
        current = {
            **current,
            "verdict": progress.WAIT,  # not the start slot's PACE, should it have waited in rounds
            "tasksAtStart": target.get("runningTasksCount"),
            "nextWaitSeconds": progress.first_wait(request, config, now, current),
        }
    started = start_drain(request, target, current, event["executionArn"], config, now)
    return {"request": request.to_state(), "target": target, "progress": started}


def before_start_slot(
    request: DrainRequest, current: Progress, config: Settings, now: datetime
) -> Progress | None:
    """A lifecycle drain come here before its start slot: the wait for it was cut at the
    heartbeat that fell due (resolve.py). No ECS call: "Record heartbeat" records it and waits
    for the slot again (lambdas/record_heartbeat.py). None: go on and start, the slot has come
    (within a second: the Wait counts whole seconds) or the ceiling has, which the first poll
    then meets as without pacing."""
    ahead = progress.to_start_slot(current, now)
    if ahead < progress.SLOT_TOLERANCE_SECONDS:
        return None
    left = progress.seconds_left(request, now)
    if left is not None and left <= 0:
        return None
    log.info("start slot still ahead", instanceId=request.instance_id, secondsToSlot=ahead)
    return {**current, "verdict": progress.HEARTBEAT}


def start_drain(
    request: DrainRequest,
    target: Target,
    current: Progress,
    execution_arn: str,
    config: Settings,
    now: datetime,
) -> Progress:
    open_watch_if_awaited(request, target, execution_arn, config, now)
    try:
        drain = set_draining(dict(target), request.dry_run)
    except InstanceGone as gone:
        drain = {"changed": False, "gone": str(gone)}  # the next poll ends the drain as "gone"
    if drain.get("tasksCounted") is not None:
        # After the count, with a margin for clocks: a task told to stop at or after this
        # moment was desired RUNNING when ECS counted (drainer/tasks.py snapshot).
        drain["countedAt"] = iso(utcnow() + timedelta(seconds=COUNT_MARGIN_SECONDS))
    started: Progress = {**current, "drain": drain}
    if started.get("tasksAtStart") is None:  # located by a list, without counts
        started["tasksAtStart"] = drain.get("tasksCounted")
    if request.kind == SPOT:
        # Spot drains only (parking a stop/hibernate), after DRAINING: no other drain compiles it
        from drainer.parking import park, should_park

        claimed = claim(config.claims_table, request, execution_arn, now)
        if claimed["duplicate"]:
            return {**started, "claim": claimed, **progress.finished(outcome.DUPLICATE)}
        if should_park(request, drain):
            claimed["parked"] = park(config.claims_table, request, target, execution_arn)
        started["claim"] = claimed
    # The drain has begun: announced after DRAINING (and, on the Spot path, after its claim).
    state = {"request": request.to_state(), "target": dict(target), "progress": started}
    drain_started(state, execution_arn, config, now)
    if request.route == ROUTE_REBALANCE_DRAIN:
        # Rebalance policy "drain": ECS moves the tasks; the instance runs on until reclaimed.
        return {**started, **progress.finished(outcome.REBALANCE_DRAINING)}
    return started


def open_watch_if_awaited(
    request: DrainRequest, target: Target, execution_arn: str, config: Settings, now: datetime
) -> None:
    """events mode: record the instance's task stops from before the first snapshot on, so a
    stop between a poll and the arming of the wait after it is not missed (drainer/watch.py).
    Only drains that await stops (a lifecycle drain's loop; not Spot, not a dry run, not a
    rebalance drain, which ends here). Best effort: without it, the first awaited wait opens
    the watch, and a stop before that ends the wait at its fallback poll instead."""
    if config.drain_end_detection != EVENTS or request.route != ROUTE_LIFECYCLE:
        return
    if request.dry_run or config.dry_run:
        return
    try:
        watch.open_watch(
            config.claims_table,
            target["containerInstanceArn"],
            execution_arn=execution_arn,
            instance_id=request.instance_id,
            cluster=target["cluster"],
            expires_at=watch.expires_at(request.deadline, now),
            opened_at=now,
        )
    except Exception as error:  # the drain goes on; its waits end at the fallback poll
        log.warning("watch not opened", error=f"{type(error).__name__}: {error}")
