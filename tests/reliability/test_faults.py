"""Faults on the simulated world: throttling, 5xx, network errors, Lambda timeouts and crashes,
expired tokens, a cluster or group deleted mid-drain, the execution itself failing.

Every scenario asserts: no lifecycle action left to time out by a bug, no task killed while it
ran (unless the scenario itself removes the instance's cluster or group), no drain retried
forever (finish() bounds virtual time and transitions), and every drain published an outcome.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import rescue_execution
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from moto.events.models import EventPattern

from drainer import aws
from sandbox.harness import Harness
from simulated_aws import World
from stacks.config import DrainerConfig
from stacks.event_patterns import execution_failure_pattern
from tests.reliability import tally
from tests.reliability.scenario import assert_clean, error_type, finish, later
from tests.worlds import CLUSTER, GROUP, drain_world, with_settings


def short_heartbeats(config: DrainerConfig) -> DrainerConfig:
    """About the shortest hook the heartbeat schedule accepts (with its margin for Lambda time
    and Retry back-off): heartbeats every 360 s, so a 15-minute drain records two."""
    return with_settings(
        config,
        heartbeat_timeout_seconds=1080,
        poll_interval_seconds=10,
        max_poll_interval_seconds=30,
        max_drain_seconds=7200,
    )


def failing_answers(world: World, code: str | None = None) -> int:
    return sum(
        count
        for key, count in tally.world_faults(world).items()
        if code is None or key.endswith(f" {code}")
    )


def lambda_faults_met(harness: Harness, planned: int) -> int:
    return planned - sum(len(faults) for faults in harness.lambda_faults.values())


@contextmanager
def network_errors(service: str, operation: str, errors: list[Exception]) -> Iterator[list[int]]:
    """The next calls of `operation` fail below the API, as a dropped connection does once
    the SDK's own retries are spent. Yields a one-item list: how many were raised."""
    client = aws.client(service)  # the cached client the Lambdas use
    raised = [0]

    def fail(**_: Any) -> None:
        if errors:
            raised[0] += 1
            raise errors.pop(0)

    event = f"before-call.{client.meta.service_model.service_id.hyphenize()}.{operation}"
    client.meta.events.register_first(event, fail)
    try:
        yield raised
    finally:
        client.meta.events.unregister(event, fail)


def test_throttling_burst_during_an_instance_refresh(config: DrainerConfig) -> None:
    name = "throttling burst, 3 drains at once"
    world, victims = drain_world(config, victims=3, spares=3, tasks=2)
    with Harness(world, config) as harness:
        world.ecs.set_throttle(1.0, burst=2)  # per operation, as ECS throttles
        # The drains poll out of phase (as they should), so add a burst over the bucket too.
        world.call_later(
            40, lambda: world.inject_faults("ecs", "ListTasks", code="ThrottlingException", count=6)
        )
        # One bucket for every Auto Scaling call, from after the drains started: throttled
        # lifecycle-state reads at the start would spread the drains out (jittered retries)
        # and the ECS burst this test wants would not happen.
        world.call_later(5, lambda: world.asg.set_throttle(0.1, burst=1))
        # Whether the bucket bites depends on how close the completions land (jittered
        # retries), so the first completion is also answered Throttling, whatever the timing.
        world.inject_faults("autoscaling", "CompleteLifecycleAction", code="Throttling")
        for victim in victims:
            world.asg.scale_in(GROUP, victim)
        record = finish(harness, name)
    throttled = failing_answers(world, "ThrottlingException") + failing_answers(world, "Throttling")
    assert failing_answers(world, "ThrottlingException") >= 4, "ECS throttling did not bite"
    assert failing_answers(world, "Throttling") >= 1, "Auto Scaling throttling did not bite"
    assert sorted(d.outcome for d in record.drains) == ["drained"] * 3
    assert record.api_calls["ecs:UpdateContainerInstancesState"] == 3
    assert_clean(record, world, name)
    tally.survived("throttled answers (ECS, Auto Scaling)", throttled)


def test_server_errors_from_ecs_and_auto_scaling(config: DrainerConfig) -> None:
    name = "ECS ServerException and Auto Scaling InternalFailure (HTTP 500)"
    config = short_heartbeats(config)
    world, (victim,) = drain_world(config)
    world.run_task(CLUSTER, victim, "report", runs_for_seconds=900)  # several heartbeats
    for operation, count in (
        ("ListContainerInstances", 2),
        ("UpdateContainerInstancesState", 2),
        ("ListTasks", 3),
        ("DescribeTasks", 2),
    ):
        world.inject_faults("ecs", operation, code="ServerException", count=count)
    for operation, count in (("RecordLifecycleActionHeartbeat", 2), ("CompleteLifecycleAction", 3)):
        world.inject_faults(
            "autoscaling", operation, code="InternalFailure", status=500, count=count
        )
    with Harness(world, config) as harness:
        action = world.asg.scale_in(GROUP, victim)
        record = finish(harness, name)
    assert all(fault.exhausted for fault in world.faults), "a planned fault never fired"
    (drain,) = record.drains
    assert drain.outcome == "drained"
    assert len(action.heartbeats) >= 2
    assert record.api_calls["ecs:UpdateContainerInstancesState"] == 3  # 2 failed + 1
    assert_clean(record, world, name)
    tally.survived("HTTP 500 answers (ECS, Auto Scaling)", failing_answers(world))


def test_network_errors_after_the_sdk_retries_are_retried(config: DrainerConfig) -> None:
    """A dropped connection or read timeout is as transient as a 5xx: the drain goes on.

    Before the fix in drainer/aws.py such an error (EndpointConnectionError, …) reached the
    state machine under its own name, matched no Retry, and the rescue path completed the
    action at once: the instance went with its tasks still serving.
    """
    name = "network errors mid-drain"
    world, (victim,) = drain_world(config)
    with Harness(world, config) as harness:
        url = "https://ecs.us-east-1.amazonaws.com/"
        errors: list[Exception] = [
            EndpointConnectionError(endpoint_url=url),
            ReadTimeoutError(endpoint_url=url),
            ConnectionClosedError(endpoint_url=url),
        ]
        with network_errors("ecs", "ListTasks", errors) as raised:
            world.asg.scale_in(GROUP, victim)
            record = finish(harness, name)
    assert raised[0] == 3
    (drain,) = record.drains
    assert drain.outcome == "drained"
    assert_clean(record, world, name)
    tally.survived("network errors below the SDK", raised[0])


def test_lambda_timeouts_and_service_errors_are_retried(config: DrainerConfig) -> None:
    name = "Lambda Sandbox.Timedout and service errors in every step"
    world, (victim,) = drain_world(config)
    with Harness(world, config) as harness:
        for function in ("Resolve", "StartDrain", "PollTasks", "CompleteAction"):
            harness.lambda_faults[function] = ["Sandbox.Timedout", "Lambda.ServiceException"]
        harness.lambda_faults["ReportOutcome"] = ["Sandbox.Timedout", "Lambda.Unknown"]
        planned = sum(len(faults) for faults in harness.lambda_faults.values())
        world.asg.scale_in(GROUP, victim)
        record = finish(harness, name)
        met = lambda_faults_met(harness, planned)
    assert met == planned == 10
    (drain,) = record.drains
    assert (drain.status, drain.outcome) == ("SUCCEEDED", "drained")
    assert_clean(record, world, name)
    tally.survived("Lambda timeouts and service errors", met)


def test_a_crashing_step_after_the_drain_still_completes_and_reports(config: DrainerConfig) -> None:
    """Unhandled exceptions (a bug) where the workload is already drained: the rescue path
    completes the action and publishes `failed` with the error; no task dies for it."""
    name = "Lambda crashes in CompleteAction, then in ReportOutcome"
    world, (first, second) = drain_world(config, victims=2)
    with Harness(world, config) as harness:
        harness.lambda_faults["CompleteAction"] = [KeyError("completion bug")]
        world.asg.scale_in(GROUP, first)
        finish(harness, name)
        harness.lambda_faults["ReportOutcome"] = [TypeError("report bug")]
        world.asg.scale_in(GROUP, second)
        record = finish(harness, name)
        by_instance = {o["instanceId"]: o for o in harness.outcomes()}
    assert harness.lambda_errors == [
        "CompleteAction: KeyError: 'completion bug'",
        "ReportOutcome: TypeError: report bug",
    ]
    assert [d.status for d in record.drains] == ["FAILED", "FAILED"]
    crashed_completion, crashed_report = by_instance[first], by_instance[second]
    assert crashed_completion["outcome"] == crashed_report["outcome"] == "failed"
    assert error_type(crashed_completion) == "KeyError"
    assert crashed_completion["actionCompleted"] is True  # by the rescue path
    assert error_type(crashed_report) == "TypeError"
    # Completed by the drain before the report crashed; the rescue found it ended.
    assert crashed_report["actionAlreadyEnded"] is True
    assert_clean(record, world, name)
    tally.survived("Lambda crashes (unhandled exceptions)", 2)


def test_a_crash_mid_drain_lets_ecs_finish_moving_tasks(config: DrainerConfig) -> None:
    """A bug in a drain-loop step: the instance is already DRAINING, so the rescue path gives
    ECS rescue_grace_seconds to move the tasks, then completes the action and publishes the
    failure. No instance stranded, no task killed."""
    name = "Lambda crash mid-drain"
    world, (victim,) = drain_world(config)
    with Harness(world, config) as harness:
        harness.lambda_faults["PollTasks"] = [ZeroDivisionError("poll bug")]
        world.asg.scale_in(GROUP, victim)
        record = finish(harness, name)
        (outcome,) = harness.outcomes()
        history = harness.history(harness.deliveries[0].execution_arn)
    (drain,) = record.drains
    assert (drain.status, outcome["outcome"]) == ("FAILED", "failed")
    assert error_type(outcome) == "ZeroDivisionError"
    waited = [
        e
        for e in history
        if (e.get("stateEnteredEventDetails") or {}).get("name") == "Rescue: let ECS move the tasks"
    ]
    assert len(waited) == 1
    tally.actions_completed(world.lifecycle_actions, name)
    assert record.tasks_killed == []


def test_stale_token_redelivered_after_the_action_expired(config: DrainerConfig) -> None:
    """The action timed out before its event was delivered (e.g. a replay from the dead-letter
    queue): the drain finds the instance gone from Auto Scaling and ends as already-ended,
    without even trying CompleteLifecycleAction; nothing retries a stale token. The event's
    second delivery finds that execution (its name) and starts none."""
    name = "stale token after the hook's timeout"
    world, (victim,) = drain_world(config)
    action = world.asg.scale_in(GROUP, victim)  # no harness yet: nobody hears the event
    assert action is not None
    world.clock.advance(config.heartbeat_timeout_seconds + 1)
    assert action.ended_by == "heartbeat-timeout"
    with Harness(world, config) as harness:
        harness.deliver(action.event or {})
        harness.deliver(action.event or {})  # and once more: EventBridge delivers at least once
        record = finish(harness, name)
        outcomes = harness.outcomes()
    assert "autoscaling:CompleteLifecycleAction" not in record.api_calls
    assert "autoscaling:RecordLifecycleActionHeartbeat" not in record.api_calls
    assert [d.status for d in record.drains] == ["SUCCEEDED"]
    assert len(harness.deliveries) == 2
    (outcome,) = outcomes
    assert outcome["outcome"] == "already-ended"  # the instance has left its group
    assert (outcome["actionCompleted"], outcome["actionAlreadyEnded"]) == (False, True)


def test_group_deleted_mid_drain_fails_cleanly(config: DrainerConfig) -> None:
    """Someone force-deletes the group (its instances go, deliberately): the drain ends
    within its bounds and publishes `failed` with the error instead of retrying."""
    name = "group force-deleted mid-drain"
    world, (victim,) = drain_world(config)

    def force_delete_group() -> None:
        world.asg.groups.pop(GROUP)
        world.terminate_instance(victim, "group force-deleted")

    with Harness(world, config) as harness:
        world.asg.scale_in(GROUP, victim)
        later(world, 45, force_delete_group)
        record = finish(harness, name)
        (outcome,) = harness.outcomes()
    (drain,) = record.drains
    assert (drain.status, outcome["outcome"]) == ("FAILED", "failed")
    assert drain.virtual_seconds < 600
    # One try by the drain, one by the rescue path: a missing group is not retried.
    assert record.api_calls["autoscaling:CompleteLifecycleAction"] == 2
    assert "AutoScalingGroup demo-asg not found" in json.dumps(outcome["error"])


def test_cluster_deleted_mid_spot_drain(config: DrainerConfig) -> None:
    name = "cluster deleted during a Spot drain"
    world, (victim,) = drain_world(config)
    with Harness(world, config) as harness:
        world.spot_interrupt(victim)
        later(world, 20, lambda: world.ecs.delete_cluster(CLUSTER))
        record = finish(harness, name)
    (drain,) = record.drains
    assert (drain.status, drain.outcome) == ("SUCCEEDED", "instance-gone")
    assert drain.virtual_seconds <= 120


def test_failed_execution_whose_rescue_also_failed_is_completed_by_the_rescue_function(
    config: DrainerConfig,
) -> None:
    """Auto Scaling answers 500 to every completion for minutes: the in-machine rescue gives
    up and the execution fails. The "Execution Status Change" rule then invokes the rescue
    function, which must complete the action, not take the Fail state for a finished rescue.
    """
    name = "completion failing through the in-machine rescue"
    world, (victim,) = drain_world(config)
    attempts = 6 + 11  # "Complete lifecycle action" (1 + 5 retries), rescue step (1 + 10)
    world.inject_faults(
        "autoscaling", "CompleteLifecycleAction", code="InternalFailure", count=attempts
    )
    with Harness(world, config) as harness:
        action = world.asg.scale_in(GROUP, victim)
        record = finish(harness, name)
        (delivery,) = harness.deliveries
        assert action is not None and action.active, "the in-machine rescue should have failed"
        described = harness.sfn.describe_execution(executionArn=delivery.execution_arn)
        event = {
            "version": "0",
            "source": "aws.states",
            "detail-type": "Step Functions Execution Status Change",
            "detail": {
                "executionArn": delivery.execution_arn,
                "stateMachineArn": harness.state_machine_arn,
                "status": described["status"],
                "input": described["input"],
            },
        }
        rule = EventPattern.load(json.dumps(execution_failure_pattern(harness.state_machine_arn)))
        assert rule.matches_event(event)
        result = rescue_execution.handler(event, None)
        outcomes = harness.outcomes()
        after = harness.record()
    assert described["status"] == "FAILED"
    assert record.drains[0].outcome == "failed"
    assert result["rescued"] is True
    assert outcomes[-1]["outcome"] == "failed" and outcomes[-1]["actionCompleted"] is True
    assert after.tasks_killed == []
    tally.actions_completed(world.lifecycle_actions, name)
    tally.survived("HTTP 500 answers (ECS, Auto Scaling)", attempts)
