"""Duplicates and races: however often and in whatever order events arrive for one instance,
it is drained once (one UpdateContainerInstancesState) and its action completed once."""

from __future__ import annotations

import copy
from typing import Any

from drainer.opt_in import TEST_EVENTS_ALLOWED, TEST_EVENTS_TAG
from sandbox.harness import Harness
from simulated_aws import World
from stacks.config import DrainerConfig
from tests.reliability import tally
from tests.reliability.scenario import assert_clean, finish, later
from tests.worlds import CLUSTER, GROUP, drain_world, with_settings

NEW_ID = "0d7c2b1e-6f0a-4c55-9a43-3f1f3f9f0b6e"
TEST_SOURCE = "ecs-drainer.test"


def successful(world: World, operation: str) -> int:
    return sum(1 for c in world.api_calls if c.operation == operation and c.outcome == "ok")


def redelivered(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    copied = copy.deepcopy(event)
    detail = changes.pop("detail", {})
    copied.update(changes)
    copied["detail"].update(detail)
    return copied


def test_one_action_delivered_again_and_again(config: DrainerConfig) -> None:
    name = "one lifecycle action delivered five times"
    world, (victim,) = drain_world(config)
    with Harness(world, config) as harness:
        action = world.asg.scale_in(GROUP, victim)
        assert action is not None and action.event is not None
        event = action.event
        harness.deliver(event)  # the same event, three times at once
        harness.deliver(event)
        # Mid-drain: the same action under a new event id, and under another hook's name.
        later(world, 40, lambda: harness.deliver(redelivered(event, id=NEW_ID)))
        later(
            world,
            41,
            lambda: harness.deliver(redelivered(event, detail={"LifecycleHookName": "other"})),
        )
        finish(harness, name)
        harness.deliver(event)  # late: after the drain ended
        record = finish(harness, name)
    outcomes = sorted(d.outcome or "" for d in record.drains)
    # The same event (three at once, one late) makes one execution, named after it: the late
    # one finds it ended and starts none. The new event id is a second event: its claim loses.
    assert len(record.drains) == 2, "the other hook's event must start no execution"
    assert outcomes == ["drained", "duplicate"]
    assert len(harness.deliveries) == 5 and harness.eventbridge.undelivered == []
    assert record.api_calls["ecs:UpdateContainerInstancesState"] == 1
    assert successful(world, "CompleteLifecycleAction") == 1
    assert record.api_calls["autoscaling:CompleteLifecycleAction"] == 1
    assert_clean(record, world, name)
    tally.case("duplicate and racing events", 5)


def test_a_lifecycle_event_put_again_after_its_drain_ends_as_already_ended(
    config: DrainerConfig,
) -> None:
    """The drain finished, the instance is gone; the same event comes again (a late
    redelivery, or someone puts it again). Its action had ended: the outcome says so, and
    nothing is drained or completed (it is not an instance "in no cluster")."""
    name = "lifecycle event again after the drain"
    world, (victim,) = drain_world(config)
    with Harness(world, config) as harness:
        action = world.asg.scale_in(GROUP, victim)  # the world delivers its event
        assert action is not None and action.event is not None
        finish(harness, name)
        calls_before = dict(world.api_call_counts())
        harness.deliver(redelivered(action.event, id=NEW_ID))
        record = finish(harness, name)
        late = harness.outcomes()[-1]
    assert [d.outcome for d in record.drains] == ["drained", "already-ended"]
    assert late["outcome"] == "already-ended"
    assert (late["actionCompleted"], late["actionAlreadyEnded"]) == (False, True)
    assert "already ended" in late["problem"] and late["tasksStopped"] == 0
    calls = world.api_call_counts()
    for operation in ("ecs:UpdateContainerInstancesState", "autoscaling:CompleteLifecycleAction"):
        assert calls[operation] == calls_before[operation] == 1, operation
    assert_clean(record, world, name)
    tally.case("duplicate and racing events")


def test_spot_warning_twice_and_the_lifecycle_event_for_one_instance(
    config: DrainerConfig,
) -> None:
    """Capacity Rebalancing: the Spot warning also starts the terminate hook; EventBridge
    delivers the warning twice (one execution, named after it), and a second warning event for
    the same instance arrives (its claim loses). One drain, at most one completion, nothing
    killed."""
    name = "Spot warning twice + lifecycle event"
    world, (victim,) = drain_world(config, capacity_rebalance=True)
    with Harness(world, config) as harness:
        warning = world.spot_interrupt(victim)
        harness.deliver(warning)
        harness.deliver(redelivered(warning, id=NEW_ID))
        record = finish(harness, name)
        world.clock.run_for(180, active=harness.running)  # the interruption itself
        record = harness.record()
    assert len(harness.deliveries) == 4  # the lifecycle event, the warning twice, the second
    kinds = sorted(d.kind for d in record.drains)
    assert kinds == ["LifecycleTerminate", "SpotInterruption", "SpotInterruption"]
    assert sorted(d.outcome or "" for d in record.drains if d.kind == "SpotInterruption") == [
        "duplicate",
        "spot-drained",
    ]
    assert record.api_calls["ecs:UpdateContainerInstancesState"] == 1
    assert successful(world, "CompleteLifecycleAction") <= 1
    assert record.tasks_killed == []
    (action,) = world.lifecycle_actions
    # Completed by the drain, or ended by the interruption AWS does not delay: never open.
    assert action.ended_by in {"completed", "instance-terminated"}
    tally.case("duplicate and racing events", 3)


def test_events_arriving_while_a_drain_runs(config: DrainerConfig) -> None:
    """During a long lifecycle drain: a Spot warning for the instance (a hand-sent one: no
    interruption follows), a rebalance recommendation under policy "replace", and the
    lifecycle event again with a new id. None starts a second drain or a second termination."""
    name = "events during a drain"
    config = with_settings(config, rebalance_policy="replace", test_event_source=TEST_SOURCE)
    world, (victim,) = drain_world(config)
    world.instances[victim].tags[TEST_EVENTS_TAG] = TEST_EVENTS_ALLOWED  # test events may act
    world.run_task(CLUSTER, victim, "report", runs_for_seconds=240)
    with Harness(world, config) as harness:
        action = world.asg.scale_in(GROUP, victim)
        assert action is not None and action.event is not None
        lifecycle_event = action.event
        spot_event = {
            **lifecycle_event,
            "id": "5b7b1d3a-1111-4b1e-9d7e-2a2a2a2a2a2a",
            "detail-type": "EC2 Spot Instance Interruption Warning",
            "source": config.test_event_source,
            "detail": {"instance-id": victim, "instance-action": "terminate"},
        }
        rebalance_event = {
            **spot_event,
            "id": "5b7b1d3a-2222-4b1e-9d7e-2a2a2a2a2a2a",
            "detail-type": "EC2 Instance Rebalance Recommendation",
            "detail": {"instance-id": victim},
        }
        later(world, 60, lambda: harness.deliver(spot_event))
        later(world, 90, lambda: harness.deliver(rebalance_event))
        later(world, 120, lambda: harness.deliver(redelivered(lifecycle_event, id=NEW_ID)))
        record = finish(harness, name)
    by_kind = {d.kind: d.outcome for d in record.drains if d.outcome != "duplicate"}
    assert by_kind == {
        "LifecycleTerminate": "drained",
        "SpotInterruption": "spot-interrupted",  # the task outlived the (pretend) warning
        "RebalanceRecommendation": "replacement-skipped",  # already terminating
    }
    assert [d.outcome for d in record.drains].count("duplicate") == 1
    assert record.api_calls["ecs:UpdateContainerInstancesState"] == 1
    assert successful(world, "CompleteLifecycleAction") == 1
    assert successful(world, "TerminateInstanceInAutoScalingGroup") == 0
    assert len(world.lifecycle_actions) == 1
    assert_clean(record, world, name)
    tally.case("duplicate and racing events", 4)


def test_a_duplicate_that_fails_leaves_the_action_to_the_drain(config: DrainerConfig) -> None:
    """The duplicate's last step crashes: its rescue path must not complete the action the
    first execution is still draining (that would let the instance go with its tasks)."""
    name = "a duplicate's report crashes mid-drain"
    world, (victim,) = drain_world(config)
    with Harness(world, config) as harness:
        action = world.asg.scale_in(GROUP, victim)
        assert action is not None and action.event is not None
        event = action.event

        def deliver_again_with_a_report_bug() -> None:
            harness.lambda_faults["ReportOutcome"] = [TypeError("report bug")]
            harness.deliver(redelivered(event, id=NEW_ID))  # a second event: its claim loses

        later(world, 20, deliver_again_with_a_report_bug)
        record = finish(harness, name)
        outcomes = {o["executionArn"]: o for o in harness.outcomes()}
    owner, duplicate = (d.execution_arn for d in harness.deliveries)
    assert harness.lambda_errors == ["ReportOutcome: TypeError: report bug"]
    assert [d.status for d in record.drains] == ["SUCCEEDED", "FAILED"]
    assert (outcomes[owner]["outcome"], outcomes[duplicate]["outcome"]) == ("drained", "failed")
    assert outcomes[duplicate]["actionCompleted"] is False
    assert outcomes[duplicate]["actionLeftTo"] == owner
    assert successful(world, "CompleteLifecycleAction") == 1
    assert_clean(record, world, name)
    tally.case("duplicate and racing events")
