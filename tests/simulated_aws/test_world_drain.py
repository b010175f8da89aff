"""End to end through the world: an event starts a drainer thread that polls on the clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import boto3

from simulated_aws import Termination, World


def _drainer(world: World, event: dict[str, Any], wait_for_stopped: bool) -> None:
    """A tiny drainer: DRAINING, poll every 60 s (heartbeat every 10 min), then complete."""
    ecs = boto3.client("ecs")
    asg = boto3.client("autoscaling")
    detail = event["detail"]
    instance = detail["EC2InstanceId"]
    (arn,) = ecs.list_container_instances(cluster="demo", filter=f"ec2InstanceId == {instance}")[
        "containerInstanceArns"
    ]
    ecs.update_container_instances_state(
        cluster="demo", containerInstances=[arn], status="DRAINING"
    )
    polls = 0
    while True:
        world.clock.sleep(60)
        polls += 1
        ci = ecs.describe_container_instances(cluster="demo", containerInstances=[arn])
        drained = ci["containerInstances"][0]["runningTasksCount"] == 0
        if drained and wait_for_stopped:
            stopping = ecs.list_tasks(
                cluster="demo", containerInstance=arn, desiredStatus="STOPPED"
            )
            if stopping["taskArns"]:
                tasks = ecs.describe_tasks(cluster="demo", tasks=stopping["taskArns"])["tasks"]
                drained = all(t["lastStatus"] == "STOPPED" for t in tasks)
        if drained:
            break
        if polls % 10 == 0:
            asg.record_lifecycle_action_heartbeat(
                LifecycleHookName=detail["LifecycleHookName"],
                AutoScalingGroupName=detail["AutoScalingGroupName"],
                LifecycleActionToken=detail["LifecycleActionToken"],
            )
    asg.complete_lifecycle_action(
        LifecycleHookName=detail["LifecycleHookName"],
        AutoScalingGroupName=detail["AutoScalingGroupName"],
        LifecycleActionToken=detail["LifecycleActionToken"],
        LifecycleActionResult="CONTINUE",
    )


def _scenario(world: World, wait_for_stopped: bool) -> tuple[Termination, float]:
    world.add_cluster("demo")
    world.add_group("demo-asg", heartbeat_timeout=900)
    old = world.add_instance(cluster="demo", group="demo-asg")
    world.add_service("demo", "web", desired=3, deregistration_delay_seconds=300)
    world.add_instance(cluster="demo", group="demo-asg")
    actors = {"n": 0}
    lock = threading.Lock()

    def run_actor(target: Callable[[], None]) -> None:
        try:
            target()
        finally:
            with lock:
                actors["n"] -= 1

    def on_event(event: dict[str, Any]) -> None:
        if event["detail-type"] != "EC2 Instance-terminate Lifecycle Action":
            return
        with lock:
            actors["n"] += 1
        threading.Thread(
            target=run_actor, args=(lambda: _drainer(world, event, wait_for_stopped),)
        ).start()

    world.subscribe(on_event)
    wall = time.monotonic()
    world.asg.scale_in("demo-asg", old)
    assert world.clock.run(
        lambda: bool(world.terminations) and actors["n"] == 0,
        lambda: actors["n"],
        max_virtual_seconds=6 * 3600,
        wall_timeout=10,
    )
    (termination,) = world.terminations
    return termination, time.monotonic() - wall


def test_counting_running_tasks_alone_kills_tasks_still_deactivating(world: World) -> None:
    termination, wall = _scenario(world, wait_for_stopped=False)
    assert termination.cause == "completed"
    assert [status for _, status in termination.tasks_killed] == ["DEACTIVATING"] * 3
    assert wall < 2


def test_waiting_for_stopped_tasks_kills_nothing(world: World) -> None:
    termination, _ = _scenario(world, wait_for_stopped=True)
    assert termination.cause == "completed"
    assert termination.tasks_killed == []
    (action,) = world.lifecycle_actions
    # 30 s to start replacements + 300 s deregistration + 10 s stop, polled every 60 s.
    assert (termination.time - action.started).total_seconds() == 360
    counts = world.api_call_counts()
    assert counts["autoscaling:CompleteLifecycleAction"] == 1
    assert counts["ecs:DescribeContainerInstances"] == 6
