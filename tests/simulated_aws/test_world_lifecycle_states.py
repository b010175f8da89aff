"""Auto Scaling lifecycle states as DescribeAutoScalingInstances reports them, and EC2 tags.

States per the EC2 Auto Scaling user guide ("Amazon EC2 Auto Scaling instance lifecycle";
"Use lifecycle hooks with a warm pool",
https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html).
"""

from __future__ import annotations

import boto3

from simulated_aws import World


def _state(instance_id: str) -> str | None:
    found = boto3.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[instance_id])
    instances = found["AutoScalingInstances"]
    return instances[0]["LifecycleState"] if instances else None


def _complete(action) -> None:  # type: ignore[no-untyped-def]
    boto3.client("autoscaling").complete_lifecycle_action(
        AutoScalingGroupName=action.group,
        LifecycleHookName=action.hook,
        LifecycleActionToken=action.token,
        LifecycleActionResult="CONTINUE",
    )


def _group(world: World, **group: object) -> tuple[str, str]:
    world.add_cluster("demo")
    world.add_group("demo-asg", "drain-hook", **group)  # type: ignore[arg-type]
    first = world.add_instance(cluster="demo", group="demo-asg")
    second = world.add_instance(cluster="demo", group="demo-asg")
    return first, second


def test_a_terminating_instance_waits_then_leaves_the_group(world: World) -> None:
    instance, _ = _group(world)
    assert _state(instance) == "InService"
    action = world.asg.scale_in("demo-asg", instance)
    assert _state(instance) == "Terminating:Wait"
    _complete(action)
    assert _state(instance) is None  # Terminating:Proceed, Terminated, then gone
    assert world.instances[instance].state == "terminated"


def test_standby_is_no_terminate_wait(world: World) -> None:
    instance, _ = _group(world)
    world.asg.enter_standby(instance)
    assert _state(instance) == "Standby"


def test_warm_pool_return_and_termination(world: World) -> None:
    instance, _ = _group(world, warm_pool=True)
    action = world.asg.scale_in("demo-asg", instance, destination="WarmPool")
    assert _state(instance) == "Warmed:Pending:Wait"
    _complete(action)
    # Back in the pool: stopped, still in the group, gone from ECS with its tasks.
    assert _state(instance) == "Warmed:Stopped"
    assert world.instances[instance].state == "stopped"
    assert world.ecs.container_instance(instance).status == "INACTIVE"
    leaving = world.asg.terminate_from_warm_pool("demo-asg", instance)
    assert leaving is not None
    assert (leaving.origin, leaving.destination) == ("WarmPool", "EC2")
    assert _state(instance) == "Warmed:Terminating:Wait"
    _complete(leaving)
    assert _state(instance) is None


def test_describe_tags_filters_by_instance_and_key(world: World) -> None:
    tagged = world.add_instance(tags={"ecs-drainer:test-events": "allow", "team": "web"})
    world.add_instance(tags={"ecs-drainer:test-events": "allow"})
    found = boto3.client("ec2").describe_tags(
        Filters=[
            {"Name": "resource-id", "Values": [tagged]},
            {"Name": "key", "Values": ["ecs-drainer:test-events"]},
        ]
    )["Tags"]
    assert found == [
        {
            "Key": "ecs-drainer:test-events",
            "ResourceId": tagged,
            "ResourceType": "instance",
            "Value": "allow",
        }
    ]
    assert world.api_call_counts() == {"ec2:DescribeTags": 1}
