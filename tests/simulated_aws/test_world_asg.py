from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from simulated_aws import World

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "aws-sample-events"


def _setup(
    world: World, heartbeat_timeout: int = 1800, **group: Any
) -> tuple[str, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    world.subscribe(events.append)
    world.add_cluster("demo")
    world.add_group("demo-asg", "drain-hook", heartbeat_timeout=heartbeat_timeout, **group)
    instance = world.add_instance(cluster="demo", group="demo-asg")
    world.add_instance(cluster="demo", group="demo-asg")
    return instance, events


def _lifecycle_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["source"] == "aws.autoscaling"]


def test_scale_in_emits_the_event_in_aws_shape(world: World) -> None:
    instance, events = _setup(world, notification_metadata="additional-info")
    action = world.asg.scale_in("demo-asg", instance)
    assert action is not None
    (event,) = _lifecycle_events(events)
    sample = json.loads((SAMPLES / "asg-terminate-lifecycle-action.json").read_text())
    assert list(event) == list(sample)
    assert list(event["detail"]) == list(sample["detail"])
    assert event["time"] == "2026-01-05T09:00:00Z"
    assert re.fullmatch(r"[0-9a-f-]{36}", event["id"]) and event["id"] != sample["id"]
    assert re.fullmatch(
        r"arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:[0-9a-f-]{36}:"
        r"autoScalingGroupName/demo-asg",
        event["resources"][0],
    )
    detail = event["detail"]
    assert len(detail["LifecycleActionToken"]) == 36
    assert detail["LifecycleActionToken"] == action.token
    assert (detail["EC2InstanceId"], detail["LifecycleHookName"]) == (instance, "drain-hook")
    assert detail["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    asg = boto3.client("autoscaling")
    (described,) = asg.describe_auto_scaling_instances(InstanceIds=[instance])[
        "AutoScalingInstances"
    ]
    assert (described["LifecycleState"], described["AutoScalingGroupName"]) == (
        "Terminating:Wait",
        "demo-asg",
    )
    assert described["HealthStatus"] == "HEALTHY"


def test_warm_pool_events_carry_origin_and_destination(world: World) -> None:
    instance, events = _setup(world, warm_pool=True, notification_metadata="additional-info")
    world.asg.scale_in("demo-asg", instance, destination="WarmPool")
    (event,) = _lifecycle_events(events)
    sample = json.loads(
        (SAMPLES / "asg-terminate-lifecycle-action-warmpool-origin-dest.json").read_text()
    )
    assert list(event["detail"]) == list(sample["detail"])
    assert (event["detail"]["Origin"], event["detail"]["Destination"]) == (
        "AutoScalingGroup",
        "WarmPool",
    )


def test_heartbeat_timeout_terminates_with_the_default_result(world: World) -> None:
    instance, _ = _setup(world, heartbeat_timeout=300)
    world.add_service("demo", "web", desired=2, start_seconds=1000)
    action = world.asg.scale_in("demo-asg", instance)
    assert action is not None
    world.clock.advance(299)
    assert world.terminations == []
    world.clock.advance(1)
    (termination,) = world.terminations
    assert (termination.instance_id, termination.cause) == (instance, "heartbeat-timeout")
    assert termination.time == action.started + timedelta(seconds=300)
    assert [status for _, status in termination.tasks_killed] == ["RUNNING"]
    assert (action.ended_by, action.result, action.completed_at) == (
        "heartbeat-timeout",
        "CONTINUE",
        None,
    )
    asg = boto3.client("autoscaling")
    assert asg.describe_auto_scaling_instances(InstanceIds=[instance])["AutoScalingInstances"] == []


def test_heartbeats_extend_until_the_global_timeout(world: World) -> None:
    instance, _ = _setup(world, heartbeat_timeout=1800)
    action = world.asg.scale_in("demo-asg", instance)
    assert action is not None
    # min(172800, 100 x 1800) = 48 h
    assert action.global_deadline - action.started == timedelta(hours=48)
    asg = boto3.client("autoscaling")
    beats = 0
    while not world.terminations:
        world.clock.advance(1500)
        if action.active:
            asg.record_lifecycle_action_heartbeat(
                LifecycleHookName="drain-hook",
                AutoScalingGroupName="demo-asg",
                LifecycleActionToken=action.token,
            )
            beats += 1
    (termination,) = world.terminations
    assert termination.cause == "global-timeout"
    assert termination.time == action.started + timedelta(hours=48)
    assert len(action.heartbeats) == beats == 172800 // 1500
    with pytest.raises(
        ClientError, match=f"No active Lifecycle Action found with token {action.token}"
    ):
        asg.record_lifecycle_action_heartbeat(
            LifecycleHookName="drain-hook",
            AutoScalingGroupName="demo-asg",
            LifecycleActionToken=action.token,
        )


def test_global_timeout_is_100_heartbeats_when_shorter(world: World) -> None:
    instance, _ = _setup(world, heartbeat_timeout=300)
    action = world.asg.scale_in("demo-asg", instance)
    assert action is not None
    assert action.global_deadline - action.started == timedelta(seconds=30000)
    hook = world.asg.groups["demo-asg"].hooks["drain-hook"]
    assert (hook.heartbeat_timeout, hook.global_timeout) == (300, 30000)


def test_complete_twice_second_answers_no_active_action(world: World) -> None:
    instance, _ = _setup(world)
    world.add_service("demo", "web", desired=2)
    action = world.asg.scale_in("demo-asg", instance)
    assert action is not None
    world.clock.advance(600)
    asg = boto3.client("autoscaling")
    kwargs = {
        "LifecycleHookName": "drain-hook",
        "AutoScalingGroupName": "demo-asg",
        "LifecycleActionToken": action.token,
        "LifecycleActionResult": "CONTINUE",
    }
    asg.complete_lifecycle_action(**kwargs)
    (termination,) = world.terminations
    assert (termination.cause, termination.time) == ("completed", world.clock.now())
    assert (action.ended_by, action.result, action.completed_at) == (
        "completed",
        "CONTINUE",
        world.clock.now(),
    )
    with pytest.raises(ClientError) as caught:
        asg.complete_lifecycle_action(**kwargs)
    assert caught.value.response["Error"] == {
        "Code": "ValidationError",
        "Message": f"No active Lifecycle Action found with token {action.token}",
        "Type": "Sender",
    }
    by_instance = {k: v for k, v in kwargs.items() if k != "LifecycleActionToken"}
    with pytest.raises(
        ClientError, match=f"No active Lifecycle Action found with instance ID {instance}"
    ):
        asg.complete_lifecycle_action(InstanceId=instance, **by_instance)
    with pytest.raises(ClientError, match="ValidationError"):
        asg.complete_lifecycle_action(**{**kwargs, "AutoScalingGroupName": "nope"})
    assert world.api_call_counts() == {"autoscaling:CompleteLifecycleAction": 4}


def test_complete_by_instance_id_with_abandon(world: World) -> None:
    instance, _ = _setup(world)
    action = world.asg.scale_in("demo-asg", instance)
    assert action is not None
    boto3.client("autoscaling").complete_lifecycle_action(
        LifecycleHookName="drain-hook",
        AutoScalingGroupName="demo-asg",
        InstanceId=instance,
        LifecycleActionResult="ABANDON",
    )
    assert (action.ended_by, action.result) == ("completed", "ABANDON")
    assert world.terminations[0].cause == "completed"


def test_terminate_instance_in_group_starts_the_hook_and_replaces(world: World) -> None:
    instance, events = _setup(world)
    world.add_service("demo", "web", desired=2)
    asg = boto3.client("autoscaling")
    ecs = boto3.client("ecs")
    activity = asg.terminate_instance_in_auto_scaling_group(
        InstanceId=instance, ShouldDecrementDesiredCapacity=False
    )["Activity"]
    assert activity["StatusCode"] == "InProgress" and instance in activity["Description"]
    (event,) = _lifecycle_events(events)
    assert event["detail"]["EC2InstanceId"] == instance
    assert len(ecs.list_container_instances(cluster="demo")["containerInstanceArns"]) == 3
    group = world.asg.groups["demo-asg"]
    assert group.desired == 2 and len(group.instances) == 3
    with pytest.raises(ClientError, match="ValidationError"):
        asg.terminate_instance_in_auto_scaling_group(
            InstanceId=instance, ShouldDecrementDesiredCapacity=False
        )
    with pytest.raises(ClientError, match="No managed instance found"):
        asg.terminate_instance_in_auto_scaling_group(
            InstanceId="i-0123456789abcdef0", ShouldDecrementDesiredCapacity=True
        )
    other = next(i for i in world.asg.groups["demo-asg"].instances if i != instance)
    asg.terminate_instance_in_auto_scaling_group(
        InstanceId=other, ShouldDecrementDesiredCapacity=True
    )
    assert group.desired == 1
    assert len(world.lifecycle_actions) == 2


def test_lifecycle_action_tokens_and_ids_are_reproducible() -> None:
    def tokens() -> list[str]:
        world = World()
        world.add_cluster("demo")
        world.add_group("g")
        instance = world.add_instance(cluster="demo", group="g")
        action = world.asg.scale_in("g", instance)
        assert action is not None
        return [instance, action.token]

    assert tokens() == tokens()


def _two_hooks(world: World) -> tuple[str, list[dict[str, Any]], Any, Any]:
    """demo-asg with the drainer's hook and ECS managed draining's, an instance scaled in."""
    instance, events = _setup(world, heartbeat_timeout=1800)
    world.add_hook("demo-asg", "ecs-managed-draining-termination-hook", heartbeat_timeout=3600)
    ours = world.asg.scale_in("demo-asg", instance)
    (theirs,) = [a for a in world.lifecycle_actions if a is not ours]
    return instance, events, ours, theirs


def _complete(action: Any, result: str = "CONTINUE") -> None:
    boto3.client("autoscaling").complete_lifecycle_action(
        LifecycleHookName=action.hook,
        AutoScalingGroupName="demo-asg",
        LifecycleActionToken=action.token,
        LifecycleActionResult=result,
    )


def _state(instance: str) -> str:
    asg = boto3.client("autoscaling")
    described = asg.describe_auto_scaling_instances(InstanceIds=[instance])["AutoScalingInstances"]
    return described[0]["LifecycleState"] if described else "gone"


def test_every_terminate_hook_gets_its_own_action_and_event(world: World) -> None:
    instance, events, ours, theirs = _two_hooks(world)
    assert (ours.hook, theirs.hook) == ("drain-hook", "ecs-managed-draining-termination-hook")
    assert ours.token != theirs.token
    assert theirs.heartbeat_deadline - theirs.started == timedelta(seconds=3600)
    details = [event["detail"] for event in _lifecycle_events(events)]
    assert [(d["LifecycleHookName"], d["LifecycleActionToken"]) for d in details] == [
        ("drain-hook", ours.token),
        ("ecs-managed-draining-termination-hook", theirs.token),
    ]
    assert _state(instance) == "Terminating:Wait"


def test_the_instance_stays_until_every_hook_is_complete(world: World) -> None:
    instance, _, ours, theirs = _two_hooks(world)
    world.clock.advance(600)
    _complete(ours)
    assert (ours.ended_by, theirs.active) == ("completed", True)
    assert world.terminations == []
    assert _state(instance) == "Terminating:Wait"
    world.clock.advance(3600 - 600 - 1)
    assert world.terminations == []
    world.clock.advance(1)  # the other hook's heartbeat timeout, default result CONTINUE
    (termination,) = world.terminations
    assert (termination.instance_id, termination.cause) == (instance, "heartbeat-timeout")
    assert (theirs.ended_by, theirs.result) == ("heartbeat-timeout", "CONTINUE")
    assert _state(instance) == "gone"


def test_the_last_hook_completed_lets_the_instance_go(world: World) -> None:
    instance, _, ours, theirs = _two_hooks(world)
    _complete(theirs)
    world.clock.advance(60)
    assert world.terminations == [] and ours.active
    _complete(ours)
    (termination,) = world.terminations
    assert (termination.instance_id, termination.cause) == (instance, "completed")
    assert termination.time == world.clock.now()


def test_abandon_on_one_hook_ends_the_others(world: World) -> None:
    # "abandon stops any remaining actions, such as other lifecycle hooks" (Auto Scaling user
    # guide, lifecycle hooks): the instance goes at once.
    instance, _, ours, theirs = _two_hooks(world)
    _complete(theirs, "ABANDON")
    assert (ours.ended_by, ours.active) == ("abandoned", False)
    (termination,) = world.terminations
    assert (termination.instance_id, termination.cause) == (instance, "completed")


def test_describe_lifecycle_hooks_lists_every_hook_of_the_group(world: World) -> None:
    _setup(world, heartbeat_timeout=300)
    world.add_hook("demo-asg", "ecs-managed-draining-termination-hook")
    asg = boto3.client("autoscaling")
    hooks = asg.describe_lifecycle_hooks(AutoScalingGroupName="demo-asg")["LifecycleHooks"]
    assert [(h["LifecycleHookName"], h["LifecycleTransition"]) for h in hooks] == [
        ("drain-hook", "autoscaling:EC2_INSTANCE_TERMINATING"),
        ("ecs-managed-draining-termination-hook", "autoscaling:EC2_INSTANCE_TERMINATING"),
    ]
    assert (hooks[0]["HeartbeatTimeout"], hooks[0]["GlobalTimeout"]) == (300, 30000)
    named = asg.describe_lifecycle_hooks(
        AutoScalingGroupName="demo-asg", LifecycleHookNames=["drain-hook"]
    )["LifecycleHooks"]
    assert [h["LifecycleHookName"] for h in named] == ["drain-hook"]
    with pytest.raises(ClientError, match="ValidationError"):
        asg.describe_lifecycle_hooks(AutoScalingGroupName="no-such-group")
