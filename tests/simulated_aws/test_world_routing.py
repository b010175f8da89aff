from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from simulated_aws import World


def test_calls_inside_mock_aws_are_answered_by_the_world() -> None:
    world = World()
    world.add_cluster("demo")
    world.add_instance(cluster="demo")
    with mock_aws():
        ecs = boto3.client("ecs", region_name="us-east-1")
        with world.install():
            arns = ecs.list_container_instances(cluster="demo")["containerInstanceArns"]
            # A client from another session, created after install, is routed too.
            other = boto3.session.Session().client("ecs", region_name="us-east-1")
            assert other.list_container_instances(cluster="demo")["containerInstanceArns"] == arns
        assert [arn.rsplit("/", 2)[0] for arn in arns] == [
            "arn:aws:ecs:us-east-1:123456789012:container-instance"
        ]
        # Uninstalled: the same client falls through to moto, which has no container instances.
        assert ecs.list_container_instances(cluster="demo")["containerInstanceArns"] == []
    assert world.api_call_counts() == {"ecs:ListContainerInstances": 2}


def test_other_services_stay_on_moto(world: World) -> None:
    sns = boto3.client("sns")
    sns.create_topic(Name="drains")
    assert len(sns.list_topics()["Topics"]) == 1
    assert world.api_calls == []


def test_unimplemented_operation_is_loud(world: World) -> None:
    ecs = boto3.client("ecs")
    with pytest.raises(ClientError) as caught:
        ecs.create_cluster(clusterName="x")
    assert caught.value.response["Error"]["Code"] == "WorldNotImplemented"
    assert "ecs:CreateCluster" in caught.value.response["Error"]["Message"]
    asg = boto3.client("autoscaling")
    with pytest.raises(ClientError, match="autoscaling:PutLifecycleHook"):
        asg.put_lifecycle_hook(LifecycleHookName="h", AutoScalingGroupName="g")


def test_api_calls_are_recorded_with_virtual_time_and_outcome(world: World) -> None:
    world.add_cluster("demo")
    ecs = boto3.client("ecs")
    ecs.list_container_instances(cluster="demo")
    world.clock.advance(90)
    with pytest.raises(ecs.exceptions.ClusterNotFoundException):
        ecs.list_container_instances(cluster="nope")
    first, second = world.api_calls
    assert (first.operation, first.outcome, first.time) == (
        "ListContainerInstances",
        "ok",
        world.clock.now() - timedelta(seconds=90),
    )
    assert second.outcome == "ClusterNotFoundException"
    assert second.params == {"cluster": "nope"}
    assert world.api_call_counts() == {"ecs:ListContainerInstances": 2}


def test_injected_faults_fail_the_next_calls_then_stop(world: World) -> None:
    world.add_cluster("demo")
    world.add_instance(cluster="demo")
    ecs = boto3.client("ecs")
    fault = world.inject_faults("ecs", "ListContainerInstances", "ServerException", count=2)
    for _ in range(2):
        with pytest.raises(ClientError) as caught:
            ecs.list_container_instances(cluster="demo")
        assert caught.value.response["Error"]["Code"] == "ServerException"
        # No botocore retry: the world answered before the HTTP layer.
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert ecs.list_container_instances(cluster="demo")["containerInstanceArns"]
    assert fault.hits == 2 and fault.exhausted

    asg = boto3.client("autoscaling")
    world.inject_faults(
        "autoscaling",
        "*",
        "Throttling",
        count=None,
        predicate=lambda p: p.get("InstanceIds") == ["i-1"],
    )
    assert asg.describe_auto_scaling_instances(InstanceIds=["i-2"])["AutoScalingInstances"] == []
    with pytest.raises(ClientError, match="Rate exceeded") as caught:
        asg.describe_auto_scaling_instances(InstanceIds=["i-1"])
    assert caught.value.response["Error"]["Code"] == "Throttling"


def test_ecs_throttling_token_bucket_refills_on_the_virtual_clock(world: World) -> None:
    world.add_cluster("demo")
    world.ecs.set_throttle(rate_per_s=1, burst=3)
    ecs = boto3.client("ecs")
    for _ in range(3):
        ecs.list_container_instances(cluster="demo")
    with pytest.raises(ClientError) as caught:
        ecs.list_container_instances(cluster="demo")
    assert caught.value.response["Error"] == {
        "Code": "ThrottlingException",
        "Message": "Rate exceeded",
    }
    ecs.list_tasks(cluster="demo")  # its own bucket: per operation
    world.clock.advance(2)
    ecs.list_container_instances(cluster="demo")
    ecs.list_container_instances(cluster="demo")
    with pytest.raises(ClientError, match="ThrottlingException"):
        ecs.list_container_instances(cluster="demo")
    world.ecs.set_throttle(None)
    ecs.list_container_instances(cluster="demo")
    outcomes = [c.outcome for c in world.api_calls if c.operation == "ListContainerInstances"]
    assert outcomes.count("ThrottlingException") == 2


def test_autoscaling_throttling_shares_one_bucket(world: World) -> None:
    world.add_group("g")
    world.asg.set_throttle(rate_per_s=0.5, burst=1)
    asg = boto3.client("autoscaling")
    asg.describe_auto_scaling_instances()
    heartbeat = {"AutoScalingGroupName": "g", "LifecycleHookName": "h", "InstanceId": "i-1"}
    with pytest.raises(ClientError) as caught:
        asg.record_lifecycle_action_heartbeat(**heartbeat)
    assert caught.value.response["Error"]["Code"] == "Throttling"
    world.clock.advance(2)
    with pytest.raises(ClientError) as caught:  # past the bucket: no such action
        asg.record_lifecycle_action_heartbeat(**heartbeat)
    assert caught.value.response["Error"]["Code"] == "ValidationError"
