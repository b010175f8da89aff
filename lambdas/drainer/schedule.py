"""When to poll, when to send heartbeats, where the ceiling is.

Pure functions shared by the Lambdas (progress.py, stop_tasks.py) and by configuration
validation (stacks/config.py, through drainer/history.py), so the checks at synth (history
size, heartbeat gap) measure the very schedule the Lambdas run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_LIFECYCLE_SECONDS = 172_800  # Auto Scaling: a lifecycle action can last at most 48 hours
GLOBAL_TIMEOUT_HEARTBEATS = 100  # … or 100 × HeartbeatTimeout, whichever is smaller
# Time kept in hand before Auto Scaling's own global timeout, to stop stragglers and complete.
CEILING_MARGIN_SECONDS = 300
SPOT_FINISH_MARGIN_SECONDS = 5  # the Spot branch ends this long before the interruption
# Claims and watches outlive the drain's deadline by this much: late duplicates are still
# recognised for a day (drainer/claims.py, drainer/watch.py).
KEEP_AFTER_DEADLINE_SECONDS = 86_400

# Heartbeats. The schedule records one every third of the hook's HeartbeatTimeout, and no wait
# ever ends after the next one falls due. What the schedule cannot see is the time the state
# machine spends outside its Wait states: between the instant a heartbeat falls due and its
# RecordLifecycleActionHeartbeat call run up to four Tasks (the poll that chose the wait, "Stop
# standalone tasks", the next poll, "Record heartbeat"; at the ceiling: the poll, "Ceiling:
# apply straggler policy", "Complete lifecycle action"). The margin lets each of them run one
# attempt to its TimeoutSeconds (90 s) and retry once after its longest back-off
# (MaxDelaySeconds, 60 s): 4 × (90 + 60). tests/unit/test_heartbeat_schedule.py recomputes it from
# statemachine/drainer.asl.json, so changing a Task's timeout or Retry (statemachine/build.py)
# fails until this follows. Every gap the schedule allows must stay below HeartbeatTimeout minus
# this margin.
HEARTBEAT_MARGIN_SECONDS = 600
HEARTBEATS_PER_TIMEOUT = 3


def global_timeout_seconds(heartbeat_timeout_seconds: int) -> int:
    return min(MAX_LIFECYCLE_SECONDS, GLOBAL_TIMEOUT_HEARTBEATS * heartbeat_timeout_seconds)


def heartbeat_interval_seconds(heartbeat_timeout_seconds: int) -> int:
    """How often a heartbeat falls due: a third of the hook's heartbeat timeout."""
    return heartbeat_timeout_seconds // HEARTBEATS_PER_TIMEOUT


def first_heartbeat_phases(heartbeat_interval: int) -> int:
    """How many per-instance phases (whole seconds) the first heartbeat may come early by: up
    to half an interval (drainer/progress.py heartbeat_gap)."""
    return max(1, heartbeat_interval // 2)


def heartbeat_budget_seconds(heartbeat_timeout_seconds: int) -> int:
    """Every gap between heartbeats the schedule allows must stay below this."""
    return heartbeat_timeout_seconds - HEARTBEAT_MARGIN_SECONDS


def next_wait(seconds: float, *, seconds_left: float | None, heartbeat_due_in: float | None) -> int:
    """A Wait state's seconds: `seconds`, but never past the ceiling (`seconds_left`) nor past
    the moment the next heartbeat falls due, so the poll after the wait records it.

    Rounded up (the poll then finds the heartbeat due, the ceiling reached) and at least a
    second, so a fraction of a second left cannot spin the loop with zero-second waits.
    """
    limits = [seconds] + [left for left in (seconds_left, heartbeat_due_in) if left is not None]
    return max(1, math.ceil(min(limits)))


def grace_wait(wanted: int, *, since_heartbeat: float, heartbeat_timeout_seconds: int) -> int:
    """A grace wait that no heartbeat precedes (the ceiling's wait for stragglers): at most
    what is left of the heartbeat budget, so the action cannot time out under it."""
    left = heartbeat_budget_seconds(heartbeat_timeout_seconds) - since_heartbeat
    return max(0, min(wanted, math.ceil(left) - 1))


def rescue_wait_seconds(rescue_grace_seconds: int, heartbeat_timeout_seconds: int) -> int:
    """The in-machine rescue's grace ("Rescue: let ECS move the tasks"). No heartbeat precedes
    it, and the failed step may have come when the last one was as old as the poll loop lets it
    get: a heartbeat interval and the second next_wait rounds up."""
    return grace_wait(
        rescue_grace_seconds,
        since_heartbeat=heartbeat_interval_seconds(heartbeat_timeout_seconds) + 1,
        heartbeat_timeout_seconds=heartbeat_timeout_seconds,
    )


def ceiling_seconds(max_drain_seconds: int, heartbeat_timeout_seconds: int) -> int:
    """Seconds after the action started when the ceiling branch takes over."""
    hard_limit = global_timeout_seconds(heartbeat_timeout_seconds) - CEILING_MARGIN_SECONDS
    return min(max_drain_seconds, hard_limit)


@dataclass(frozen=True)
class PollSchedule:
    """The poll loop's intervals (a docstring: dataclass() would render the signature into
    one on every cold start)."""

    poll_interval_seconds: int
    max_poll_interval_seconds: int
    backoff_after_seconds: int
    backoff_rate: float

    def next_interval(self, elapsed_seconds: float, previous_interval: int | None) -> int:
        """Fixed interval while drains usually finish, then geometric back-off to the maximum."""
        if elapsed_seconds < self.backoff_after_seconds or previous_interval is None:
            return self.poll_interval_seconds
        grown = math.ceil(previous_interval * self.backoff_rate)
        return max(self.poll_interval_seconds, min(self.max_poll_interval_seconds, grown))
