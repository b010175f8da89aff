"""The catch-all: a drain execution that itself fails still ends with its action completed."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest
import rescue_execution

from drainer import aws
from sandbox.harness import Harness
from simulated_aws import World
from stacks.config import DrainerConfig
from stacks.definition import RESCUE_FUNCTION
from tests.worlds import CLUSTER, GROUP, world_for


def status_change(harness: Harness, arn: str) -> dict:
    """The "Step Functions Execution Status Change" event EventBridge sends the rescue rule
    (https://docs.aws.amazon.com/step-functions/latest/dg/eventbridge-integration.html:
    startDate and stopDate in milliseconds since the epoch)."""
    described = harness.sfn.describe_execution(executionArn=arn)
    stopped = described.get("stopDate")
    return {
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": {
            "executionArn": arn,
            "stateMachineArn": harness.state_machine_arn,
            "status": described["status"],
            "startDate": int(described["startDate"].timestamp() * 1000),
            "stopDate": int(stopped.timestamp() * 1000) if stopped else None,
            "input": described["input"],
        },
    }


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
        (claim,) = boto3.client("dynamodb", region_name="us-east-1").scan(
            TableName=harness.deployment.claims_table
        )["Items"]
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


def test_a_failed_duplicate_leaves_the_action_to_the_drain_that_owns_it(config):
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
    """Stopped while the instance is DRAINING: the rescue function, like the in-machine rescue
    path, lets ECS move the tasks for rescue_grace_seconds (a heartbeat first) before it
    completes, and reports the cluster, the time and the tasks the execution had seen."""
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
    assert outcome["cluster"] == CLUSTER  # resolved before the drain could start
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
            if (e.get("stateEnteredEventDetails") or {}).get("name")
            == rescue_execution.GRACE_STATE
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
