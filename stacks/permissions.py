"""A function's declared grants (stacks/functions.py) as the stack deploys them: statements on the
function's own role, and a cdk-nag acknowledgment for each wildcard they need, with its reason."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn

from drainer.notices import EVENT_SOURCE
from stacks.config import DrainerConfig
from stacks.functions import Function, On

# Publishing to the KMS-encrypted topic: CDK's grant_publish adds this action on the topic's key.
TOPIC_KEY_FINDING = "Action::kms:GenerateDataKey*"
EVERY_VERSION_REASON = (
    "Each execution invokes the function versions published when it started, and keeps them "
    "after a deploy publishes new ones; their numbers are unknown here. No alias exists."
)


@dataclass(frozen=True)
class Resources:
    """What each kind of resource a grant names (functions.On) stands for in one stack."""

    stack: Stack
    config: DrainerConfig
    claims: dynamodb.TableV2
    topic: sns.Topic
    state_machine: sfn.StateMachine
    dead_letters: sqs.Queue

    def arns(self, kind: On) -> list[str]:
        stack, config = self.stack, self.config
        if kind is On.CLUSTERS:
            return [
                stack.format_arn(service="ecs", resource="cluster", resource_name=name)
                for name in config.cluster_names
            ]
        if kind in _ECS_KINDS:
            return [
                stack.format_arn(
                    service="ecs", resource=_ECS_KINDS[kind], resource_name=f"{name}/*"
                )
                for name in config.cluster_names
            ]
        if kind is On.GROUPS:
            return [
                stack.format_arn(
                    service="autoscaling",
                    resource="autoScalingGroup",
                    resource_name=f"*:autoScalingGroupName/{name}",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
                for name in config.auto_scaling_group_names
            ]
        if kind is On.CLAIMS_TABLE:
            return [self.claims.table_arn]
        if kind is On.OUTCOME_TOPIC:
            return [self.topic.topic_arn]
        if kind is On.DRAIN_EVENTS:
            bus = stack.format_arn(service="events", resource="event-bus", resource_name="default")
            return [bus]
        if kind is On.OWN_EXECUTIONS:
            return [
                stack.format_arn(
                    service="states",
                    resource="execution",
                    resource_name=f"{self.state_machine.state_machine_name}:*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ]
        if kind is On.STATE_MACHINE:
            return [self.state_machine.state_machine_arn]
        if kind is On.DEAD_LETTERS:
            return [self.dead_letters.queue_arn]
        return ["*"]


# PutEvents takes the events:source condition key (Service Authorization Reference, Amazon
# EventBridge): the functions may put the drainer's own events only, never one a rule of this
# or any other stack takes for AWS's (and AWS refuses `aws.*` sources anyway).
CONDITIONS: dict[On, dict[str, Any]] = {
    On.DRAIN_EVENTS: {"StringEquals": {"events:source": EVENT_SOURCE}},
}

_ECS_KINDS = {
    On.CONTAINER_INSTANCES: "container-instance",
    On.TASKS: "task",
    On.SERVICES: "service",
}


def grant(resources: Resources, declaration: Function, function: lambda_.Function) -> None:
    """The declaration's grants on the function's role, and their acknowledged findings."""
    for declared in declaration.grants_for(resources.config):
        if declared.on is On.OUTCOME_TOPIC:
            resources.topic.grant_publish(function)  # sns:Publish, and the key's data key
        elif declared.on is On.DEAD_LETTERS:
            # The function's dead_letter_queue (stack) adds sqs:SendMessage on the queue.
            continue
        else:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=list(declared.actions),
                    resources=resources.arns(declared.on),
                    conditions=CONDITIONS.get(declared.on),
                )
            )
    for finding, reason in wildcard_findings(resources, declaration).items():
        acknowledge(function.role, finding, reason)


def wildcard_findings(resources: Resources, declaration: Function) -> dict[str, str]:
    """cdk-nag finding (as it names it) → reason, for every wildcard the grants need."""
    reasons: dict[str, list[str]] = {}
    for declared in declaration.grants_for(resources.config):
        reason = declared.wildcard_reason
        if reason is None:
            continue
        if declared.on is On.OUTCOME_TOPIC:
            findings = [TOPIC_KEY_FINDING]
        else:
            shown = (as_nag_shows(resources.stack, arn) for arn in resources.arns(declared.on))
            findings = [f"Resource::{arn}" for arn in shown if "*" in arn]
        for finding in findings:
            if reason not in reasons.setdefault(finding, []):
                reasons[finding].append(reason)
    return {finding: " ".join(texts) for finding, texts in reasons.items()}


def allow_invoking_every_version(
    state_machine: sfn.StateMachine, functions: Iterable[lambda_.Function]
) -> None:
    """The definition invokes published versions. An execution started before a deploy keeps
    invoking the versions of its start under the same role, so the role may invoke every
    version of these functions (`<arn>:*`) and nothing else: not the unqualified function
    (no state calls it), not any other function."""
    functions = list(functions)
    state_machine.add_to_role_policy(
        iam.PolicyStatement(
            actions=["lambda:InvokeFunction"],
            resources=[f"{function.function_arn}:*" for function in functions],
        )
    )
    stack = Stack.of(state_machine)
    for function in functions:
        shown = as_nag_shows(stack, f"{function.function_arn}:*")
        acknowledge(state_machine.role, f"Resource::{shown}", EVERY_VERSION_REASON)


def acknowledge(role: iam.IRole | None, finding: str, reason: str) -> None:
    cdk.Validations.of(role).acknowledge(
        cdk.Acknowledgment(id=f"AwsSolutions::AwsSolutions-IAM5[{finding}]", reason=reason)
    )


def as_nag_shows(stack: Stack, value: str) -> str:
    """An ARN as cdk-nag prints it in a finding: joined, with every reference as <…>."""
    return reference_text(stack.resolve(value))


def reference_text(node: Any) -> str:
    """A resolved template value joined into text, with every reference written as <…>."""
    if isinstance(node, str):
        return node
    if "Fn::Join" in node:
        separator, parts = node["Fn::Join"]
        return separator.join(reference_text(part) for part in parts)
    if "Ref" in node:
        return f"<{node['Ref']}>"
    if "Fn::GetAtt" in node:
        logical_id, attribute = node["Fn::GetAtt"]
        return f"<{logical_id}.{attribute}>"
    raise ValueError(f"no cdk-nag form for {node}")
