"""When to poll, when to send heartbeats, where the ceiling is.

Pure functions shared by the poll Lambda and by configuration validation (stacks/config.py), so
the history-size check at synth measures the very schedule the Lambdas run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_LIFECYCLE_SECONDS = 172_800  # Auto Scaling: a lifecycle action can last at most 48 hours
GLOBAL_TIMEOUT_HEARTBEATS = 100  # … or 100 × HeartbeatTimeout, whichever is smaller
# Time kept in hand before Auto Scaling's own global timeout, to stop stragglers and complete.
CEILING_MARGIN_SECONDS = 300
SPOT_FINISH_MARGIN_SECONDS = 5  # the Spot branch ends this long before the interruption

# History events per step, as Step Functions writes them (Task 5, Wait 2, Choice 2).
EVENTS_PER_POLL = 2 + 5 + 2  # Wait, poll Task, Choice
EVENTS_PER_HEARTBEAT = 5 + 2  # heartbeat Task, Choice
# Execution started/succeeded, Resolve, its Route Choice, Start draining, Complete, Report, Succeed.
EVENTS_FIXED = 1 + 5 + 2 + 5 + 5 + 5 + 2 + 1
EVENTS_CEILING = 5 + 2  # "Ceiling: apply straggler policy" Task, "Ceiling: let stragglers stop"
TRANSITIONS_PER_POLL = 3
TRANSITIONS_PER_HEARTBEAT = 2
# Resolve (which claims the drain), Route, Start draining, Complete, Report, Drain finished.
TRANSITIONS_FIXED = 6
TRANSITIONS_CEILING = 2
HISTORY_EVENT_QUOTA = 25_000  # Step Functions hard quota per execution
HISTORY_EVENT_BUDGET = 20_000  # what configuration may use, leaving room for retries


def global_timeout_seconds(heartbeat_timeout_seconds: int) -> int:
    return min(MAX_LIFECYCLE_SECONDS, GLOBAL_TIMEOUT_HEARTBEATS * heartbeat_timeout_seconds)


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

    def polls_until(self, seconds: int) -> int:
        """How many polls a drain lasting `seconds` makes (the loop the Lambdas run)."""
        elapsed, polls, interval = 0.0, 0, None
        while elapsed < seconds:
            interval = self.next_interval(elapsed, interval)
            elapsed += interval
            polls += 1
        return polls


@dataclass(frozen=True)
class DrainCost:
    polls: int
    heartbeats: int
    history_events: int
    state_transitions: int


def drain_cost(
    schedule: PollSchedule, drain_seconds: int, heartbeat_interval: int, to_ceiling: bool = False
) -> DrainCost:
    """History events and transitions of a lifecycle drain that lasts `drain_seconds` (and ends
    through the ceiling branch if `to_ceiling`)."""
    polls = schedule.polls_until(drain_seconds)
    heartbeats = drain_seconds // heartbeat_interval
    return DrainCost(
        polls=polls,
        heartbeats=heartbeats,
        history_events=EVENTS_FIXED
        + EVENTS_CEILING * to_ceiling
        + polls * EVENTS_PER_POLL
        + heartbeats * EVENTS_PER_HEARTBEAT,
        state_transitions=TRANSITIONS_FIXED
        + TRANSITIONS_CEILING * to_ceiling
        + polls * TRANSITIONS_PER_POLL
        + heartbeats * TRANSITIONS_PER_HEARTBEAT,
    )
