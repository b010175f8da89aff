"""Least privilege, on the synthesized template (cdk-nag AwsSolutions on): every mutating permission
scoped, no wildcard, forged sources matched by no rule, who may publish, invoke and assume, and
every policy within IAM's size quotas.

Synthesized once with two clusters, two groups and the test-event source switched off.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks
from moto.events.models import EventPattern

from drainer.parsers import lifecycle, rebalance, spot
from stacks import iam_limits
from stacks.config import CLUSTER_NAME, GROUP_NAME, DrainerConfig, load_config
from stacks.definition import FUNCTIONS, RESCUE_FUNCTION
from stacks.drainer_stack import DrainerStack
from stacks.functions import On
from tests.conftest import ROOT
from tests.template.synthesis import (
    CLUSTERS,
    GROUPS,
    as_list,
    render,
    role_names,
    synth,
    synthesized_for_two_clusters,
)

ACCOUNT, REGION = "123456789012", "us-east-1"
HOOK = "ecs-drainer"

# Every mutating permission, the resource ARN pattern it must be confined to, and the only
# roles that may hold it.
ECS_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:{{kind}}/{{name}}/*"
GROUP_ARN = (
    f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/{{name}}"
)
MUTATING: dict[str, tuple[str, set[str]]] = {
    "ecs:UpdateContainerInstancesState": (
        ECS_ARN.replace("{kind}", "container-instance"),
        {"StartDrain", "ReactivateInstance"},  # DRAINING; ACTIVE for a parked Spot instance
    ),
    "ecs:StopTask": (ECS_ARN.replace("{kind}", "task"), {"StopTasks"}),
    "autoscaling:CompleteLifecycleAction": (GROUP_ARN, {"CompleteAction", "RescueExecution"}),
    "autoscaling:RecordLifecycleActionHeartbeat": (
        GROUP_ARN,
        {"PollTasks", "RecordHeartbeat", "RescueExecution"},
    ),
    "autoscaling:TerminateInstanceInAutoScalingGroup": (GROUP_ARN, {"ReplaceInstance"}),
}


@pytest.fixture(scope="module")
def synthesized() -> tuple[DrainerConfig, DrainerStack, dict[str, Any]]:
    return synthesized_for_two_clusters()


def statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every policy document anywhere in the template, with its resource."""

    def walk(node: Any, owner: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if isinstance(node, dict):
            if "Statement" in node and "Version" in node:
                for statement in as_list(node["Statement"]):
                    yield owner, statement
                return
            for child in node.values():
                yield from walk(child, owner)
        elif isinstance(node, list):
            for child in node:
                yield from walk(child, owner)

    for logical_id, resource in template["Resources"].items():
        yield from walk(resource.get("Properties", {}), logical_id)


def test_every_mutating_permission_is_scoped_to_the_configured_clusters_and_groups(
    synthesized: tuple[DrainerConfig, DrainerStack, dict[str, Any]],
) -> None:
    _, stack, template = synthesized
    names = role_names(stack, template)
    assert set(names.values()) >= {f.name for f in (*FUNCTIONS, RESCUE_FUNCTION)}
    held: dict[str, set[str]] = {action: set() for action in MUTATING}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        roles = [names[role["Ref"]] for role in resource["Properties"]["Roles"]]
        for statement in as_list(resource["Properties"]["PolicyDocument"]["Statement"]):
            for action in set(as_list(statement["Action"])) & set(MUTATING):
                pattern, _ = MUTATING[action]
                expected = sorted(
                    pattern.replace("{name}", name)
                    for name in (CLUSTERS if action.startswith("ecs:") else GROUPS)
                )
                got = sorted(render(arn) for arn in as_list(statement["Resource"]))
                assert got == expected, (roles, action, got)
                assert statement["Effect"] == "Allow" and "Condition" not in statement
                for role in roles:
                    held[action].add(role)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Role":
            assert "ManagedPolicyArns" not in resource["Properties"]
            assert "Policies" not in resource["Properties"]
    assert held == {action: roles for action, (_, roles) in MUTATING.items()}


def policy_statements(template: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every statement of the stack's IAM policies (AWS::IAM::Policy resources only)."""
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy":
            yield from resource["Properties"]["PolicyDocument"]["Statement"]


def test_mutating_permissions_name_a_configured_cluster_or_group_never_star(synthesized):
    _, _, template = synthesized
    seen = set()
    for statement in policy_statements(template):
        actions = set(as_list(statement["Action"]))
        mutating = actions & set(MUTATING)
        if not mutating:
            continue
        seen |= mutating
        resources = [json.dumps(resource) for resource in as_list(statement["Resource"])]
        assert '"*"' not in resources, f"{mutating} granted on *"
        for resource in resources:
            if mutating & {"ecs:UpdateContainerInstancesState", "ecs:StopTask"}:
                assert "prod-a/*" in resource or "prod-b/*" in resource, resource
            else:
                assert (
                    "autoScalingGroupName/asg-a" in resource
                    or "autoScalingGroupName/asg-b" in resource
                ), resource
    assert seen == set(MUTATING)


def test_cdk_nag_fails_synthesis_on_a_wildcard_resource(synthesized):
    # The module fixture synthesized with the AwsSolutions pack; this proves the check bites.
    config, _, _ = synthesized

    def grant_star(stack):
        stack.functions["StopTasks"].add_to_role_policy(
            iam.PolicyStatement(actions=["ecs:StopTask"], resources=["*"])
        )

    with pytest.raises(RuntimeError, match=r"(?s)ValidationFailed.*IAM5\[Resource::\*\]"):
        synth(config, tamper=grant_star)


def test_no_statement_grants_a_wildcard_over_a_mutating_action(
    synthesized: tuple[DrainerConfig, DrainerStack, dict[str, Any]],
) -> None:
    _, _, template = synthesized
    checked = 0
    for owner, statement in statements(template):
        checked += 1
        if statement.get("Effect") != "Allow":
            continue
        assert "NotAction" not in statement, owner
        assert "NotResource" not in statement, owner
        for action in as_list(statement.get("Action", [])):
            assert action not in ("*", "*:*"), (owner, statement)
            wildcard = "*" in action or "?" in action
            covered = [m for m in MUTATING if fnmatch.fnmatchcase(m.lower(), action.lower())]
            assert not (wildcard and covered), (owner, action, covered)
            assert not action.lower().startswith(("ecs:*", "autoscaling:*")), (owner, action)
    assert checked >= 30  # every Lambda role, the state machine's, the key and queue policies


def test_no_rule_matches_a_custom_source_when_test_events_are_off(
    synthesized: tuple[DrainerConfig, DrainerStack, dict[str, Any]],
) -> None:
    _, _, template = synthesized
    patterns = [
        EventPattern.load(json.dumps(rule["Properties"]["EventPattern"]))
        for rule in template["Resources"].values()
        if rule["Type"] == "AWS::Events::Rule"
    ]
    assert len(patterns) == 7
    ours = {
        "LifecycleTransition": lifecycle.TERMINATING,
        "AutoScalingGroupName": GROUPS[0],
        "LifecycleHookName": HOOK,
        "EC2InstanceId": "i-0aaaaaaaaaaaaaaa1",
        "LifecycleActionToken": "c0ffee00-0000-4000-8000-000000000001",
    }
    events = [
        (lifecycle.SOURCE, lifecycle.DETAIL_TYPE, ours),
        (spot.SOURCE, spot.DETAIL_TYPE, {"instance-id": "i-0aaaaaaaaaaaaaaa1"}),
        (rebalance.SOURCE, rebalance.DETAIL_TYPE, {"instance-id": "i-0aaaaaaaaaaaaaaa1"}),
    ]
    for aws_source, detail_type, detail in events:
        event = {"source": aws_source, "detail-type": detail_type, "detail": detail}
        assert sum(p.matches_event(event) for p in patterns) == 1, detail_type
        for custom in ("ecs-drainer.test", "my.app", "ecs-drainer"):
            forged = {**event, "source": custom}
            assert not any(p.matches_event(forged) for p in patterns), (custom, detail_type)


def test_cdk_nag_fails_synthesis_on_a_wildcard_action(
    synthesized: tuple[DrainerConfig, DrainerStack, dict[str, Any]],
) -> None:
    """The fixture synthesized cleanly with the AwsSolutions pack; a deliberate `autoscaling:*`
    on the configured groups (resource-scoped, action-wide) makes it fail."""
    config, _, _ = synthesized

    def grant_all_autoscaling(tampered: DrainerStack) -> None:
        tampered.functions["CompleteAction"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["autoscaling:*"], resources=tampered.targets.arns(On.GROUPS)
            )
        )

    with pytest.raises(RuntimeError, match=r"(?s)ValidationFailed.*IAM5\[Action::autoscaling:\*\]"):
        synth(config, tamper=grant_all_autoscaling)


def resolved(value: Any) -> Any:
    """A policy fragment with every Fn::Join rendered (see render)."""
    if isinstance(value, dict) and "Fn::Join" in value:
        return render(value)
    if isinstance(value, dict):
        return {key: resolved(item) for key, item in value.items()}
    if isinstance(value, list):
        return [resolved(item) for item in value]
    return value


def logical_ref(stack: DrainerStack, construct: Any) -> dict[str, str]:
    return {"Ref": stack.resolve(stack.get_logical_id(construct.node.default_child))}


def from_this_stacks_alarms(template: dict[str, Any]) -> dict[str, Any]:
    """The source conditions that name exactly this stack's alarms."""
    names = [
        resource["Properties"]["AlarmName"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert len(names) == 2
    return {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnEquals": {
            "aws:SourceArn": sorted(
                f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{n}" for n in names
            )
        },
    }


def sorted_conditions(condition: dict[str, Any]) -> dict[str, Any]:
    return {
        operator: {
            key: sorted(as_list(value)) if isinstance(value, list) else value
            for key, value in keys.items()
        }
        for operator, keys in resolved(condition).items()
    }


def test_the_alarms_may_publish_to_the_ssl_only_topic(
    synthesized: tuple[DrainerConfig, DrainerStack, dict[str, Any]],
) -> None:
    """enforce_ssl's topic policy replaces SNS's default one: without an Allow for the CloudWatch
    service principal, scoped to this stack's alarms, the alarms notify nobody."""
    _, stack, template = synthesized
    topic = logical_ref(stack, stack.topic)
    resources = template["Resources"]
    for resource in resources.values():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            assert resource["Properties"]["AlarmActions"] == [topic]
    (policy,) = [
        r["Properties"] for r in resources.values() if r["Type"] == "AWS::SNS::TopicPolicy"
    ]
    assert policy["Topics"] == [topic]
    statements = as_list(policy["PolicyDocument"]["Statement"])
    denies = [s for s in statements if s["Effect"] == "Deny"]
    assert [(s["Principal"], s["Action"], s["Condition"]) for s in denies] == [
        ("*", "sns:Publish", {"Bool": {"aws:SecureTransport": "false"}})
    ]
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert as_list(allow["Action"]) == ["sns:Publish"]
    assert allow["Resource"] == topic
    assert sorted_conditions(allow["Condition"]) == from_this_stacks_alarms(template)


def test_cloudwatch_gets_only_the_key_actions_it_needs_for_this_stacks_alarms(
    synthesized: tuple[DrainerConfig, DrainerStack, dict[str, Any]],
) -> None:
    _, _, template = synthesized
    (key,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::KMS::Key"]
    (statement,) = [
        s
        for s in as_list(key["Properties"]["KeyPolicy"]["Statement"])
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert statement["Effect"] == "Allow"
    assert sorted(as_list(statement["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert sorted_conditions(statement["Condition"]) == from_this_stacks_alarms(template)


def test_the_state_machine_invokes_retained_versions_and_may_invoke_only_their_functions(
    synthesized: tuple[DrainerConfig, DrainerStack, dict[str, Any]],
) -> None:
    """The definition names each function by a published version (the substitutions), retained
    when a deploy publishes the next one. Executions started before that deploy still invoke
    the older versions under the same role, so the grant is every version of exactly the
    functions the definition calls (`<arn>:*`): not their unqualified ARNs, no other function."""
    _, stack, template = synthesized
    resources = template["Resources"]
    (machine,) = [r for r in resources.values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    substituted = machine["Properties"]["DefinitionSubstitutions"]
    assert len(substituted) == len(FUNCTIONS)
    called = []
    for value in substituted.values():
        version = resources[value["Ref"]]
        assert version["Type"] == "AWS::Lambda::Version", value
        assert version["DeletionPolicy"] == version["UpdateReplacePolicy"] == "Retain"
        function_id = version["Properties"]["FunctionName"]["Ref"]
        assert resources[function_id]["Type"] == "AWS::Lambda::Function"
        called.append(function_id)
    assert len(set(called)) == len(called)
    every_version = sorted(
        json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [f, "Arn"]}, ":*"]]}, sort_keys=True)
        for f in called
    )
    machine_role = logical_ref(stack, stack.state_machine.role)
    granted = []
    for resource in resources.values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        for statement in as_list(resource["Properties"]["PolicyDocument"]["Statement"]):
            if "lambda:InvokeFunction" in as_list(statement["Action"]):
                assert resource["Properties"]["Roles"] == [machine_role]
                granted += [json.dumps(r, sort_keys=True) for r in as_list(statement["Resource"])]
    assert sorted(granted) == every_version


def test_eventbridge_may_invoke_the_dispatch_function_only_for_this_stacks_drain_rules(
    synthesized: tuple[DrainerConfig, DrainerStack, dict[str, Any]],
) -> None:
    """The three drain rules target the dispatch function (it names the executions); Lambda
    lets EventBridge invoke it for exactly those rules (confused deputy: aws:SourceArn)."""
    _, stack, template = synthesized
    resources = template["Resources"]
    dispatch_id = stack.resolve(stack.get_logical_id(stack.dispatch_function.node.default_child))
    drain_rules = {
        logical_id
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Events::Rule"
        and resource["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [dispatch_id, "Arn"]}
    }
    assert len(drain_rules) == 3
    permissions = [
        resource["Properties"]
        for resource in resources.values()
        if resource["Type"] == "AWS::Lambda::Permission"
        and resource["Properties"]["FunctionName"] == {"Fn::GetAtt": [dispatch_id, "Arn"]}
    ]
    assert {permission["Principal"] for permission in permissions} == {"events.amazonaws.com"}
    sources = [permission["SourceArn"] for permission in permissions]
    assert sorted(json.dumps(source) for source in sources) == sorted(
        json.dumps({"Fn::GetAtt": [rule, "Arn"]}) for rule in drain_rules
    )
    assert not any(
        resource["Type"] == "AWS::IAM::Role"
        and "events.amazonaws.com" in json.dumps(resource["Properties"]["AssumeRolePolicyDocument"])
        for resource in resources.values()
    ), "no rule starts executions itself any more: no role for EventBridge"


LONGEST_STACK_NAME = "S" + "x" * 63  # the config's stack_name pattern allows 64 characters


def at_most(cluster_name_length: int, group_name_length: int = 200) -> DrainerConfig:
    """20 clusters and 20 groups (the config's maximum) of the given lengths, the longest stack
    name. Groups of 200 characters: the heartbeat grant PollTasks also holds lists every group,
    and with 64-character clusters its role fits up to about 200 (README, "Policy size").
    Built without the model's cross-field checks: the Lambda environment's size is
    config.py's matter; this is about IAM."""
    clusters = [f"{index:02d}" + "c" * (cluster_name_length - 2) for index in range(20)]
    groups = [f"{index:02d}" + "g" * (group_name_length - 2) for index in range(20)]
    assert all(re.fullmatch(CLUSTER_NAME, name) for name in clusters)
    assert all(re.fullmatch(GROUP_NAME, name) for name in groups)
    return DrainerConfig.model_construct(
        **{
            **load_config(ROOT / "drainer.toml").model_dump(),
            "stack_name": LONGEST_STACK_NAME,
            "cluster_names": clusters,
            "auto_scaling_group_names": groups,
        }
    )


def synth_for_any_account(config: DrainerConfig) -> dict[str, Any]:
    """As app.py synthesizes: no account or Region, so ARNs keep their pseudo parameters (which
    the size check fills with their longest real values); cdk-nag on."""
    app = cdk.App()
    DrainerStack(app, config.stack_name, config=config)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    assembly = app.synth()
    path = assembly.get_stack_by_name(config.stack_name).template_full_path
    with open(path) as template:
        return json.load(template)


def test_synth_refuses_a_configuration_whose_policies_iam_would_refuse() -> None:
    """Twenty 255-character cluster names validate, but the roles that list every cluster
    three times would pass IAM's 10,240 characters: synth says so, naming the fix."""
    with pytest.raises(RuntimeError) as refused:
        synth_for_any_account(at_most(cluster_name_length=255))
    message = str(refused.value)
    assert "10,240" in message and iam_limits.QUOTAS_PAGE in message
    assert "PollTasksRole" in message and "StopTasksRole" in message
    assert "fewer or shorter cluster_names" in message


def test_a_large_configuration_deploys_within_iam_size_quotas() -> None:
    """20 clusters of 64-character names and 20 groups of 200, the longest stack name: every
    role's inline policies, managed policy and trust policy fit at their worst case."""
    config = at_most(cluster_name_length=64)
    template = synth_for_any_account(config)
    resources = template["Resources"]
    assert list(iam_limits.oversized(resources, config.stack_name)) == []
    sizes = [
        iam_limits.size(resource["Properties"]["PolicyDocument"], config.stack_name)
        for resource in resources.values()
        if resource["Type"] == "AWS::IAM::Policy"
    ]
    assert max(sizes) > iam_limits.ROLE_INLINE_LIMIT * 0.7  # the case measured is a large one
    rule_names = [
        resource["Properties"]["Name"]
        for resource in resources.values()
        if resource["Type"] == "AWS::Events::Rule" and "Name" in resource["Properties"]
    ]
    assert len(set(rule_names)) == 3 and all(len(name) <= 64 for name in rule_names)


def test_policy_size_counts_what_iam_counts() -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "ecs:StopTask",
                "Resource": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":ecs:x"]]},
            }
        ],
    }
    compact = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:StopTask",'
        '"Resource":"arn:aws-us-gov:ecs:x"}]}'
    )
    assert iam_limits.size(document, "EcsDrainer") == len(compact)
    assert (
        iam_limits.size({"Resource": {"Fn::GetAtt": ["Table", "Arn"]}}, "S")
        == len('{"Resource":""}') + iam_limits.REFERENCE_LENGTH
    )
