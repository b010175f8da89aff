"""Failed and duplicate executions, on the real state machine and handlers against the world.

The catch-all: a drain execution that itself fails (or is aborted) still ends with its action
completed, by the rescue function after the grace ECS needs. Duplicates and races: however often
and in whatever order events arrive for one instance, it is drained once (one
UpdateContainerInstancesState) and its action completed once, by the execution that owns it.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import boto3
import pytest
import rescue_execution

from drainer import aws
from drainer.opt_in import TEST_EVENTS_ALLOWED, TEST_EVENTS_TAG
from sandbox.deployment import RESCUE_RULE
from sandbox.harness import Harness
from simulated_aws import World
from stacks.config import DrainerConfig
from stacks.definition import RESCUE_FUNCTION
from tests.executions import status_change
from tests.reliability import tally
from tests.reliability.scenario import assert_clean, finish, later
from tests.worlds import CLUSTER, GROUP, drain_world, with_settings, world_for


def virtual_sleep(world: World, harness: Harness) -> Any:
    """The rescue function's sleep, on the world's clock: ECS goes on moving tasks meanwhile."""

    def sleep(seconds: float) -> None:
        world.clock.run_for(seconds, active=harness.running)

    return sleep


def no_sleep(seconds: float) -> None:
    raise AssertionError(f"the rescue waited {seconds} s where it must complete at once")


def slow_moving_world(config: DrainerConfig) -> tuple[World, str]:
    """One instance whose 4 service tasks take about two minutes to leave (a load balancer's
    deregistration delay), well within the rescue grace, and two spares to take them."""
    world, (victim,) = world_for(config, instances=1)
    world.add_service(
        CLUSTER,
        "web",
        desired=4,
        start_seconds=10,
        stop_seconds=5,
        deregistration_delay_seconds=120,
    )
    for _ in range(2):
        world.add_instance(cluster=CLUSTER, group=GROUP)
    return world, victim


def abort_after(harness: Harness, seconds: float) -> list[str]:
    """Abort the first drain execution `seconds` into the run; its ARN lands in the list."""
    aborted: list[str] = []

    def abort() -> None:
        aborted.append(harness.deliveries[0].execution_arn)
        harness.sfn.stop_execution(executionArn=aborted[0], cause="operator")

    harness.world.call_later(seconds, abort)
    return aborted


def test_aborted_execution_is_rescued(config):
    world, (victim, *_) = world_for(config)
    world.add_service(CLUSTER, "web", desired=3, deregistration_delay_seconds=300)
    with Harness(world, config) as harness:
        action = world.asg.scale_in(GROUP, victim)
        arn_holder = []

        def abort():
            arn_holder.append(harness.deliveries[0].execution_arn)
            harness.sfn.stop_execution(executionArn=arn_holder[0], cause="operator")

        world.call_later(40, abort)
        harness.run()
        assert harness.sfn.describe_execution(executionArn=arn_holder[0])["status"] == "ABORTED"
        assert action.active  # nothing completed it: without the rescue it would wait
        result = rescue_execution.rescue(
            status_change(harness, arn_holder[0])["detail"],
            now=world.clock.now,
            sleep=virtual_sleep(world, harness),
        )
        (outcome,) = harness.outcomes()
        (claim,) = [
            item
            for item in boto3.client("dynamodb", region_name="us-east-1").scan(
                TableName=harness.deployment.claims_table
            )["Items"]
            if item["pk"]["S"].startswith("lifecycle#")  # not the pacing or service-cache items
        ]
    assert result["rescued"] is True
    assert action.ended_by == "completed"
    assert outcome["outcome"] == "failed"
    assert outcome["actionCompleted"] is True
    assert outcome["error"]["Error"] == "ExecutionAborted"
    # Released: the instance's next lifecycle action (back from a warm pool) is no duplicate.
    assert (claim["owner"]["S"], claim["state"]["S"]) == (arn_holder[0], "done")


def test_execution_rescued_by_its_own_path_is_not_rescued_twice(config):
    world, (victim, *_) = world_for(config)
    world.add_service(CLUSTER, "web", desired=3)
    with Harness(world, config) as harness:
        harness.lambda_faults["PollTasks"] = [KeyError("a bug in the poll Lambda")]
        action = world.asg.scale_in(GROUP, victim)
        harness.run()
        (delivery,) = harness.deliveries
        execution = harness.execution(delivery.execution_arn)
        (outcome,) = harness.outcomes()
        result = rescue_execution.handler(status_change(harness, delivery.execution_arn), None)
        assert harness.outcomes() == [outcome]  # nothing published twice
    assert execution["status"] == "FAILED"
    assert outcome["outcome"] == "failed"
    assert outcome["actionCompleted"] is True
    assert json.loads(outcome["error"]["Cause"])["errorType"] == "KeyError"
    assert action.ended_by == "completed"
    assert result["rescued"] is False


def test_the_rescue_function_leaves_a_failed_duplicates_action_to_its_owner(config):
    """Completing for a duplicate would let the instance go while its owner still drains it."""
    world, (victim, *_) = world_for(config)
    world.add_service(CLUSTER, "web", desired=3, deregistration_delay_seconds=300)
    with Harness(world, config) as harness:
        action = world.asg.scale_in(GROUP, victim)
        # The same action in a second event (the same event again would start no execution).
        world.call_later(20, lambda: harness.deliver({**action.event, "id": "second-event"}))
        world.clock.run_for(40, active=harness.running)
        owner, duplicate = (d.execution_arn for d in harness.deliveries)
        # As if the duplicate had been aborted, or its own rescue had failed.
        aborted = status_change(harness, duplicate)
        aborted["detail"]["status"] = "ABORTED"
        result = rescue_execution.rescue(aborted["detail"], now=world.clock.now, sleep=no_sleep)
        assert action.active  # left to the owner, which is still draining
        harness.run()
        record = harness.record()
    assert result["rescued"] is True
    rescued = result["outcome"]
    assert (rescued["outcome"], rescued["actionCompleted"]) == ("failed", False)
    assert rescued["actionLeftTo"] == owner
    # The owner drained; the duplicate's last published word is the rescue's.
    assert sorted(d.outcome for d in record.drains) == ["drained", "failed"]
    assert action.ended_by == "completed"
    assert record.tasks_killed == []


def test_an_execution_aborted_mid_drain_gets_the_grace_and_reports_what_it_knew(config):
    """Stopped while the instance is DRAINING (waiting for a wake-up or a timer): the rescue
    function, like the in-machine rescue path, lets ECS move the tasks for
    rescue_grace_seconds (a heartbeat first) before it completes, and reports the cluster, the
    time and the tasks the execution had seen."""
    world, victim = slow_moving_world(config)
    grace = config.rescue_grace_seconds
    with Harness(world, config) as harness:
        action = world.asg.scale_in(GROUP, victim)
        aborted = abort_after(harness, 45)
        harness.run()
        (arn,) = aborted
        event = status_change(harness, arn)
        stopped = harness.sfn.describe_execution(executionArn=arn)["stopDate"]
        assert action.active and world.tasks_on(victim, live=True)
        result = rescue_execution.rescue(
            event["detail"], now=world.clock.now, sleep=virtual_sleep(world, harness)
        )
        (outcome,) = harness.outcomes()
        record = harness.record()
    assert result["rescued"] is True
    assert (outcome["outcome"], outcome["actionCompleted"]) == ("failed", True)
    assert outcome["error"]["Error"] == "ExecutionAborted"
    # The grace, counted from the stop, after a heartbeat that keeps the hook alive through it.
    assert action.completed_at == stopped + timedelta(seconds=grace)
    assert action.heartbeats and action.heartbeats[-1] == stopped
    assert record.tasks_killed == []  # ECS moved every task within the grace
    # The real facts, not "no cluster, no time".
    assert outcome["cluster"] == CLUSTER
    assert outcome["durationSeconds"] >= 45 + grace
    assert outcome["tasksAtStart"] == 4
    assert outcome["polls"] >= 1 and outcome["tasksLeft"] is not None


def test_an_execution_aborted_before_the_drain_is_completed_at_once(config):
    """No DRAINING yet (ECS throttles the call until the operator gives up), nothing for ECS to
    move: no grace, as in the state machine; the duration is the execution's own."""
    world, victim = slow_moving_world(config)
    world.inject_faults(
        "ecs", "UpdateContainerInstancesState", code="ThrottlingException", count=None
    )
    with Harness(world, config) as harness:
        action = world.asg.scale_in(GROUP, victim)
        aborted = abort_after(harness, 20)
        harness.run()
        event = status_change(harness, aborted[0])
        result = rescue_execution.rescue(event["detail"], now=world.clock.now, sleep=no_sleep)
    outcome = result["outcome"]
    assert outcome["actionCompleted"] is True
    assert action.heartbeats == []
    assert action.ended_by == "completed"
    # A lifecycle drain finds its container instance in "Start draining" (after its start
    # slot), the step that never got through: no cluster yet.
    assert outcome["cluster"] is None
    assert outcome["durationSeconds"] >= 20


def test_unreadable_history_still_completes_at_once(config, monkeypatch):
    """The history read is an extra: when it fails, the rescue completes from the execution
    input at once rather than leave the action open."""
    world, victim = slow_moving_world(config)
    with Harness(world, config) as harness:
        action = world.asg.scale_in(GROUP, victim)
        aborted = abort_after(harness, 45)
        harness.run()
        event = status_change(harness, aborted[0])
        real_call = aws.call

        def call(service: str, operation: str, **params: Any) -> dict[str, Any]:
            if operation == "get_execution_history":
                raise aws.AwsTransientError("InternalFailure: history unavailable")
            return real_call(service, operation, **params)

        monkeypatch.setattr(rescue_execution, "call", call)
        result = rescue_execution.rescue(event["detail"], now=world.clock.now, sleep=no_sleep)
    assert result["rescued"] is True
    assert result["outcome"]["actionCompleted"] is True
    assert action.ended_by == "completed"


def test_the_grace_ends_before_the_lambda_runs_out_of_time(config):
    """A Lambda timeout shorter than the grace must not leave the action open: the wait is cut
    to the time the invocation has left, less a reserve for the completion."""
    world, victim = slow_moving_world(config)
    with Harness(world, config) as harness:
        action = world.asg.scale_in(GROUP, victim)
        aborted = abort_after(harness, 45)
        harness.run()
        event = status_change(harness, aborted[0])
        begun = world.clock.now()
        rescue_execution.rescue(
            event["detail"],
            now=world.clock.now,
            sleep=virtual_sleep(world, harness),
            time_budget_seconds=30,
        )
    assert action.ended_by == "completed"
    assert action.completed_at == begun + timedelta(seconds=30)


@pytest.mark.parametrize("remaining_ms", [900_000, 10_000])
def test_the_handler_gives_the_grace_the_time_the_invocation_has(remaining_ms, monkeypatch):
    seen: dict[str, Any] = {}

    def rescue(detail: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        seen.update(kwargs)
        return {}

    class Context:
        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return remaining_ms

    monkeypatch.setattr(rescue_execution, "rescue", rescue)
    rescue_execution.handler({"detail": {}}, Context())
    reserve = rescue_execution.FINISH_RESERVE_SECONDS
    assert seen["time_budget_seconds"] == remaining_ms / 1000 - reserve


def test_the_rescue_function_outlives_the_longest_grace():
    """The stack's timeout for the function covers the largest rescue_grace_seconds the
    configuration accepts, plus the reserve for completing and reporting after it."""
    (limit,) = [
        rule.le
        for rule in DrainerConfig.model_fields["rescue_grace_seconds"].metadata
        if hasattr(rule, "le")
    ]
    needed = limit + rescue_execution.FINISH_RESERVE_SECONDS
    assert RESCUE_FUNCTION.timeout_seconds > needed


def test_an_execution_aborted_during_its_own_grace_gets_only_the_rest(config):
    """The execution's own rescue path was already letting ECS move the tasks when it was
    stopped: the rescue function waits out the rest of that grace, not a second one."""
    world, victim = slow_moving_world(config)
    grace = config.rescue_grace_seconds
    with Harness(world, config) as harness:
        harness.lambda_faults["PollTasks"] = [KeyError("a bug in the poll Lambda")]
        action = world.asg.scale_in(GROUP, victim)
        aborted = abort_after(harness, 100)
        harness.run()
        (began,) = [
            e["timestamp"]
            for e in harness.history(aborted[0])
            if (e.get("stateEnteredEventDetails") or {}).get("name") == rescue_execution.GRACE_STATE
        ]
        event = status_change(harness, aborted[0])
        assert event["detail"]["status"] == "ABORTED" and action.active
        result = rescue_execution.rescue(
            event["detail"], now=world.clock.now, sleep=virtual_sleep(world, harness)
        )
    assert result["outcome"]["actionCompleted"] is True
    assert action.completed_at == began + timedelta(seconds=grace)


def test_an_execution_whose_own_rescue_failed_after_its_grace_is_completed_at_once(config):
    """The in-machine rescue gave its grace, then could not complete (Auto Scaling answering
    500) and the execution failed: the rescue function completes at once."""
    world, victim = slow_moving_world(config)
    world.inject_faults("autoscaling", "CompleteLifecycleAction", code="InternalFailure", count=11)
    with Harness(world, config) as harness:
        harness.lambda_faults["PollTasks"] = [KeyError("a bug in the poll Lambda")]
        action = world.asg.scale_in(GROUP, victim)
        harness.run()
        (delivery,) = harness.deliveries
        event = status_change(harness, delivery.execution_arn)
        assert event["detail"]["status"] == "FAILED" and action.active
        result = rescue_execution.rescue(event["detail"], now=world.clock.now, sleep=no_sleep)
    assert result["rescued"] is True
    assert result["outcome"]["actionCompleted"] is True
    assert action.heartbeats == []


def test_a_rescue_that_fails_lands_its_event_in_the_dead_letter_queue(config):
    """The rescue function raises on every attempt: Lambda gives the event to the function's
    dead-letter queue (its undelivered-events alarm fires) instead of dropping it."""
    world, (victim, *_) = world_for(config)
    world.add_service(CLUSTER, "web", desired=3, deregistration_delay_seconds=300)
    with Harness(world, config) as harness:
        harness.lambda_faults[RESCUE_FUNCTION.name] = [RuntimeError("Auto Scaling unreachable")]
        action = world.asg.scale_in(GROUP, victim)
        aborted = abort_after(harness, 40)
        harness.run()
        # The harness emits no status changes (the sandbox's server does): the rescue rule's.
        harness.deliver(status_change(harness, aborted[0]))
        harness.run()
        (undelivered,) = harness.eventbridge.undelivered
    assert undelivered.rule == RESCUE_RULE
    assert undelivered.event["detail"]["executionArn"] == aborted[0]
    assert "RuntimeError: Auto Scaling unreachable" in undelivered.error
    assert action.active  # the alarm tells someone to complete it (docs/RUNBOOK.md)
    assert harness.lambda_errors == ["RescueExecution: RuntimeError: Auto Scaling unreachable"]


# --- Duplicates and races: one drain, one completion ----------------------------------------------

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


def test_a_duplicate_whose_report_crashes_leaves_the_action_to_the_drain(
    config: DrainerConfig,
) -> None:
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
