"""The synthesized template: every resource the orchestrator needs, wired for operations (rules,
state machine, functions, hooks, table, topic, alarms, logs), and cfn-lint finds no error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match

from drainer.settings import STATE_MACHINE_VARIABLE
from stacks.config import load_config, validate
from stacks.definition import (
    FUNCTIONS,
    definition_text,
    placeholders,
)
from stacks.event_patterns import (
    event_patterns,
    execution_failure_pattern,
    instance_draining_pattern,
    instance_return_pattern,
    task_stopped_pattern,
)
from stacks.functions import ALL_FUNCTIONS, DISPATCH_FUNCTION
from tests.conftest import ROOT
from tests.template.synthesis import as_list, synth


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
            task_stopped_pattern(config),  # events mode (drainer.toml)
            instance_draining_pattern(config),  # events mode
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


def test_failed_drains_and_undelivered_events_raise_an_alarm_on_the_topic(
    synthesized,
) -> None:
    _, stack, assertions = synthesized
    resources = assertions.to_json()["Resources"]

    def ref(construct: Any) -> dict[str, str]:
        return {"Ref": stack.resolve(stack.get_logical_id(construct.node.default_child))}

    machine, topic = ref(stack.state_machine), ref(stack.topic)
    queue_id = stack.resolve(stack.get_logical_id(stack.dead_letters.node.default_child))
    alarms = {k: v["Properties"] for k, v in resources.items() if v["Type"].endswith("Alarm")}
    failed = alarms[stack.resolve(stack.get_logical_id(stack.failed_alarm.node.default_child))]
    watched = {
        query["MetricStat"]["Metric"]["MetricName"]: query["MetricStat"]
        for query in failed["Metrics"]
        if "MetricStat" in query
    }
    assert set(watched) == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    for stat in watched.values():
        assert stat["Metric"]["Namespace"] == "AWS/States"
        assert stat["Metric"]["Dimensions"] == [{"Name": "StateMachineArn", "Value": machine}]
        assert stat["Stat"] == "Sum"
    (expression,) = [q for q in failed["Metrics"] if "Expression" in q]
    assert expression["ReturnData"] is True
    assert set(expression["Expression"].replace("+", " ").split()) == {
        q["Id"] for q in failed["Metrics"] if "MetricStat" in q
    }
    assert (failed["Threshold"], failed["ComparisonOperator"]) == (
        1,
        "GreaterThanOrEqualToThreshold",
    )
    undelivered = alarms[
        stack.resolve(stack.get_logical_id(stack.dead_letter_alarm.node.default_child))
    ]
    assert (undelivered["Namespace"], undelivered["MetricName"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
    )
    assert undelivered["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}
    ]
    assert undelivered["Threshold"] == 1
    for alarm in (failed, undelivered):
        assert alarm["AlarmActions"] == [topic]
        assert alarm["TreatMissingData"] == "notBreaching"
    # Every rule dead-letters into the watched queue.
    for resource in resources.values():
        if resource["Type"] == "AWS::Events::Rule":
            (target,) = resource["Properties"]["Targets"]
            assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    # CloudWatch may use the topic's key, or the encrypted topic would swallow the alarm.
    (key,) = [r for r in resources.values() if r["Type"] == "AWS::KMS::Key"]
    assert any(
        statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
        and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(as_list(statement["Action"]))
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
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
