"""The synthesized template: every resource the orchestrator needs, least privilege, cdk-nag."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from drainer.settings import STATE_MACHINE_VARIABLE
from stacks.config import load_config, validate
from stacks.definition import (
    FUNCTIONS,
    definition_text,
    placeholders,
)
from stacks.drainer_stack import DrainerStack
from stacks.event_patterns import (
    event_patterns,
    execution_failure_pattern,
    instance_return_pattern,
)
from stacks.functions import ALL_FUNCTIONS, DISPATCH_FUNCTION
from tests.conftest import ROOT

MUTATING = {
    "ecs:UpdateContainerInstancesState",
    "ecs:StopTask",
    "autoscaling:CompleteLifecycleAction",
    "autoscaling:RecordLifecycleActionHeartbeat",
    "autoscaling:TerminateInstanceInAutoScalingGroup",
}


def synth(config, tamper=None):
    """Synthesize with cdk-nag's AwsSolutions pack, as app.py does: an unacknowledged finding
    fails synthesis."""
    app = cdk.App()
    stack = DrainerStack(
        app,
        config.stack_name,
        config=config,
        env=cdk.Environment(account="123456789012", region="us-east-1"),
    )
    if tamper:
        tamper(stack)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    assembly = app.synth()
    stack.assembly_directory = Path(assembly.directory)
    return stack, Template.from_stack(stack)


@pytest.fixture(scope="module")
def synthesized():
    config = load_config(ROOT / "drainer.toml")
    config = validate(
        {
            **config.model_dump(),
            "cluster_names": ["prod-a", "prod-b"],
            "auto_scaling_group_names": ["asg-a", "asg-b"],
        }
    )
    stack, template = synth(config)
    return config, stack, template


def test_rules_use_the_one_pattern_definition(synthesized):
    config, stack, template = synthesized
    rules = template.find_resources("AWS::Events::Rule")
    patterns = sorted(
        json.dumps(rule["Properties"]["EventPattern"], sort_keys=True) for rule in rules.values()
    )
    machine_arn = {"Ref": stack.get_logical_id(stack.state_machine.node.default_child)}
    expected = sorted(
        json.dumps(pattern, sort_keys=True)
        for pattern in [
            *event_patterns(config).values(),
            execution_failure_pattern(stack.resolve(machine_arn)),
            instance_return_pattern(config),
        ]
    )
    assert patterns == expected
    for rule in rules.values():
        (target,) = rule["Properties"]["Targets"]
        assert "DeadLetterConfig" in target
        assert target["RetryPolicy"] == {
            "MaximumEventAgeInSeconds": 86400,
            "MaximumRetryAttempts": 185,
        }


def test_state_machine_is_the_asl_file_with_its_placeholders_filled(synthesized):
    _, stack, template = synthesized
    (machine,) = template.find_resources("AWS::StepFunctions::StateMachine").values()
    props = machine["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    # The definition is the ASL file itself, byte for byte, shipped as an asset.
    key = props["DefinitionS3Location"]["Key"]
    asset = stack.assembly_directory / f"asset.{key}"
    assert asset.read_text() == definition_text()
    assert (
        set(props["DefinitionSubstitutions"])
        == placeholders()
        == {function.placeholder for function in FUNCTIONS}
    )
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["TracingConfiguration"] == {"Enabled": True}


def test_one_small_function_per_job(synthesized):
    config, _, template = synthesized
    functions = template.find_resources("AWS::Lambda::Function")
    assert sorted(f["Properties"]["Handler"] for f in functions.values()) == sorted(
        function.handler for function in ALL_FUNCTIONS
    )
    for function in functions.values():
        props = function["Properties"]
        assert props["Runtime"].startswith("python3.")
        assert props["Architectures"] == [config.lambda_architecture]
        if props["Handler"] == DISPATCH_FUNCTION.handler:  # reads no settings
            assert set(props["Environment"]["Variables"]) == {STATE_MACHINE_VARIABLE}
            continue
        # The settings hold tokens (table, topic), so CloudFormation joins them at deploy time.
        settings = json.dumps(props["Environment"]["Variables"]["DRAINER_SETTINGS"])
        assert '\\"cluster_names\\":[\\"prod-a\\",\\"prod-b\\"]' in settings


def test_lifecycle_hooks_allow_the_full_ceiling(synthesized):
    config, _, template = synthesized
    hooks = template.find_resources("AWS::AutoScaling::LifecycleHook")
    assert sorted(h["Properties"]["AutoScalingGroupName"] for h in hooks.values()) == [
        "asg-a",
        "asg-b",
    ]
    for hook in hooks.values():
        props = hook["Properties"]
        assert props["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
        assert props["DefaultResult"] == "CONTINUE"
        assert props["HeartbeatTimeout"] == config.heartbeat_timeout_seconds
        assert min(172800, 100 * props["HeartbeatTimeout"]) >= config.max_drain_seconds


def test_operations_resources(synthesized):
    config, _, template = synthesized
    template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {"TimeToLiveSpecification": {"AttributeName": "expiresAt", "Enabled": True}},
    )
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    template.resource_count_is("AWS::CloudWatch::Alarm", 2)
    for alarm in template.find_resources("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"]
    log_groups = template.find_resources("AWS::Logs::LogGroup")
    # every function's, + the state machine's
    assert len(log_groups) == len(ALL_FUNCTIONS) + 1
    assert {g["Properties"]["RetentionInDays"] for g in log_groups.values()} == {
        config.log_retention_days
    }


def _statements(template):
    for policy in template.find_resources("AWS::IAM::Policy").values():
        yield from policy["Properties"]["PolicyDocument"]["Statement"]


def _as_list(value):
    return value if isinstance(value, list) else [value]


def test_mutating_permissions_are_scoped_to_configured_clusters_and_groups(synthesized):
    _, _, template = synthesized
    seen = set()
    for statement in _statements(template):
        actions = set(_as_list(statement["Action"]))
        mutating = actions & MUTATING
        if not mutating:
            continue
        seen |= mutating
        resources = [json.dumps(resource) for resource in _as_list(statement["Resource"])]
        assert '"*"' not in resources, f"{mutating} granted on *"
        for resource in resources:
            if mutating & {"ecs:UpdateContainerInstancesState", "ecs:StopTask"}:
                assert "prod-a/*" in resource or "prod-b/*" in resource, resource
            else:
                assert (
                    "autoScalingGroupName/asg-a" in resource
                    or "autoScalingGroupName/asg-b" in resource
                ), resource
    assert seen == MUTATING


def test_cdk_nag_reports_no_unacknowledged_findings(synthesized):
    # The module fixture synthesized with the AwsSolutions pack; this proves the check bites.
    config, _, _ = synthesized

    def grant_star(stack):
        stack.functions["StopTasks"].add_to_role_policy(
            iam.PolicyStatement(actions=["ecs:StopTask"], resources=["*"])
        )

    with pytest.raises(RuntimeError, match=r"(?s)ValidationFailed.*IAM5\[Resource::\*\]"):
        synth(config, tamper=grant_star)


def test_test_event_source_can_be_switched_off():
    config = validate({**load_config(ROOT / "drainer.toml").model_dump(), "test_event_source": ""})
    _, template = synth(config)
    for rule in template.find_resources("AWS::Events::Rule").values():
        assert all(
            source.startswith("aws.") for source in rule["Properties"]["EventPattern"]["source"]
        )


def test_cfn_lint_reports_no_errors(synthesized, tmp_path):
    _, _, template = synthesized
    path = tmp_path / "EcsDrainer.template.json"
    path.write_text(json.dumps(template.to_json()))
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run(
        [str(cfn_lint), "--non-zero-exit-code", "error", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
