"""IAM as AWS would evaluate it, on the synthesized stack: each Lambda runs as its role in every
drain of the simulated world (simulated_aws/iam/authorization.py), and the alarms' publish is
allowed by the topic's and key's resource policies."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from sandbox.deployed_roles import deployed_authorizer
from sandbox.endpoint import ACCOUNT, REGION
from sandbox.harness import Harness
from simulated_aws.iam.authorization import Authorizer, Role
from simulated_aws.iam.evaluation import Decision, Principal, Request, evaluate
from simulated_aws.iam.stack_template import (
    Resolver,
    key_policies,
    synthesized,
    topic_keys,
    topic_policies,
)
from stacks.config import DrainerConfig
from tests.worlds import GROUP, drain_world

OTHER_ACCOUNT = "210987654321"


def without_grant(authorizer: Authorizer, handler: str, action: str) -> Authorizer:
    """The same IAM with `action` taken out of one function's role policies."""
    role = authorizer.roles[handler]
    policies = copy.deepcopy(list(role.policies))
    for document in policies:
        for statement in document["Statement"]:
            actions = statement["Action"]
            kept = [a for a in (actions if isinstance(actions, list) else [actions]) if a != action]
            statement["Action"] = kept or ["none:Nothing"]
    return dataclasses.replace(
        authorizer, roles={**authorizer.roles, handler: Role(role.arn, policies)}
    )


def test_every_drain_runs_as_the_functions_roles(config: DrainerConfig):
    """A drain on the real stack's IAM: every function made only calls its role allows (the
    harness fails any test whose drain was denied a call)."""
    world, (victim,) = drain_world(config)
    with Harness(world, config) as harness:
        world.asg.scale_in(GROUP, victim)
        harness.run()
        (outcome,) = harness.outcomes()
    assert outcome["outcome"] == "drained"
    assert harness.access_denied == []
    assert set(harness.authorizer.roles) >= {"complete_action.handler", "rescue_execution.handler"}


def test_a_call_outside_the_role_is_denied_and_the_drain_fails_as_in_aws(config: DrainerConfig):
    """Take CompleteLifecycleAction out of the CompleteAction role: the drain cannot complete
    the action, exactly as it would fail in AWS with that stack."""
    world, (victim,) = drain_world(config)
    iam = without_grant(
        deployed_authorizer(config),
        "complete_action.handler",
        "autoscaling:CompleteLifecycleAction",
    )
    with Harness(world, config, authorizer=iam, expect_denials=True) as harness:
        action = world.asg.scale_in(GROUP, victim)
        harness.run()
        (outcome,) = harness.outcomes()
    assert outcome["outcome"] == "failed"
    assert action.ended_by != "completed"
    assert harness.access_denied
    assert all("autoscaling:CompleteLifecycleAction" in line for line in harness.access_denied)
    assert any("AccessDenied" in error for error in harness.lambda_errors)


# --- the alarms reach the topic -------------------------------------------------------------
def alarm_publish(resolver: Resolver, alarm_arn: str, source_account: str) -> dict[str, Decision]:
    """What the topic policy and the key policy decide for CloudWatch publishing an alarm's
    notification to the outcome topic over TLS (aws:SourceArn/aws:SourceAccount are the alarm's,
    as CloudWatch sets them: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-actions.html)."""
    cloudwatch = Principal("Service", "cloudwatch.amazonaws.com")
    context: dict[str, Any] = {
        "aws:SecureTransport": True,
        "aws:SourceAccount": source_account,
        "aws:SourceArn": alarm_arn,
    }
    ((topic, policies),) = topic_policies(resolver).items()
    key = topic_keys(resolver)[topic]
    key_policy = key_policies(resolver)[key]
    decisions = {
        "sns:Publish": evaluate(policies, Request("sns:Publish", topic, context, cloudwatch))
    }
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        decisions[action] = evaluate([key_policy], Request(action, key, context, cloudwatch))
    return decisions


def test_cloudwatch_alarms_may_publish_to_the_encrypted_outcome_topic(config: DrainerConfig):
    resolver = Resolver(synthesized(config), config.stack_name, ACCOUNT, REGION)
    alarms = [resolver.get_att(i, "Arn") for i in resolver.of_type("AWS::CloudWatch::Alarm")]
    assert len(alarms) >= 2  # failed drains, undelivered events
    for alarm in alarms:
        allowed = alarm_publish(resolver, alarm, ACCOUNT)
        assert all(d is Decision.ALLOW for d in allowed.values()), (alarm, allowed)
        # The same publish for another account's alarm (the confused deputy) is refused.
        foreign = alarm.replace(f":{ACCOUNT}:", f":{OTHER_ACCOUNT}:")
        refused = alarm_publish(resolver, foreign, OTHER_ACCOUNT)
        assert refused["sns:Publish"] is not Decision.ALLOW, (foreign, refused)
        assert refused["kms:GenerateDataKey"] is not Decision.ALLOW, (foreign, refused)
