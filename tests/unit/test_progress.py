"""The poll verdicts: what the drain loop does next for each snapshot, and how it ends."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from drainer import outcome, progress
from drainer.clock import iso
from drainer.request import LIFECYCLE, SPOT, DrainRequest
from drainer.tasks import TaskSnapshot
from tests.conftest import install_settings
from tests.worlds import with_settings

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


# A timer wait or, in events mode, an awaited one: the loop goes on either way.
WAITS = (progress.WAIT, progress.AWAIT)


@pytest.fixture(params=["events", "poll"])
def settings(config, request):
    return install_settings(with_settings(config, drain_end_detection=request.param))


@pytest.fixture
def events(config):
    return install_settings(with_settings(config, drain_end_detection="events"))


def lifecycle_request(instance_id: str = "i-0aaaaaaaaaaaaaaa1", **extra) -> DrainRequest:
    return DrainRequest(
        kind=LIFECYCLE,
        instance_id=instance_id,
        reason="scale-in",
        event_id="e",
        event_time=iso(START),
        source="aws.autoscaling",
        detail_type="x",
        deadline=iso(START + timedelta(hours=47, minutes=55)),
        **extra,
    )


def spot_request() -> DrainRequest:
    return DrainRequest(
        kind=SPOT,
        instance_id="i-0aaaaaaaaaaaaaaa1",
        reason="spot",
        event_id="e",
        event_time=iso(START),
        source="aws.ec2",
        detail_type="x",
        deadline=iso(START + timedelta(seconds=120)),
    )


def after(request, settings, seconds, snapshot, state=None):
    state = state or progress.initial(request, None, settings, START)
    return progress.decide(request, state, snapshot, settings, START + timedelta(seconds=seconds))


def test_tasks_still_stopping_keep_the_drain_open(settings):
    # runningTasksCount would say 0 here: both tasks were told to stop but still serve requests.
    result = after(lifecycle_request(), settings, 30, TaskSnapshot(stopping=["a", "b"]))
    assert result["verdict"] in WAITS
    assert result["tasks"]["alive"] == 2


def test_no_task_alive_is_drained(settings):
    result = after(lifecycle_request(), settings, 30, TaskSnapshot())
    assert result["ending"] == outcome.DRAINED
    assert result["verdict"] == progress.COMPLETE  # a lifecycle drain completes its action


def test_gone_instance(settings):
    result = after(lifecycle_request(), settings, 30, None)
    assert result["ending"] == outcome.INSTANCE_GONE
    assert result["verdict"] == progress.COMPLETE


def test_daemon_tasks_get_a_grace_period_then_are_cut_short(settings):
    request = lifecycle_request()
    first = after(request, settings, 30, TaskSnapshot(daemon=["d"]))
    assert first["verdict"] in WAITS
    later = after(
        request,
        settings,
        30 + settings.daemon_task_grace_seconds,
        TaskSnapshot(daemon=["d"]),
        state=first,
    )
    assert later["ending"] == outcome.DRAINED
    assert later["verdict"] == progress.COMPLETE
    assert later["tasksCutShort"] == 1


def test_heartbeat_due_after_a_third_of_the_hook_timeout(settings):
    """At the latest: the first one comes up to half an interval early, by the instance's phase
    (tests/unit/test_heartbeat_schedule.py)."""
    request = lifecycle_request()
    busy = TaskSnapshot(service=["s"])
    first = progress.heartbeat_gap(request, {"heartbeats": 0}, settings)
    assert settings.heartbeat_interval_seconds / 2 < first <= settings.heartbeat_interval_seconds
    assert after(request, settings, first - 1, busy)["verdict"] in WAITS
    assert after(request, settings, first, busy)["verdict"] == "heartbeat"


def test_ceiling_reached(settings):
    request = lifecycle_request()
    result = after(request, settings, (47 * 60 + 55) * 60, TaskSnapshot(service=["s", "t"]))
    assert result["verdict"] == progress.CEILING
    assert result["ending"] == outcome.CEILING
    assert result["tasksCutShort"] == 2


def test_waits_never_pass_the_ceiling(settings):
    request = lifecycle_request()
    result = after(request, settings, (47 * 60 + 54) * 60 + 50, TaskSnapshot(service=["s"]))
    assert result["nextWaitSeconds"] == 10


def test_spot_polls_short_and_ends_before_the_interruption(settings):
    request = spot_request()
    assert after(request, settings, 10, TaskSnapshot(service=["s"]))["nextWaitSeconds"] == 5
    assert after(request, settings, 113, TaskSnapshot(service=["s"]))["nextWaitSeconds"] == 2
    final = after(request, settings, 115, TaskSnapshot(service=["s"]))
    # The interruption's time reached: a Spot drain has no action to complete, it reports.
    assert final["ending"] == outcome.SPOT_INTERRUPTED
    assert final["verdict"] == progress.FINISH


def test_a_spot_drain_ends_by_reporting_without_a_completion(settings):
    drained = after(spot_request(), settings, 10, TaskSnapshot())
    assert (drained["verdict"], drained["ending"]) == (progress.FINISH, outcome.SPOT_DRAINED)
    gone = after(spot_request(), settings, 10, None)
    assert (gone["verdict"], gone["ending"]) == (progress.FINISH, outcome.INSTANCE_GONE)


def test_standalone_tasks_wait_by_default(settings):
    result = after(lifecycle_request(), settings, 10_000, TaskSnapshot(standalone=["r"]))
    assert result["verdict"] in {*WAITS, progress.HEARTBEAT}


def test_standalone_tasks_stopped_after_grace_under_stop_policy(config):
    settings = install_settings(config.model_copy(update={"standalone_task_policy": "stop"}))
    request = lifecycle_request()
    assert after(request, settings, 60, TaskSnapshot(standalone=["r"]))["verdict"] in WAITS
    grace = settings.standalone_task_grace_seconds
    fresh = {
        **progress.initial(request, None, settings, START),
        "lastHeartbeatAt": iso(START + timedelta(seconds=grace - 1)),
    }  # no heartbeat due
    due = after(request, settings, grace, TaskSnapshot(standalone=["r"]), state=fresh)
    assert due["verdict"] == progress.STOP_STANDALONE
    # Spot: no grace, the interruption will not wait.
    assert (
        after(spot_request(), settings, 5, TaskSnapshot(standalone=["r"]))["verdict"]
        == "stop-standalone"
    )


def test_dry_run_ends_after_one_snapshot(settings):
    request = lifecycle_request(dry_run=True)
    result = after(request, settings, 30, TaskSnapshot(service=["s"]))
    assert result["ending"] == outcome.DRAINED
    assert result["verdict"] == progress.COMPLETE
    assert result["tasks"]["service"] == 1


def test_poll_interval_backs_off_after_the_first_hour(settings):
    request = lifecycle_request()
    state = progress.initial(request, None, settings, START)
    waits = []
    for minute in (30, 61, 62, 63, 64, 65, 66, 67, 68):
        state = progress.decide(
            request, state, TaskSnapshot(service=["s"]), settings, START + timedelta(minutes=minute)
        )
        waits.append(state["nextWaitSeconds"])
    assert waits[0] == settings.poll_interval_seconds
    assert waits[1:] == sorted(waits[1:])
    assert waits[-1] == settings.max_poll_interval_seconds


def test_a_fraction_of_a_second_left_cannot_spin_the_loop(settings):
    request = spot_request()
    state = progress.initial(request, None, settings, START)
    # 0.4 s before the Spot path's end: the next wait must still move time forward.
    almost = progress.decide(
        request, state, TaskSnapshot(service=["s"]), settings, START + timedelta(seconds=114.6)
    )
    assert almost["verdict"] in WAITS
    assert almost["nextWaitSeconds"] == 1
    final = progress.decide(
        request, almost, TaskSnapshot(service=["s"]), settings, START + timedelta(seconds=115.6)
    )
    assert final["ending"] == outcome.SPOT_INTERRUPTED
    assert final["verdict"] == progress.FINISH


def test_lifecycle_drains_of_one_refresh_poll_out_of_phase(settings):
    waits = {
        progress.first_wait(
            lifecycle_request(instance_id=f"i-0aaaaaaaaaaaaa{n:03x}"), settings, START
        )
        for n in range(200)
    }
    interval = settings.poll_interval_seconds
    assert min(waits) >= interval and max(waits) < 2 * interval
    assert len(waits) > interval // 2  # spread over the interval, not all on one second


def test_a_throttled_poll_waits_instead_of_failing(settings):
    request = lifecycle_request()
    state = progress.initial(request, None, settings, START)
    result = progress.after_throttling(request, state, settings, START + timedelta(seconds=40), 0.5)
    assert result["verdict"] in WAITS
    assert result["throttledPolls"] == 1
    assert result["nextWaitSeconds"] == settings.poll_interval_seconds * 3 // 2
    late = progress.after_throttling(
        request, state, settings, START + timedelta(hours=47, minutes=55), 0.5
    )
    assert late["verdict"] == progress.CEILING  # throttling never carries a drain past it
    assert late["ending"] == outcome.CEILING


# --- events mode: which waits the task events end --------------------------------------------
def test_events_mode_awaits_the_stops_of_a_lifecycle_drain(events):
    snapshot = TaskSnapshot(service=["s"], standalone=["t"], stopping=["x"], daemon=["d"])
    result = after(lifecycle_request(), events, 30, snapshot)
    assert result["verdict"] == progress.AWAIT
    # ECS stops daemon tasks last: the wait waits for the others.
    assert result["awaitedTasks"] == ["s", "t", "x"]
    assert result["aliveTasks"] == ["d", "s", "t", "x"]
    # min(fallback poll 900 s, the first heartbeat due, by this instance's phase)
    first = progress.heartbeat_gap(lifecycle_request(), {"heartbeats": 0}, events)
    assert events.fallback_poll_seconds > first - 30
    assert result["nextWaitSeconds"] == first - 30
    assert result["pollIntervalSeconds"] == events.poll_interval_seconds  # the back-off's own


def test_an_awaited_wait_never_passes_the_next_heartbeat_or_the_ceiling(events):
    state = progress.initial(lifecycle_request(), None, events, START)
    due_in = 100
    state["lastHeartbeatAt"] = iso(START + timedelta(seconds=30 + due_in - 600))
    state["heartbeats"] = 1  # a full interval after the last
    result = after(lifecycle_request(), events, 30, TaskSnapshot(service=["s"]), state)
    assert (result["verdict"], result["nextWaitSeconds"]) == (progress.AWAIT, due_in)
    near_the_ceiling = replace(lifecycle_request(), deadline=iso(START + timedelta(seconds=90)))
    result = after(near_the_ceiling, events, 30, TaskSnapshot(service=["s"]))
    assert (result["verdict"], result["nextWaitSeconds"]) == (progress.AWAIT, 60)


def test_grace_periods_and_spot_keep_timer_waits(events, config):
    # Only daemon tasks left: their grace is measured by a timer.
    daemons = after(lifecycle_request(), events, 30, TaskSnapshot(daemon=["d"]))
    assert daemons["verdict"] == progress.WAIT
    assert daemons["nextWaitSeconds"] == events.poll_interval_seconds
    # Standalone tasks the policy will stop once their grace is over.
    stopping = install_settings(
        with_settings(config, drain_end_detection="events", standalone_task_policy="stop")
    )
    standalone = after(lifecycle_request(), stopping, 30, TaskSnapshot(standalone=["t"]))
    assert standalone["verdict"] == progress.WAIT
    # Spot: two minutes, short timer polls.
    spot = after(spot_request(), events, 5, TaskSnapshot(service=["s"]))
    assert spot["verdict"] == progress.WAIT


def test_poll_mode_never_awaits(config):
    polled = install_settings(with_settings(config, drain_end_detection="poll"))
    result = after(lifecycle_request(), polled, 30, TaskSnapshot(service=["s"]))
    assert (result["verdict"], result["nextWaitSeconds"]) == (progress.WAIT, 30)
