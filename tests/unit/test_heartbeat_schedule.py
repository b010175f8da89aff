"""Heartbeats never come late.

The real progress functions (poll verdicts, throttled polls, the heartbeat and stop-tasks
Lambdas' own functions) on a simulated clock, over configurations validation accepts and over
throttling patterns, jitter values, ceilings and failures: every gap between two heartbeats (or
from the action's start to the first, or from the last to the completion) stays below the hook's
heartbeat timeout minus the margin kept for Lambda time and Retry back-off, and no wait passes
the ceiling. The margin itself is tied to the Tasks' TimeoutSeconds and Retry in the ASL file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
import record_heartbeat
import stop_tasks
from hypothesis import HealthCheck, event, example, given, reject
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from drainer import progress
from drainer.clock import iso
from drainer.request import LIFECYCLE, DrainRequest
from drainer.schedule import (
    CEILING_MARGIN_SECONDS,
    HEARTBEAT_MARGIN_SECONDS,
    ceiling_seconds,
    global_timeout_seconds,
    grace_wait,
)
from drainer.tasks import TaskSnapshot
from stacks.config import ConfigError, DrainerConfig, validate
from stacks.definition import DEFINITION_FILE, FUNCTIONS
from tests.conftest import install_settings

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
# Longest simulated drain: long enough for back-off and many heartbeats, short enough to run
# dozens of examples in seconds.
SIMULATED_DRAIN_LIMIT = 6 * 3600


@dataclass
class Poll:
    """What one poll meets: ECS throttled it (with the jitter the poll Lambda drew), or not."""

    throttled: bool
    jitter: float


@dataclass
class Drain:
    """One simulated lifecycle drain: the instants that keep the action alive."""

    timeout: int
    deadline: datetime
    alive_at: list[datetime] = field(default_factory=lambda: [START])
    ending: str = ""

    def keep_alive(self, now: datetime, what: str) -> None:
        gap = (now - self.alive_at[-1]).total_seconds()
        budget = self.timeout - HEARTBEAT_MARGIN_SECONDS
        assert gap < budget, f"{what}: {gap:.0f} s since the last heartbeat (budget {budget} s)"
        self.alive_at.append(now)


def request_until(deadline: datetime) -> DrainRequest:
    return DrainRequest(
        kind=LIFECYCLE,
        instance_id="i-0aaaaaaaaaaaaaaa1",
        reason="scale-in",
        event_id="e",
        event_time=iso(START),
        source="aws.autoscaling",
        detail_type="EC2 Instance-terminate Lifecycle Action",
        deadline=iso(deadline),
        auto_scaling_group_name="demo-asg",
        lifecycle_hook_name="ecs-drainer",
        lifecycle_action_token="t",
    )


def simulate(config: DrainerConfig, polls: list[Poll], fail_at: int | None) -> Drain:
    """Run the lifecycle branch's loop as the state machine does ("Wait before polling" →
    "Poll tasks" → "Check drain progress" → heartbeat / stop standalone / ceiling), Lambdas
    taking no time; a step failing after poll number `fail_at` takes the rescue path."""
    settings = install_settings(config)
    deadline = START + timedelta(
        seconds=ceiling_seconds(config.max_drain_seconds, config.heartbeat_timeout_seconds)
    )
    drain = Drain(config.heartbeat_timeout_seconds, deadline)
    request = request_until(deadline)
    tasks = TaskSnapshot(service=["web"], standalone=["batch"])  # never drains by itself
    state: dict[str, Any] = {
        "request": request.to_state(),
        "target": {"cluster": "demo", "containerInstanceArn": "ci"},
        "progress": progress.initial(request, None, settings, START),
    }
    now = START
    for number in range(1_000_000):
        wait = state["progress"]["nextWaitSeconds"]
        assert now + timedelta(seconds=wait) < deadline + timedelta(seconds=1), "past the ceiling"
        now += timedelta(seconds=wait)
        poll = polls[number % len(polls)]
        if poll.throttled:
            state["progress"] = progress.after_throttling(
                request, state["progress"], settings, now, poll.jitter
            )
        else:
            state["progress"] = progress.decide(request, state["progress"], tasks, settings, now)
        if number == fail_at:  # "Rescue: let ECS move the tasks", then complete
            drain.ending = "rescue"
            grace = timedelta(seconds=state["progress"]["rescueWaitSeconds"])
            drain.keep_alive(now + grace, "completion after the rescue's grace")
            return drain
        verdict = state["progress"]["verdict"]
        target = state["target"]
        if verdict == progress.HEARTBEAT:
            state["progress"] = record_heartbeat.heartbeat(request, state["progress"], now)
            drain.keep_alive(now, "heartbeat")
        elif verdict == progress.STOP_STANDALONE:
            state["progress"] = stop_tasks.stop(
                request, target, state["progress"], stop_tasks.STANDALONE, settings, now
            )
        elif verdict == progress.CEILING:
            state["progress"] = stop_tasks.stop(
                request, target, state["progress"], stop_tasks.STRAGGLERS, settings, now
            )
            completed = now + timedelta(seconds=state["progress"]["nextWaitSeconds"])
            drain.keep_alive(completed, "completion after the stragglers' wait")
            drain.ending = "ceiling"
            assert completed < deadline + timedelta(seconds=CEILING_MARGIN_SECONDS)
            return drain
        else:
            # An awaited wait lasts at most its timeout, which is capped as a timer wait's is
            # (an event only ends it sooner).
            assert verdict in (progress.WAIT, progress.AWAIT)
    raise AssertionError("the drain never reached its ceiling")


@st.composite
def configurations(draw: st.DrawFn) -> DrainerConfig:
    """Configurations validation accepts, from the whole range of each heartbeat setting."""
    timeout = draw(st.integers(30, 7200))
    max_poll = draw(st.integers(5, min(900, max(5, timeout // 3))))
    longest = min(global_timeout_seconds(timeout), SIMULATED_DRAIN_LIMIT)
    values = {
        "cluster_names": ["demo"],
        "auto_scaling_group_names": ["demo-asg"],
        "heartbeat_timeout_seconds": timeout,
        "max_poll_interval_seconds": max_poll,
        "poll_interval_seconds": draw(st.integers(5, min(300, max_poll))),
        "backoff_after_seconds": draw(st.integers(0, longest)),
        "backoff_rate": draw(st.floats(1.0, 3.0)),
        "max_drain_seconds": draw(st.integers(60, max(60, longest)) | st.just(longest)),
        "standalone_task_policy": draw(st.sampled_from(["wait", "stop"])),
        "standalone_task_grace_seconds": draw(st.integers(0, 3600)),
        "straggler_stop_wait_seconds": draw(st.integers(0, 120)),
        "rescue_grace_seconds": draw(st.integers(0, 300)),
        "drain_end_detection": draw(st.sampled_from(["events", "poll"])),
        "fallback_poll_seconds": draw(st.integers(60, 3600)),
    }
    try:
        return validate(values)
    except ConfigError:
        reject()


def production(**changes: Any) -> DrainerConfig:
    """drainer.toml's heartbeat and poll settings with `changes`."""
    values = {"cluster_names": ["demo"], "auto_scaling_group_names": ["demo-asg"], **changes}
    return validate(values)


POLLS = st.lists(
    st.builds(Poll, st.booleans(), st.floats(0.0, 1.0, exclude_max=True)), min_size=1, max_size=40
)


@hypothesis_settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much]
)
@given(config=configurations(), polls=POLLS, fail_at=st.none() | st.integers(0, 300))
# The configuration the review found: timeout 1800 s, waits of up to 600 s, polls throttled
# with the longest jitter just before a heartbeat falls due (1,600 s between two before the fix).
@example(
    config=production(
        heartbeat_timeout_seconds=1800, max_poll_interval_seconds=600, max_drain_seconds=14400
    ),
    polls=[Poll(throttled=False, jitter=0.0)] + [Poll(throttled=True, jitter=0.999)] * 2,
    fail_at=None,
)
# A ceiling reached just as a heartbeat falls due, then the longest wait for stragglers.
@example(
    config=production(
        heartbeat_timeout_seconds=1800,
        poll_interval_seconds=300,
        max_poll_interval_seconds=600,
        max_drain_seconds=1200,
        straggler_stop_wait_seconds=120,
    ),
    polls=[Poll(throttled=False, jitter=0.0)],
    fail_at=None,
)
def test_every_heartbeat_comes_in_time(
    config: DrainerConfig, polls: list[Poll], fail_at: int | None
) -> None:
    with (
        mock.patch.object(record_heartbeat.lifecycle_action, "record_heartbeat"),
        mock.patch.object(
            stop_tasks,
            "snapshot",
            return_value=(TaskSnapshot(service=["web"], standalone=["batch"]), set(), set()),
        ),
        mock.patch.object(
            stop_tasks, "stop_tasks", side_effect=lambda cluster, victims, *_: victims
        ),
    ):
        drain = simulate(config, polls, fail_at)
    event(f"{drain.ending} after {min(len(drain.alive_at) - 2, 5)}+ heartbeats")


def test_a_throttled_poll_never_carries_the_wait_past_a_heartbeat():
    settings = install_settings(
        production(heartbeat_timeout_seconds=1800, max_poll_interval_seconds=600)
    )
    request = request_until(START + timedelta(hours=47))
    state = {
        **progress.initial(request, None, settings, START),
        "pollIntervalSeconds": 600,
        "heartbeats": 11,  # two hours in: the first heartbeat's phase is long past
    }
    # 599 s after the last heartbeat: no heartbeat due yet, but one second from it.
    now = START + timedelta(hours=2, seconds=-1)
    state["startedAt"] = iso(START)
    state["lastHeartbeatAt"] = iso(now - timedelta(seconds=599))
    throttled = progress.after_throttling(request, state, settings, now, 0.999)
    assert throttled["verdict"] == progress.WAIT
    assert throttled["nextWaitSeconds"] == 1  # not 1,199: the poll after it records the heartbeat
    normal = progress.decide(request, state, TaskSnapshot(service=["web"]), settings, now)
    assert normal["nextWaitSeconds"] == 1


def test_a_wait_cut_short_by_a_heartbeat_keeps_the_back_off(config):
    settings = install_settings(config)
    request = request_until(START + timedelta(hours=47))
    state = {
        **progress.initial(request, None, settings, START),
        "pollIntervalSeconds": settings.max_poll_interval_seconds,
        "lastHeartbeatAt": iso(START + timedelta(hours=2)),
        "heartbeats": 11,
    }
    now = START + timedelta(hours=2, seconds=settings.heartbeat_interval_seconds - 10)
    cut = progress.decide(request, state, TaskSnapshot(service=["web"]), settings, now)
    assert cut["nextWaitSeconds"] == 10
    assert cut["pollIntervalSeconds"] == settings.max_poll_interval_seconds
    after = progress.decide(
        request, cut, TaskSnapshot(service=["web"]), settings, now + timedelta(seconds=10)
    )
    assert after["verdict"] == progress.HEARTBEAT
    assert after["nextWaitSeconds"] == settings.max_poll_interval_seconds


def test_graces_without_a_heartbeat_fit_the_budget():
    # The stragglers' wait at the ceiling, 1,190 s after the last heartbeat of a 1800 s hook:
    # only what is left of the 1,200 s budget.
    assert grace_wait(120, since_heartbeat=1190, heartbeat_timeout_seconds=1800) == 9
    assert grace_wait(120, since_heartbeat=601, heartbeat_timeout_seconds=1800) == 120
    assert grace_wait(120, since_heartbeat=1300, heartbeat_timeout_seconds=1800) == 0
    settings = install_settings(production(heartbeat_timeout_seconds=1800))
    assert settings.rescue_wait_seconds == settings.rescue_grace_seconds  # 180 s fit
    tight = install_settings(
        production(
            heartbeat_timeout_seconds=1000,
            max_poll_interval_seconds=300,
            max_drain_seconds=7200,
            rescue_grace_seconds=300,
        )
    )
    # 1000 - 600 margin - (333 + 1) s the last heartbeat may be old when a step fails.
    assert tight.rescue_wait_seconds == 65


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        (
            {"heartbeat_timeout_seconds": 300, "max_poll_interval_seconds": 100},
            ["heartbeat_timeout_seconds=300 is too short", "600 s kept", "≥ 946"],
        ),
        (
            {"heartbeat_timeout_seconds": 1000, "straggler_stop_wait_seconds": 120},
            ["straggler_stop_wait_seconds=120 is too long", "≤ 66", "≥ 1081"],
        ),
    ],
)
def test_validation_refuses_a_schedule_whose_heartbeats_could_come_late(changes, fragments):
    with pytest.raises(ConfigError) as refused:
        production(max_drain_seconds=7200, **changes)
    for fragment in fragments:
        assert fragment in str(refused.value)


# The Tasks that can run between a heartbeat falling due and its recording (or, at the
# ceiling, the completion that replaces it). drainer/schedule.py explains the path.
HEARTBEAT_PATH = ("Poll tasks", "Stop standalone tasks", "Poll tasks", "Record heartbeat")
CEILING_PATH = ("Poll tasks", "Ceiling: apply straggler policy", "Complete lifecycle action")


def one_slow_attempt_and_retry(task: dict[str, Any]) -> int:
    """An attempt that runs to the Task's timeout, then one retry after its longest back-off."""
    return task["TimeoutSeconds"] + max(retry["MaxDelaySeconds"] for retry in task["Retry"])


def test_the_margin_covers_the_tasks_on_the_way_to_each_heartbeat():
    states = json.loads(DEFINITION_FILE.read_text())["States"]
    needed = sum(one_slow_attempt_and_retry(states[name]) for name in HEARTBEAT_PATH)
    assert needed == HEARTBEAT_MARGIN_SECONDS
    assert sum(one_slow_attempt_and_retry(states[name]) for name in CEILING_PATH) <= needed
    # The loop has no other Task: polls, heartbeats and standalone stops lead back to the wait.
    assert states["Stop standalone tasks"]["Next"] == "Wait before polling"
    assert states["Record heartbeat"]["Next"] == "Check drain progress"
    assert states["Poll tasks"]["Next"] == "Check drain progress"
    assert states["Check drain progress"]["Default"] == "Wait before polling"
    assert states["Wait before polling"]["Next"] == "Poll tasks"
    # The awaited wait times out into the poll, as the timer wait ends in it. Each retry of it
    # (Lambda's transient errors) starts its timeout again, and a failed arming falls back to
    # the timer wait: the heartbeat comes later by the failed attempts (each at most the
    # function's timeout) and their back-offs, then a poll and the heartbeat: within the margin.
    awaited = states["Await task stops"]
    assert awaited["Next"] == "Poll tasks"
    assert [catch["Next"] for catch in awaited["Catch"]] == ["Poll tasks", "Wait before polling"]
    attempt = next(f for f in FUNCTIONS if f.name == "AwaitStops").timeout_seconds
    (retrier,) = awaited["Retry"]
    failed_arming = (1 + retrier["MaxAttempts"]) * attempt
    failed_arming += retrier["MaxAttempts"] * retrier["MaxDelaySeconds"]
    after_it = ("Poll tasks", "Record heartbeat")
    assert failed_arming + sum(one_slow_attempt_and_retry(states[n]) for n in after_it) <= needed


def test_the_first_heartbeat_comes_early_by_a_per_instance_phase(config):
    """A refresh's drains share one event time: their first heartbeats spread over the second
    half of the interval instead of falling due, with their polls, in the same second. Later
    ones follow a full interval after the one before."""
    settings = install_settings(config)
    interval = settings.heartbeat_interval_seconds
    gaps = set()
    for n in range(200):
        request = request_until(START + timedelta(hours=47))
        request.instance_id = f"i-{n:017x}"
        first = progress.initial(request, None, settings, START)
        gap = progress.heartbeat_gap(request, first, settings)
        assert interval / 2 < gap <= interval
        gaps.add(gap)
        assert progress.heartbeat_gap(request, {**first, "heartbeats": 1}, settings) == interval
        # Due exactly at its own gap, not before.
        alive = TaskSnapshot(service=["web"])
        early = START + timedelta(seconds=gap - 1)
        assert (
            progress.decide(request, first, alive, settings, early)["verdict"] != progress.HEARTBEAT
        )
        due = START + timedelta(seconds=gap)
        assert (
            progress.decide(request, first, alive, settings, due)["verdict"] == progress.HEARTBEAT
        )
    assert len(gaps) > 150  # spread, not one moment
