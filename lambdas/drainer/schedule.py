"""When to poll, when to send heartbeats, where the ceiling is.

Pure functions shared by the Lambdas (progress.py, stop_tasks.py) and by configuration
validation (stacks/config.py), so the checks at synth (history size, heartbeat gap) measure the
very schedule the Lambdas run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_LIFECYCLE_SECONDS = 172_800  # Auto Scaling: a lifecycle action can last at most 48 hours
GLOBAL_TIMEOUT_HEARTBEATS = 100  # … or 100 × HeartbeatTimeout, whichever is smaller
# Time kept in hand before Auto Scaling's own global timeout, to stop stragglers and complete.
CEILING_MARGIN_SECONDS = 300
SPOT_FINISH_MARGIN_SECONDS = 5  # the Spot branch ends this long before the interruption

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

# History events per step, as Step Functions writes them (Task 5, Wait 2, Choice 2).
EVENTS_PER_POLL = 2 + 5 + 2  # Wait, poll Task, Choice
# Execution started, Resolve, its Route Choice, the start slot's Wait, Start draining, the Choice
# after it, Complete, Report (the last state), execution succeeded.
EVENTS_FIXED = 1 + 5 + 2 + 2 + 5 + 2 + 5 + 5 + 1
# events mode: the callback Task ("Await task stops": entered, scheduled, started, submitted,
# succeeded or timed out, exited), the poll Task, the Choice
EVENTS_PER_AWAIT = 6 + 5 + 2
EVENTS_CEILING = 5 + 2  # "Ceiling: apply straggler policy" Task, "Ceiling: let stragglers stop"
TRANSITIONS_PER_POLL = 3
# Resolve (which claims the drain), Route, the start slot's Wait, Start draining, Check drain
# progress, Complete, Report.
TRANSITIONS_FIXED = 7
TRANSITIONS_CEILING = 2
HISTORY_EVENT_QUOTA = 25_000  # Step Functions hard quota per execution
HISTORY_EVENT_BUDGET = 20_000  # what configuration may use, leaving room for retries


def global_timeout_seconds(heartbeat_timeout_seconds: int) -> int:
    return min(MAX_LIFECYCLE_SECONDS, GLOBAL_TIMEOUT_HEARTBEATS * heartbeat_timeout_seconds)


def heartbeat_interval_seconds(heartbeat_timeout_seconds: int) -> int:
    """How often a heartbeat falls due: a third of the hook's heartbeat timeout."""
    return heartbeat_timeout_seconds // HEARTBEATS_PER_TIMEOUT


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

    def walk(self, seconds: int, heartbeat_interval: int) -> tuple[int, int]:
        """Polls and heartbeats of a lifecycle drain that reaches its ceiling after `seconds`,
        each wait chosen as progress.py chooses it (the first without its per-instance phase:
        the most polls)."""
        now = last_heartbeat = 0.0
        polls = heartbeats = 0
        interval: int | None = None
        wait = next_wait(
            self.poll_interval_seconds, seconds_left=seconds, heartbeat_due_in=heartbeat_interval
        )
        while True:
            now += wait
            polls += 1
            if now >= seconds:  # the ceiling verdict
                return polls, heartbeats
            interval = self.next_interval(now, interval)
            if now - last_heartbeat >= heartbeat_interval:
                heartbeats += 1
                last_heartbeat = now
            wait = next_wait(
                interval,
                seconds_left=seconds - now,
                heartbeat_due_in=last_heartbeat + heartbeat_interval - now,
            )


def heartbeat_gaps(
    schedule: PollSchedule,
    heartbeat_timeout_seconds: int,
    ceiling_grace_seconds: int,
    rescue_grace_seconds: int,
    awaited_wait_seconds: int = 0,
) -> dict[str, float]:
    """The longest gap between heartbeats (or from the last one to the completion) that each
    part of a lifecycle drain allows, computed with the functions the Lambdas run.

    "poll loop": a poll, normal or throttled with the longest jitter, at any age of the last
    heartbeat; "ceiling": a ceiling reached just as a heartbeat fell due, then the configured
    wait for stragglers; "rescue": a failure then, then the rescue's grace. Lambda time and
    Retry back-off come on top (HEARTBEAT_MARGIN_SECONDS). `awaited_wait_seconds`: the longest
    wait events may end (events mode's fallback poll), capped like every other wait.
    """
    interval = heartbeat_interval_seconds(heartbeat_timeout_seconds)
    # throttled: stretched by jitter < 1
    longest_wait = max(2 * schedule.max_poll_interval_seconds, awaited_wait_seconds)
    loop = max(
        age + next_wait(longest_wait, seconds_left=None, heartbeat_due_in=interval - age)
        for whole in range(interval)
        for age in (whole, whole + 0.5, whole + 0.999)
    )
    rescue = rescue_wait_seconds(rescue_grace_seconds, heartbeat_timeout_seconds)
    return {"poll loop": loop, "ceiling": loop + ceiling_grace_seconds, "rescue": loop + rescue}


@dataclass(frozen=True)
class DrainCost:
    polls: int
    heartbeats: int
    history_events: int
    state_transitions: int


def awaited_drain_cost(
    fallback_poll_seconds: int, drain_seconds: int, heartbeat_interval: int
) -> DrainCost:
    """events mode: the history of a lifecycle drain no event ever wakes, that lasts
    `drain_seconds` to its ceiling: a poll every fallback_poll_seconds (or sooner, at each
    heartbeat, which that poll records), after a first timer wait and poll (the first
    snapshot, which the awaited waits need)."""
    fixed = PollSchedule(fallback_poll_seconds, fallback_poll_seconds, drain_seconds, 1.0)
    polls, heartbeats = fixed.walk(drain_seconds, heartbeat_interval)
    return DrainCost(
        polls=polls + 1,
        heartbeats=heartbeats,
        history_events=EVENTS_FIXED + EVENTS_CEILING + EVENTS_PER_POLL + polls * EVENTS_PER_AWAIT,
        state_transitions=TRANSITIONS_FIXED
        + TRANSITIONS_CEILING
        + (1 + polls) * TRANSITIONS_PER_POLL,
    )


def drain_cost(
    schedule: PollSchedule, drain_seconds: int, heartbeat_interval: int, to_ceiling: bool = False
) -> DrainCost:
    """History events and transitions of a lifecycle drain that lasts `drain_seconds` (and ends
    through the ceiling branch if `to_ceiling`). Each heartbeat falls due at a poll, which
    records it (lambdas/poll_tasks.py): it adds no state."""
    polls, heartbeats = schedule.walk(drain_seconds, heartbeat_interval)
    return DrainCost(
        polls=polls,
        heartbeats=heartbeats,
        history_events=EVENTS_FIXED + EVENTS_CEILING * to_ceiling + polls * EVENTS_PER_POLL,
        state_transitions=TRANSITIONS_FIXED
        + TRANSITIONS_CEILING * to_ceiling
        + polls * TRANSITIONS_PER_POLL,
    )
