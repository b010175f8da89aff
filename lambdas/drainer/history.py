"""What a drain costs in history events and state transitions, and the longest gap between
heartbeats the schedule allows: configuration validation's model (stacks/config.py), also the
benchmark's. It walks the schedule with drainer/schedule.py's own functions, so the checks at
synth measure the very schedule the Lambdas run; no handler imports this module (each would
compile it on every cold start).
"""

from __future__ import annotations

from dataclasses import dataclass

from drainer.schedule import (
    PollSchedule,
    first_heartbeat_phases,
    heartbeat_interval_seconds,
    next_wait,
    rescue_wait_seconds,
)

# History events per step, as Step Functions writes them (Task 5, Wait 2, Choice 2).
EVENTS_PER_POLL = 2 + 5 + 2  # Wait, poll Task, Choice
# Execution started, Resolve, its Route Choice, the start slot's Wait, Start draining, the Choice
# after it, Complete, Report (the last state), execution succeeded.
EVENTS_FIXED = 1 + 5 + 2 + 2 + 5 + 2 + 5 + 5 + 1
# events mode: the callback Task ("Await task stops": entered, scheduled, started, submitted,
# succeeded or timed out, exited), the poll Task, the Choice
EVENTS_PER_AWAIT = 6 + 5 + 2
EVENTS_CEILING = 5 + 2  # "Ceiling: apply straggler policy" Task, "Ceiling: let stragglers stop"
EVENTS_PER_HEARTBEAT = 5 + 2  # "Record heartbeat" Task and the Choice after it
TRANSITIONS_PER_POLL = 3
TRANSITIONS_PER_HEARTBEAT = 2
# Resolve (which claims the drain), Route, the start slot's Wait, Start draining, Check drain
# progress, Complete, Report.
TRANSITIONS_FIXED = 7
TRANSITIONS_CEILING = 2
HISTORY_EVENT_QUOTA = 25_000  # Step Functions hard quota per execution
HISTORY_EVENT_BUDGET = 20_000  # what configuration may use, leaving room for retries


def walk(schedule: PollSchedule, seconds: int, heartbeat_interval: int) -> tuple[int, int]:
    """Polls and heartbeats of a lifecycle drain that reaches its ceiling after `seconds`,
    each wait chosen as progress.py chooses it (the first without its per-instance phase:
    the most polls; the first heartbeat as early as its phase can make it: the most
    heartbeats)."""
    now = 0.0
    # The earliest first heartbeat, as if the last one had been that much before the start.
    last_heartbeat = -float(first_heartbeat_phases(heartbeat_interval) - 1)
    polls = heartbeats = 0
    interval: int | None = None
    wait = next_wait(
        schedule.poll_interval_seconds,
        seconds_left=seconds,
        heartbeat_due_in=last_heartbeat + heartbeat_interval,
    )
    while True:
        now += wait
        polls += 1
        if now >= seconds:  # the ceiling verdict
            return polls, heartbeats
        interval = schedule.next_interval(now, interval)
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
    polls, heartbeats = walk(fixed, drain_seconds, heartbeat_interval)
    return DrainCost(
        polls=polls + 1,
        heartbeats=heartbeats,
        history_events=EVENTS_FIXED + EVENTS_CEILING + EVENTS_PER_POLL + polls * EVENTS_PER_AWAIT,
        state_transitions=TRANSITIONS_FIXED
        + TRANSITIONS_CEILING
        + (1 + polls) * TRANSITIONS_PER_POLL,
    )


def drain_cost(
    schedule: PollSchedule,
    drain_seconds: int,
    heartbeat_interval: int,
    to_ceiling: bool = False,
    paced: bool = False,
) -> DrainCost:
    """History events and transitions of a lifecycle drain that lasts `drain_seconds` (and ends
    through the ceiling branch if `to_ceiling`). Each heartbeat falls due at a poll, which
    records it (lambdas/poll_tasks.py): it adds no state.

    `paced` (poll mode): the worst case of poll slots, a refresh congested the whole drain
    long. Each poll may first find its slot ahead: one more Wait, poll and Choice, and a
    heartbeat falling due meanwhile goes through "Record heartbeat" (progress.poll_paced). A
    slot further off than a heartbeat would add rounds beyond these: that takes a backlog of
    a heartbeat interval's worth of slots (6,000 ECS calls at the shipped 10 per second and
    600 s)."""
    polls, heartbeats = walk(schedule, drain_seconds, heartbeat_interval)
    rounds = 2 * polls if paced else polls
    recorded = heartbeats if paced else 0  # by "Record heartbeat", not by the poll
    return DrainCost(
        polls=polls,
        heartbeats=heartbeats,
        history_events=EVENTS_FIXED
        + EVENTS_CEILING * to_ceiling
        + rounds * EVENTS_PER_POLL
        + recorded * EVENTS_PER_HEARTBEAT,
        state_transitions=TRANSITIONS_FIXED
        + TRANSITIONS_CEILING * to_ceiling
        + rounds * TRANSITIONS_PER_POLL
        + recorded * TRANSITIONS_PER_HEARTBEAT,
    )
