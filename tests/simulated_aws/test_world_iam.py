"""The world's IAM: the policy evaluator, the call mapping and the enforcement hook."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from simulated_aws import World
from simulated_aws.iam.authorization import Authorizer, Role, installed
from simulated_aws.iam.calls import UnmappedCall, touches
from simulated_aws.iam.evaluation import Decision, Principal, Request, UnsupportedPolicy, evaluate

ACCOUNT = "123456789012"
TASKS = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/demo/*"
TASK = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/demo/0123abcd"
OTHER_TASK = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/other/0123abcd"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def test_allow_needs_a_matching_action_and_resource():
    grant = policy(allow("ecs:StopTask", TASKS))
    assert evaluate([grant], Request("ecs:StopTask", TASK)) is Decision.ALLOW
    assert evaluate([grant], Request("ecs:StopTask", OTHER_TASK)) is Decision.IMPLICIT_DENY
    assert evaluate([grant], Request("ecs:DescribeTasks", TASK)) is Decision.IMPLICIT_DENY
    assert evaluate([], Request("ecs:StopTask", TASK)) is Decision.IMPLICIT_DENY


def test_explicit_deny_wins_over_any_allow():
    policies = [
        policy(allow("ecs:*")),
        policy({"Effect": "Deny", "Action": "ecs:StopTask", "Resource": TASKS}),
    ]
    assert evaluate(policies, Request("ecs:StopTask", TASK)) is Decision.EXPLICIT_DENY
    assert evaluate(policies, Request("ecs:StopTask", OTHER_TASK)) is Decision.ALLOW


def test_action_wildcards_are_case_insensitive_and_resource_wildcards_stay_in_their_segment():
    grant = policy(allow(["autoscaling:*LifecycleAction*", "ECS:describe?asks"], TASKS))
    assert evaluate([grant], Request("autoscaling:CompleteLifecycleAction", TASK)) is Decision.ALLOW
    assert evaluate([grant], Request("ecs:DescribeTasks", TASK)) is Decision.ALLOW
    assert evaluate([grant], Request("ecs:DescribeTaskSets", TASK)) is Decision.IMPLICIT_DENY
    groups = policy(
        allow(
            "autoscaling:CompleteLifecycleAction",
            "arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/demo-asg",
        )
    )
    group = "arn:aws:autoscaling:us-east-1:{}:autoScalingGroup:{}:autoScalingGroupName/{}"
    action = "autoscaling:CompleteLifecycleAction"
    uuid = "1b8f6c2e-0000-4000-8000-000000000000"
    assert evaluate([groups], Request(action, group.format(ACCOUNT, uuid, "demo-asg"))) is (
        Decision.ALLOW
    )
    assert evaluate([groups], Request(action, group.format(ACCOUNT, uuid, "demo-asg-2"))) is (
        Decision.IMPLICIT_DENY
    )
    # `*` in the region segment matches one segment, not `us-east-1:123…` spanning two.
    spanning = policy(allow("sns:Publish", "arn:aws:sns:*:topic"))
    assert evaluate(
        [spanning], Request("sns:Publish", f"arn:aws:sns:us-east-1:{ACCOUNT}:topic")
    ) is (Decision.IMPLICIT_DENY)


def test_not_action_and_not_resource():
    everything_but = policy(
        {"Effect": "Allow", "NotAction": "ecs:StopTask", "NotResource": OTHER_TASK}
    )
    assert evaluate([everything_but], Request("ecs:DescribeTasks", TASK)) is Decision.ALLOW
    assert evaluate([everything_but], Request("ecs:StopTask", TASK)) is Decision.IMPLICIT_DENY
    assert evaluate([everything_but], Request("ecs:DescribeTasks", OTHER_TASK)) is (
        Decision.IMPLICIT_DENY
    )


def test_condition_keys():
    cluster = f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/demo"
    in_cluster = policy(allow("ecs:ListTasks", Condition={"ArnEquals": {"ecs:cluster": cluster}}))
    assert evaluate([in_cluster], Request("ecs:ListTasks", "*", {"ecs:cluster": cluster})) is (
        Decision.ALLOW
    )
    other = cluster.replace("demo", "other")
    assert evaluate([in_cluster], Request("ecs:ListTasks", "*", {"ecs:cluster": other})) is (
        Decision.IMPLICIT_DENY
    )
    # A key the request lacks: the condition is false; negated, true; IfExists, true.
    assert evaluate([in_cluster], Request("ecs:ListTasks", "*")) is Decision.IMPLICIT_DENY
    negated = policy(allow("ecs:ListTasks", Condition={"ArnNotEquals": {"ecs:cluster": cluster}}))
    assert evaluate([negated], Request("ecs:ListTasks", "*")) is Decision.ALLOW
    if_exists = policy(
        allow("ecs:ListTasks", Condition={"ArnEqualsIfExists": {"ecs:cluster": cluster}})
    )
    assert evaluate([if_exists], Request("ecs:ListTasks", "*")) is Decision.ALLOW
    # Keys AND, values OR; key names are case-insensitive, StringLike takes wildcards.
    both = policy(
        allow(
            "cloudwatch:PutMetricData",
            Condition={
                "StringLike": {"cloudwatch:namespace": ["ECS/*", "Drainer"]},
                "Bool": {"aws:SecureTransport": "true"},
            },
        )
    )
    ok = {"CloudWatch:Namespace": "ECS/Drainer", "aws:SecureTransport": True}
    assert evaluate([both], Request("cloudwatch:PutMetricData", "*", ok)) is Decision.ALLOW
    plain = {**ok, "aws:SecureTransport": False}
    assert evaluate([both], Request("cloudwatch:PutMetricData", "*", plain)) is (
        Decision.IMPLICIT_DENY
    )
    absent = policy(allow("sns:Publish", Condition={"Null": {"aws:SourceArn": "true"}}))
    assert evaluate([absent], Request("sns:Publish", "*")) is Decision.ALLOW
    assert evaluate([absent], Request("sns:Publish", "*", {"aws:SourceArn": "x"})) is (
        Decision.IMPLICIT_DENY
    )
    any_tag = policy(
        allow("sns:Publish", Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": "a"}})
    )
    assert evaluate([any_tag], Request("sns:Publish", "*", {"aws:TagKeys": ["b", "a"]})) is (
        Decision.ALLOW
    )
    with pytest.raises(UnsupportedPolicy):
        evaluate(
            [policy(allow("sns:Publish", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))],
            Request("sns:Publish", "*", {"aws:SourceIp": "10.0.0.1"}),
        )


def test_resource_policy_principals():
    topic = f"arn:aws:sns:us-east-1:{ACCOUNT}:alarms"
    document = policy(
        allow("sns:Publish", topic, Principal={"Service": "cloudwatch.amazonaws.com"}),
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sns:Publish",
            "Resource": topic,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    )
    cloudwatch = Principal("Service", "cloudwatch.amazonaws.com")
    events = Principal("Service", "events.amazonaws.com")
    tls = {"aws:SecureTransport": True}
    assert evaluate([document], Request("sns:Publish", topic, tls, cloudwatch)) is Decision.ALLOW
    assert (
        evaluate([document], Request("sns:Publish", topic, tls, events)) is Decision.IMPLICIT_DENY
    )
    plain = {"aws:SecureTransport": False}
    assert evaluate([document], Request("sns:Publish", topic, plain, cloudwatch)) is (
        Decision.EXPLICIT_DENY
    )


# --- the call mapping ---------------------------------------------------------------------
class Place:
    partition, region, account = "aws", "us-east-1", ACCOUNT

    def group_arn(self, name: str) -> str | None:
        return None

    def group_of_instance(self, instance_id: str) -> str | None:
        return None


def test_calls_map_to_their_reference_resources_and_condition_keys():
    (listed,) = touches(
        Place(), "ecs", "ListTasks", {"cluster": "demo", "containerInstance": "abc"}
    )
    assert listed.action == "ecs:ListTasks"
    assert listed.resource == f"arn:aws:ecs:us-east-1:{ACCOUNT}:container-instance/demo/abc"
    assert listed.context == {"ecs:cluster": f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/demo"}
    described = touches(Place(), "ecs", "DescribeTasks", {"cluster": "demo", "tasks": [TASK, "x"]})
    assert [t.resource for t in described] == [TASK, TASK.replace("0123abcd", "x")]
    (completed,) = touches(
        Place(), "autoscaling", "CompleteLifecycleAction", {"AutoScalingGroupName": "demo-asg"}
    )
    assert completed.resource.endswith(":autoScalingGroupName/demo-asg")
    (put,) = touches(Place(), "cloudwatch", "PutMetricData", {"Namespace": "ECS/Drainer"})
    assert (put.resource, put.context) == ("*", {"cloudwatch:namespace": "ECS/Drainer"})
    with pytest.raises(UnmappedCall, match="ecs:DeleteCluster"):
        touches(Place(), "ecs", "DeleteCluster", {"cluster": "demo"})


# --- enforcement on real botocore calls ------------------------------------------------------
def test_a_role_gets_access_denied_for_what_its_policy_does_not_grant(world: World):
    world.add_cluster("demo")
    instance = world.add_instance(cluster="demo")
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/poll"
    grant = policy(allow("ecs:ListTasks", "arn:aws:ecs:*:*:container-instance/demo/*"))
    authorizer = Authorizer({"poll_tasks.handler": Role(role_arn, [grant])})
    ecs = boto3.client("ecs", region_name="us-east-1")
    (arn,) = ecs.list_container_instances(cluster="demo")["containerInstanceArns"]
    assert instance  # listed: the test itself runs as no role
    with installed(authorizer), authorizer.acting_as("poll_tasks.handler"):
        assert ecs.list_tasks(cluster="demo", containerInstance=arn)["taskArns"] == []
        with pytest.raises(ClientError) as denied:
            ecs.list_container_instances(cluster="demo")
        with pytest.raises(UnmappedCall):
            ecs.delete_cluster(cluster="demo")
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "ecs:ListContainerInstances" in denied.value.response["Error"]["Message"]
    assert len(authorizer.denials) == 2
