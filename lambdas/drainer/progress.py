"""What the drain loop does next, decided from one task snapshot.

Lifecycle and Spot drains share one loop in the state machine (Wait → "Poll tasks" → "Check
drain progress"). What differs between them is decided here, not by states of their own:
heartbeats (lifecycle only), the short Spot interval and its end before the interruption, the
standalone-task policy (Spot stops them at once), and what ends the loop: a lifecycle drain
completes its action, a Spot drain has none to complete (ENDINGS).

`verdict` is what the loop does next: the values "Check drain progress" branches on
(statemachine/build.py reads them from here). `ending` is the outcome word, recorded here by the
poll that ends the drain (drainer/outcome.py).
"""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from drainer import outcome
from drainer.clock import iso, parse_iso
from drainer.request import LIFECYCLE, REBALANCE, ROUTE_COMPLETE_ONLY, SPOT, DrainRequest
from drainer.schedule import (
    SPOT_FINISH_MARGIN_SECONDS,
    PollSchedule,
    first_heartbeat_phases,
    next_wait,
)
from drainer.settings import EVENTS, Settings

if TYPE_CHECKING:  # type hints only: no cold start compiles these
    from drainer.state import Claim, Progress
    from drainer.tasks import TaskSnapshot

# What the loop does next ("Check drain progress").
WAIT = "wait"  # wait, then poll again (the Choice's default)
# events mode: wait until the awaited tasks have stopped (a task event wakes the callback Task,
# drainer/watch.py) or nextWaitSeconds have passed, then poll again
AWAIT = "await"
HEARTBEAT = "heartbeat"  # record a lifecycle heartbeat first
STOP_STANDALONE = "stop-standalone"  # standalone task policy "stop": stop them, then wait
CEILING = "ceiling"  # lifecycle: maximum drain time reached; straggler policy, then complete
COMPLETE = "complete"  # lifecycle: the drain is over; complete the action
FINISH = "finish"  # nothing left to do but report the outcome
# lifecycle, before DRAINING: the start slot lies past the heartbeat just recorded; wait for it
# again ("Wait for a drain start slot", then "Start draining"). Before its slot "Start
# draining" answers HEARTBEAT, and "Record heartbeat" this.
PACE = "pace"
VERDICTS = (WAIT, AWAIT, HEARTBEAT, STOP_STANDALONE, CEILING, COMPLETE, FINISH, PACE)
# The drains whose waits events may end (settings.drain_end_detection = "events"). Spot keeps
# its short timer polls: two minutes leave nothing to save.
AWAITING_KINDS = (LIFECYCLE, REBALANCE)

# What a poll found that ends the loop.
DRAINED, GONE, OUT_OF_TIME = "drained", "gone", "out-of-time"
# (kind, found) → (verdict, ending): a lifecycle drain completes its action (through the
# straggler policy at the ceiling); a Spot drain has no action and ends before its interruption.
ENDINGS: dict[tuple[str, str], tuple[str, str]] = {
    (LIFECYCLE, DRAINED): (COMPLETE, outcome.DRAINED),
    (LIFECYCLE, GONE): (COMPLETE, outcome.INSTANCE_GONE),
    (LIFECYCLE, OUT_OF_TIME): (CEILING, outcome.CEILING),
    (SPOT, DRAINED): (FINISH, outcome.SPOT_DRAINED),
    (SPOT, GONE): (FINISH, outcome.INSTANCE_GONE),
    (SPOT, OUT_OF_TIME): (FINISH, outcome.SPOT_INTERRUPTED),
}


# The claim of a drain that claimed nothing (yet: a Spot drain claims after DRAINING). Here, not
# in drainer/claims.py, so that the handlers that never claim do not compile the claims.
UNCLAIMED: Claim = {"duplicate": False, "key": None, "owner": None}


def ended(request: DrainRequest, found: str) -> dict[str, str]:
    verdict, ending = ENDINGS[(request.kind, found)]
    return {"verdict": verdict, "ending": ending}


def finished(ending: str) -> dict[str, str]:
    """A step other than the poll ended the drain (a duplicate, the action ended elsewhere)."""
    return {"verdict": FINISH, "ending": ending}


def initial(
    request: DrainRequest,
    target: dict[str, Any] | None,
    settings: Settings,
    now: datetime,
    claim: Claim = UNCLAIMED,
) -> Progress:
    """The first progress record (Resolve): a drain route waits; a route that ends here (not
    ours, ignored, a duplicate…) finishes with its outcome; complete-only completes."""
    ending = outcome.on_resolve(request, claim["duplicate"])
    if request.route == ROUTE_COMPLETE_ONLY and not claim["duplicate"]:
        verdict = COMPLETE
    else:
        verdict = FINISH if ending else WAIT
    return {
        "startedAt": iso(now),
        "claim": dict(claim),
        # The hook's heartbeat timer started with the action, i.e. at the event.
        "lastHeartbeatAt": request.event_time,
        "polls": 0,
        "heartbeats": 0,
        "verdict": verdict,
        "ending": ending,
        "nextWaitSeconds": first_wait(request, settings, now),
        # The back-off's own interval: a wait cut short (heartbeat, ceiling) or stretched
        # (throttling) does not restart or speed up the back-off.
        "pollIntervalSeconds": None,
        "tasks": None,
        "aliveTasks": [],
        "listedAll": False,
        "awaitedTasks": [],
        "tasksAtStart": (target or {}).get("runningTasksCount"),
        "workloadDrainedAt": None,
        "daemonServices": [],
        "knownServices": [],
        "tasksStopped": 0,
        "tasksCutShort": 0,
        "throttledPolls": 0,
        "drain": None,
        "startSlotAt": None,  # a lifecycle drain's start slot (Resolve, drainer/pacing.py)
        "pollSlotAt": None,  # poll mode: the next poll's slot, once reserved (poll_tasks.py)
        # Read by the rescue path (ASL "Rescue: was the instance draining?") after a failure.
        "rescueWaitSeconds": settings.rescue_wait_seconds,
    }


def schedule_of(settings: Settings) -> PollSchedule:
    return PollSchedule(
        settings.poll_interval_seconds,
        settings.max_poll_interval_seconds,
        settings.backoff_after_seconds,
        settings.backoff_rate,
    )


def seconds_left(request: DrainRequest, now: datetime) -> float | None:
    if request.deadline is None:
        return None
    margin = SPOT_FINISH_MARGIN_SECONDS if request.kind == SPOT else 0
    return (parse_iso(request.deadline) - now).total_seconds() - margin


def first_wait(
    request: DrainRequest, settings: Settings, now: datetime, current: Progress | None = None
) -> int:
    """The first poll's wait. Lifecycle drains add a per-instance phase (0 to one interval,
    from the instance id): 500 instances of one refresh then poll spread over the interval
    instead of all at once against ECS's token buckets. Spot keeps its short fixed wait.
    The next heartbeat falls due after the last one `current` recorded (without one: after the
    action's start; a drain that waited past it for its start slot recorded one since)."""
    if request.kind == SPOT:
        return next_wait(
            settings.spot_poll_interval_seconds,
            seconds_left=seconds_left(request, now),
            heartbeat_due_in=None,
        )
    interval = settings.poll_interval_seconds
    phase = zlib.crc32((request.instance_id or "").encode()) % interval
    since = current or {"lastHeartbeatAt": request.event_time, "heartbeats": 0}
    return _next_wait(request, since, settings, now, interval + phase)


# A start or poll slot less than this ahead has come: another round (Wait states count whole
# seconds) would cost a Wait, a Task and a Choice, maybe a heartbeat, for under a second.
SLOT_TOLERANCE_SECONDS = 1.0


def to_start_slot(progress: Progress, now: datetime) -> float:
    """Seconds until the drain's start slot (Resolve's startSlotAt); 0 or less: it has come."""
    return _to_slot(progress.get("startSlotAt"), now)


def to_poll_slot(progress: Progress, now: datetime) -> float:
    """Seconds until the poll slot reserved (poll_tasks.py's pollSlotAt); 0: none, or come."""
    return _to_slot(progress.get("pollSlotAt"), now)


def _to_slot(slot: str | None, now: datetime) -> float:
    return (parse_iso(slot) - now).total_seconds() if slot else 0.0


def paced(request: DrainRequest, progress: Progress, settings: Settings, now: datetime) -> Progress:
    """Before DRAINING, with the start slot still ahead and a heartbeat just recorded: wait for
    the slot again ("Wait for a drain start slot"), never past the next heartbeat or the
    ceiling."""
    seconds = to_start_slot(progress, now)
    waits = _next_wait(request, progress, settings, now, seconds)
    return {**progress, "verdict": PACE, "nextWaitSeconds": waits}


def poll_paced(
    request: DrainRequest, progress: Progress, settings: Settings, now: datetime
) -> Progress:
    """Poll mode, the poll's slot (pollSlotAt) still ahead: no ECS call this time. The
    heartbeat, should it fall due, is recorded first ("Record heartbeat"); then the drain waits
    for the slot ("Wait before polling"), never past the next heartbeat or the ceiling. The slot
    is kept, so the poll after the wait goes at once without reserving another."""
    due = request.kind == LIFECYCLE and _heartbeat_due(request, progress, settings, now)
    waiting: Progress = {**progress, "verdict": HEARTBEAT if due else WAIT}
    ahead = to_poll_slot(progress, now)
    waiting["nextWaitSeconds"] = _next_wait(request, waiting, settings, now, ahead)
    return waiting


def _next_wait(
    request: DrainRequest,
    progress: Progress | dict[str, Any],
    settings: Settings,
    now: datetime,
    seconds: float,
) -> int:
    """Wait `seconds`, but never past the ceiling, and (lifecycle) never past the moment the
    next heartbeat falls due: the poll after the wait records it, whatever throttling or
    back-off asked for. A heartbeat verdict counts from now (it is recorded before the wait)."""
    due_in = None
    if request.kind == LIFECYCLE:
        if progress.get("verdict") == HEARTBEAT:  # recorded before the wait: a full interval
            due_in = float(settings.heartbeat_interval_seconds)
        else:
            due_in = heartbeat_gap(request, progress, settings) - _since_heartbeat(progress, now)
    return next_wait(seconds, seconds_left=seconds_left(request, now), heartbeat_due_in=due_in)


def decide(
    request: DrainRequest,
    progress: Progress,
    tasks: TaskSnapshot | None,
    settings: Settings,
    now: datetime,
) -> Progress:
    """Next progress record after one poll; `tasks` is None when the instance is gone."""
    progress = {**progress, "polls": progress["polls"] + 1}
    elapsed = (now - parse_iso(progress["startedAt"])).total_seconds()
    interval = _poll_interval(request, progress, settings, elapsed)
    progress.update(_verdict(request, progress, tasks, settings, now, elapsed))
    progress["pollIntervalSeconds"] = interval
    # An awaited wait is ended early by the events: its timeout is only the fallback poll.
    seconds = settings.fallback_poll_seconds if progress["verdict"] == AWAIT else interval
    progress["nextWaitSeconds"] = _next_wait(request, progress, settings, now, seconds)
    return progress


def _verdict(
    request: DrainRequest,
    progress: Progress,
    tasks: TaskSnapshot | None,
    settings: Settings,
    now: datetime,
    elapsed: float,
) -> dict[str, Any]:
    if tasks is None:
        return {**ended(request, GONE), "tasks": None, "aliveTasks": [], "awaitedTasks": []}
    # ECS stops daemon tasks last (after the others): an awaited wait waits for the others.
    awaited = sorted([*tasks.service, *tasks.standalone, *tasks.stopping])
    update: dict[str, Any] = {
        "tasks": tasks.counts(),
        "aliveTasks": tasks.arns(),
        "awaitedTasks": awaited,
    }
    others = len(tasks.service) + len(tasks.standalone) + len(tasks.stopping)
    if others == 0 and tasks.daemon:
        # ECS stops daemon tasks last; give them a grace period to go by themselves.
        drained_at = progress.get("workloadDrainedAt") or iso(now)
        update["workloadDrainedAt"] = drained_at
        if (now - parse_iso(drained_at)).total_seconds() >= settings.daemon_task_grace_seconds:
            return {**update, **ended(request, DRAINED), "tasksCutShort": len(tasks.daemon)}
    left = seconds_left(request, now)
    if tasks.alive == 0 or request.dry_run:
        # Dry run: one real snapshot shows what would be drained; nothing moved, so no waiting.
        return {**update, **ended(request, DRAINED)}
    if left is not None and left <= 0:
        return {**update, **ended(request, OUT_OF_TIME), "tasksCutShort": tasks.alive}
    if request.kind == LIFECYCLE and _heartbeat_due(request, progress, settings, now):
        return {**update, "verdict": HEARTBEAT}
    if tasks.standalone and _standalone_stop_due(request, settings, elapsed):
        return {**update, "verdict": STOP_STANDALONE}
    return {**update, "verdict": AWAIT if _awaits(request, tasks, settings) else WAIT}


def _awaits(request: DrainRequest, tasks: TaskSnapshot, settings: Settings) -> bool:
    """Whether events end this wait. Not for Spot, and not in a grace period, which a timer
    measures: daemon tasks left alone (ECS stops none of them before the others are gone), or
    standalone tasks the policy stops once their grace is over."""
    if settings.drain_end_detection != EVENTS or request.kind not in AWAITING_KINDS:
        return False
    in_daemon_grace = not (tasks.service or tasks.standalone or tasks.stopping)
    standalone_grace = bool(tasks.standalone) and settings.standalone_task_policy == "stop"
    return not (in_daemon_grace or standalone_grace)


def after_throttling(
    request: DrainRequest,
    progress: Progress,
    settings: Settings,
    now: datetime,
    jitter: float,
) -> Progress:
    """ECS throttled the poll: no snapshot this time, so "not yet" rather than an error.

    The loop already runs until the ceiling; failing the step instead would, once the Task's
    Retry gave up, send a healthy drain down the rescue path (seen in a 500-instance refresh).
    The next wait is stretched by `jitter` (0–1) of an interval to spread the retries; the
    ceiling and heartbeats still apply.
    """
    progress = {**progress, "throttledPolls": progress["throttledPolls"] + 1}
    elapsed = (now - parse_iso(progress["startedAt"])).total_seconds()
    left = seconds_left(request, now)
    interval = _poll_interval(request, progress, settings, elapsed)
    if left is not None and left <= 0:
        alive = (progress.get("tasks") or {}).get("alive", 0)
        progress.update(ended(request, OUT_OF_TIME), tasksCutShort=alive)
    elif request.kind == LIFECYCLE and _heartbeat_due(request, progress, settings, now):
        progress["verdict"] = HEARTBEAT
    else:
        progress["verdict"] = WAIT
    progress["pollIntervalSeconds"] = interval
    stretched = interval + int(jitter * interval)
    progress["nextWaitSeconds"] = _next_wait(request, progress, settings, now, stretched)
    return progress


def _poll_interval(
    request: DrainRequest, progress: Progress, settings: Settings, elapsed: float
) -> int:
    """Spot polls at its short fixed interval; other drains follow the back-off schedule."""
    if request.kind == SPOT:
        return settings.spot_poll_interval_seconds
    # Executions started before pollIntervalSeconds existed carry only their last wait.
    previous = progress.get("pollIntervalSeconds", progress.get("nextWaitSeconds"))
    return schedule_of(settings).next_interval(elapsed, previous)


def _since_heartbeat(progress: Progress | dict[str, Any], now: datetime) -> float:
    return (now - parse_iso(progress["lastHeartbeatAt"])).total_seconds()


def heartbeat_gap(
    request: DrainRequest, progress: Progress | dict[str, Any], settings: Settings
) -> float:
    """Seconds from the last heartbeat (or the action's start) to the next one due.

    The first comes early by a per-instance phase of up to half the interval (from the instance
    id): every drain of a mass refresh has the same event time, so without it their first
    heartbeats, and the polls that record them, would all fall due in the same second and meet
    ECS's token buckets at once (a refresh of 5,000 instances did: 774 DescribeTasks a second).
    Later heartbeats follow an interval after the one before, so they keep the spread. Early is
    always safe: each heartbeat restarts the hook's timeout."""
    interval = settings.heartbeat_interval_seconds
    if progress.get("heartbeats"):
        return float(interval)
    phases = first_heartbeat_phases(interval)
    phase = zlib.crc32(f"heartbeat {request.instance_id or ''}".encode()) % phases
    return float(interval - phase)


def _heartbeat_due(
    request: DrainRequest, progress: Progress, settings: Settings, now: datetime
) -> bool:
    return _since_heartbeat(progress, now) >= heartbeat_gap(request, progress, settings)


def _standalone_stop_due(request: DrainRequest, settings: Settings, elapsed: float) -> bool:
    if settings.standalone_task_policy != "stop":
        return False
    # Spot: two minutes leave no room for a grace period; SIGTERM now beats SIGKILL later.
    return request.kind == SPOT or elapsed >= settings.standalone_task_grace_seconds
