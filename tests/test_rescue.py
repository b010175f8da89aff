"""The catch-all: a drain execution that itself fails still ends with its action completed."""

from __future__ import annotations

import json

import boto3
import rescue_execution

from tests.harness import Harness
from tests.worlds import CLUSTER, GROUP, world_for


def status_change(harness: Harness, arn: str) -> dict:
    """The "Step Functions Execution Status Change" event EventBridge sends the rescue rule."""
    described = harness.sfn.describe_execution(executionArn=arn)
    return {
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": {
            "executionArn": arn,
            "stateMachineArn": harness.state_machine_arn,
            "status": described["status"],
            "input": described["input"],
        },
    }


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
        result = rescue_execution.handler(status_change(harness, arn_holder[0]), None)
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
        world.call_later(20, lambda: harness.deliver(action.event))  # delivered again
        world.clock.run_for(40, active=harness.running)
        owner, duplicate = (d.execution_arn for d in harness.deliveries)
        # As if the duplicate had been aborted, or its own rescue had failed.
        aborted = status_change(harness, duplicate)
        aborted["detail"]["status"] = "ABORTED"
        result = rescue_execution.handler(aborted, None)
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
