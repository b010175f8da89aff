"""How many ECS calls each step makes: a refresh of hundreds of instances shares ECS's token
buckets (one per operation), so every call a poll saves is capacity for another drain."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
import resolve
from start_drain import COUNT_MARGIN_SECONDS

from drainer import ecs, progress, tasks
from sandbox.harness import Harness
from tests.handlers.drains import first_heartbeat_gap, lifecycle_state
from tests.steps import ARN, step
from tests.worlds import CLUSTER, GROUP, world_for


def ecs_calls(world, since: int) -> Counter:
    return Counter(c.operation for c in world.api_calls[since:] if c.service == "ecs")


def started(world, victim) -> dict:
    return step("Start draining", lifecycle_state(world, victim))


def polled(world, state) -> tuple[dict, Counter]:
    before = len(world.api_calls)
    state = step("Poll tasks", state)
    return state, ecs_calls(world, before)


def test_the_first_poll_lists_later_polls_describe_only_the_tasks_alive(env):
    world, (victim, *_), _ = env
    state = started(world, victim)
    state, first = polled(world, state)
    assert first == Counter(ListTasks=2, DescribeTasks=1, DescribeServices=1)
    alive = state["progress"]["aliveTasks"]
    assert alive and state["progress"]["tasksAtStart"] == len(alive)
    world.clock.run_for(30)
    state, later = polled(world, state)
    assert later == Counter(DescribeTasks=1)
    assert state["progress"]["verdict"] == progress.AWAIT  # events mode, the default


def test_a_first_listing_that_saw_every_counted_task_needs_no_second(env):
    """UpdateContainerInstancesState answered how many tasks ECS counted; the first listing found
    as many, so it missed none and no later poll lists again."""
    world, (victim, *_), _ = env
    state = started(world, victim)
    assert state["progress"]["drain"]["tasksCounted"] >= 1
    state, _ = polled(world, state)
    assert state["progress"]["listedAll"] is True
    world.clock.run_for(200)
    state, last = polled(world, state)
    assert last == Counter(DescribeTasks=1)
    assert state["progress"]["verdict"] == progress.COMPLETE


def test_tasks_told_to_stop_since_the_count_are_part_of_the_listing(env):
    """By the first poll ECS has told the service task to stop (its replacement runs): it is
    listed among the desired-STOPPED tasks, yet ECS counted it as it set DRAINING."""
    world, (victim, *_), _ = env
    state = started(world, victim)
    world.clock.run_for(30)  # the replacement is up; the old task deregisters (60 s)
    state, _ = polled(world, state)
    assert state["progress"]["tasks"]["stopping"] >= 1
    assert state["progress"]["listedAll"] is True


@pytest.fixture
def prompt(config):
    """A service whose replacements run a second after they start: the scheduler tells the
    task on the drained instance to stop a second after ECS set it DRAINING, within the start
    function's clock margin (lambdas/start_drain.py COUNT_MARGIN_SECONDS)."""
    world, ids = world_for(config)
    world.add_service(CLUSTER, "web", desired=3, start_seconds=1, deregistration_delay_seconds=60)
    with Harness(world, config) as harness:
        yield world, ids, harness


def told_to_stop_soon_after(world, victim, draining_at) -> bool:
    told = [task.stopping_at for task in world.tasks_on(victim) if task.stopping_at]
    margin = timedelta(seconds=COUNT_MARGIN_SECONDS)
    return bool(told) and all(draining_at < at < draining_at + margin for at in told)


@pytest.mark.parametrize(
    ("draining_event", "listed_all", "at_the_end"),
    [
        # ECS's own moment of DRAINING (the watch keeps it): the task the scheduler told to
        # stop a second later counts, the first listing saw every counted task, and the end
        # needs no confirming listing.
        ("delivered", True, Counter(DescribeTasks=1)),
        # The event lost: the start function's clock, with its margin, cannot tell that task
        # from one told to stop before DRAINING, so the drain confirms with one listing.
        ("lost", False, Counter(DescribeTasks=1, ListTasks=1)),
    ],
)
def test_a_task_told_to_stop_as_draining_began_counts_by_ecs_own_moment(
    prompt, draining_event, listed_all, at_the_end
):
    world, (victim, *_), harness = prompt
    if draining_event == "lost":
        deliver = harness.eventbridge.deliver
        harness.eventbridge.deliver = lambda event: (  # type: ignore[method-assign]
            None if event["detail"].get("status") == "DRAINING" else deliver(event)
        )
    state, draining_at = started(world, victim), world.clock.now()
    # The bus delivers the DRAINING event to the wake function (the clock waits for it).
    world.clock.run_for(30, active=harness.running)
    assert told_to_stop_soon_after(world, victim, draining_at)
    state, _ = polled(world, state)
    assert state["progress"]["tasks"]["stopping"] >= 1
    assert state["progress"]["listedAll"] is listed_all
    world.clock.run_for(200)
    state, last = polled(world, state)
    assert last == at_the_end
    assert state["progress"]["verdict"] == progress.COMPLETE


def undercounted(state: dict) -> dict:
    """As if the first listing had missed a task ECS counted (a listing behind the count)."""
    drain = state["progress"]["drain"]
    return {**state, "progress": {**state["progress"], "drain": {**drain, "tasksCounted": 99}}}


def test_when_the_first_listing_missed_a_counted_task_one_list_confirms(env):
    world, (victim, *_), _ = env
    state = undercounted(started(world, victim))
    state, _ = polled(world, state)
    assert state["progress"]["listedAll"] is False
    world.clock.run_for(200)
    state, last = polled(world, state)
    assert last == Counter(DescribeTasks=1, ListTasks=1)
    assert state["progress"]["verdict"] == progress.COMPLETE


def test_a_task_the_first_listing_missed_is_found_by_the_confirmation(env):
    world, (victim, *_), _ = env
    state = undercounted(started(world, victim))
    state, _ = polled(world, state)
    world.clock.run_for(200)
    late = world.run_task(CLUSTER, victim, "batch")
    state, last = polled(world, state)
    assert last == Counter(DescribeTasks=2, ListTasks=1)
    assert state["progress"]["aliveTasks"] == [late]
    assert state["progress"]["verdict"] == progress.AWAIT  # events mode, the default


def test_daemon_service_names_are_asked_once_per_cluster(env):
    world, (first, second, _), _ = env
    one, _ = polled(world, started(world, first))
    _, calls = polled(world, started(world, second))
    assert "DescribeServices" not in calls
    assert one["progress"]["knownServices"] == ["web"]


def test_describes_go_by_one_hundred(monkeypatch):
    batches = []

    def fake(service, operation, **params):
        batches.append(len(params["tasks"]))
        return {"tasks": [{"taskArn": arn, "lastStatus": "RUNNING"} for arn in params["tasks"]]}

    monkeypatch.setattr(tasks, "call", fake)
    assert len(tasks._alive("c", [f"arn:{n}" for n in range(250)])) == 250
    assert batches == [100, 100, 50]


def test_an_active_instance_is_found_with_one_call_a_draining_one_with_list_and_describe(env):
    world, (victim, other, _), _ = env
    before = len(world.api_calls)
    state = resolve.handler({"event": world.spot_interrupt(victim), "executionArn": ARN}, None)
    assert ecs_calls(world, before) == Counter(ListContainerInstances=1)
    assert state["target"]["status"] == "ACTIVE"
    world.ecs.container_instance(other).status = "DRAINING"
    before = len(world.api_calls)
    found = ecs.locate(other, [CLUSTER])
    assert ecs_calls(world, before) == Counter(
        ListContainerInstances=2, DescribeContainerInstances=1
    )
    assert found["status"] == "DRAINING"


def test_lifecycle_drains_take_start_slots_spot_drains_none(env, config):
    world, (first, second, third), _ = env
    paces = [
        resolve.handler(
            {"event": world.asg.scale_in(GROUP, victim).event, "executionArn": f"{ARN}-{victim}"},
            None,
        )["progress"]["nextWaitSeconds"]
        for victim in (first, second)
    ]
    assert paces == [0, 1]  # 1/8 s apart, rounded up to the Wait's whole seconds
    spot = resolve.handler({"event": world.spot_interrupt(third), "executionArn": ARN}, None)
    assert spot["progress"]["nextWaitSeconds"] == 5  # its own short poll wait, no slot
    assert spot["target"] is not None  # located at once: DRAINING next


def test_a_start_slot_never_waits_past_the_first_heartbeat(env, config, monkeypatch):
    from drainer import pacing

    world, (victim, *_), _ = env
    monkeypatch.setattr(pacing, "reserve", lambda *args: 100_000.0)
    state = lifecycle_state(world, victim)
    first = first_heartbeat_gap(state)
    assert config.heartbeat_timeout_seconds // 6 < first <= config.heartbeat_timeout_seconds // 3
    assert state["progress"]["nextWaitSeconds"] == first
