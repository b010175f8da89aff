"""Lambda: count the tasks still alive on the instance and say what the loop does next;
record the lifecycle heartbeat if it falls due now. In poll mode a lifecycle drain's poll
first takes its poll slots (drainer/pacing.py) and makes no ECS call before them."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from drainer import lifecycle_action, log, outcome, pacing, progress, watch
from drainer.aws import AWS_FAILURES, Throttled
from drainer.clock import iso, iso_ms, parse_iso, utcnow
from drainer.ecs import InstanceGone
from drainer.request import LIFECYCLE, DrainRequest
from drainer.services import classifier
from drainer.settings import EVENTS, POLL, Settings, settings
from drainer.tasks import TaskSnapshot, alive_before, expected_calls, snapshot

if TYPE_CHECKING:  # type hints only: no cold start compiles these
    from drainer.state import Progress, Target


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> Progress:
    request = DrainRequest.from_state(event["request"])
    return poll(request, event["target"], event["progress"], settings(), utcnow())


def poll(
    request: DrainRequest, target: Target, current: Progress, config: Settings, now: datetime
) -> Progress:
    if paces_polls(request, config):
        waiting = before_poll_slot(request, current, config, now)
        if waiting is not None:
            return waiting
    current = {**current, "pollSlotAt": None}  # used (or none: not paced)
    try:
        before = alive_before(dict(current))  # None: the first snapshot, which lists and counts
        tasks, daemons, known = snapshot(
            dict(target),
            set(current["daemonServices"]),
            set(current["knownServices"]),
            before,
            classifier(config.claims_table, now),
            listed_all=current.get("listedAll", False),
            counted_at=counted_at(target, current, config) if before is None else None,
        )
        current = {**current, "daemonServices": sorted(daemons), "knownServices": sorted(known)}
        if tasks.listed_running is not None:  # the first snapshot: did it see every task?
            counted = (current.get("drain") or {}).get("tasksCounted")
            current["listedAll"] = counted is not None and tasks.listed_running >= counted
        if current.get("tasksAtStart") is None:  # located by a list, without counts
            current["tasksAtStart"] = tasks.alive
    except InstanceGone as gone:
        log.warning("container instance gone", detail=str(gone))
        tasks = None
    except Throttled as throttled:
        log.warning("poll throttled; polling again later", detail=str(throttled))
        return progress.after_throttling(request, current, config, now, random.random())
    result = progress.decide(request, current, tasks, config, now)
    if result["verdict"] == progress.HEARTBEAT and tasks is not None:
        result = heartbeat_here(request, current, tasks, result, config, now)
    log.info(
        "polled",
        verdict=result["verdict"],
        ending=result["ending"],
        tasks=result["tasks"],
        nextWaitSeconds=result["nextWaitSeconds"],
    )
    return result


def paces_polls(request: DrainRequest, config: Settings) -> bool:
    """Poll mode's lifecycle drains take poll slots: every drain in flight polls each interval,
    so a mass refresh's polls alone would otherwise throttle ECS for the whole account. Not
    Spot (few polls, and its two minutes count), and not events mode, whose polls are few
    (one when woken, else every fallback_poll_seconds) and whose first poll, the only costly
    one, comes at the start rate."""
    return config.drain_end_detection == POLL and request.kind == LIFECYCLE


def before_poll_slot(
    request: DrainRequest, current: Progress, config: Settings, now: datetime
) -> Progress | None:
    """The progress that waits for the poll's slot, with no ECS call; None: poll now. The slot
    is the one an earlier invocation reserved and waited for (pollSlotAt), else a new
    reservation of one slot per ECS call the snapshot expects to make. A slot within a second
    has come (Wait states count whole seconds); at the ceiling the poll goes now, and the drain
    ends with what it finds, as without pacing."""
    left = progress.seconds_left(request, now)
    if left is not None and left <= 0:
        return None
    if not current.get("pollSlotAt"):
        calls = expected_calls(dict(current))
        delay = pacing.reserve(
            config.claims_table, config.poll_rate_per_second, now, pacing.POLL_KEY, calls
        )
        current = {**current, "pollSlotAt": iso_ms(now + timedelta(seconds=delay))}
    ahead = progress.to_poll_slot(current, now)
    if ahead < progress.SLOT_TOLERANCE_SECONDS:
        return None
    log.info("poll slot still ahead", pollSlotAt=current["pollSlotAt"], secondsToSlot=ahead)
    return progress.poll_paced(request, current, config, now)


def counted_at(target: Target, current: Progress, config: Settings) -> datetime | None:
    """From when a task told to stop was one ECS counted as it set DRAINING (drainer/tasks.py
    `snapshot`, for the first snapshot). In events mode, ECS's own moment from the
    instance's DRAINING event when the watch has it (drainer/watch.py `record_draining`): a
    task the service scheduler told to stop right after DRAINING then counts, and the
    confirming listing at the end is not needed. Otherwise the start function's clock with its
    margin (lambdas/start_drain.py), which leaves such a task out, and the listing is made."""
    drain = current.get("drain") or {}
    if drain.get("tasksCounted") is None:
        return None
    if config.drain_end_detection == EVENTS:
        try:
            since = watch.draining_since(config.claims_table, target["containerInstanceArn"])
        except AWS_FAILURES as error:
            log.warning("DRAINING moment not read; counting by the clock", error=str(error))
            since = None
        if since is not None:
            return since
    text = drain.get("countedAt")
    return parse_iso(text) if text else None


def heartbeat_here(
    request: DrainRequest,
    current: Progress,
    tasks: TaskSnapshot,
    due: Progress,
    config: Settings,
    now: datetime,
) -> Progress:
    """Record the heartbeat that fell due in this poll, then decide with the fresh snapshot.

    Two states fewer per heartbeat ("Record heartbeat" and the Choice after it): over a 48-hour
    drain that is most of its history. And the wait after it is then what the poll decides (an
    awaited wait in events mode), not a timer. Should the call fail for any other reason than
    the action having ended, the poll answers HEARTBEAT and the state machine's own heartbeat
    step, with its retries, records it before the next wait.
    """
    try:
        lifecycle_action.record_heartbeat(request)
    except lifecycle_action.ActionNotFound as ended:
        log.warning("lifecycle action ended under the drain", detail=str(ended))
        return {**due, **progress.finished(outcome.ACTION_ENDED_EXTERNALLY)}
    except Exception as error:
        log.warning("heartbeat not recorded in the poll", error=f"{type(error).__name__}: {error}")
        return due
    recorded = {**current, "lastHeartbeatAt": iso(now), "heartbeats": current["heartbeats"] + 1}
    return progress.decide(request, recorded, tasks, config, now)
