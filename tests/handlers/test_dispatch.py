"""Drain executions named after what they drain: the name (unit), the dispatch function that
starts them (on moto), and what the stack lets it do (template)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import dispatch
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from drainer import aws
from drainer.aws import Throttled
from drainer.naming import MAX_NAME, execution_name
from sandbox.quotas import check_execution_name, enforced
from stacks.config import DrainerConfig
from tests.template.synthesis import synth

INSTANCE = "i-0abc12345678def01"
EVENT_ID = "3f1c9a2e-7d4b-4e8f-9a1b-2c3d4e5f6a7b"
REGION = "us-east-1"


def lifecycle(**changes: Any) -> dict[str, Any]:
    event = {
        "version": "0",
        "id": EVENT_ID,
        "detail-type": "EC2 Instance-terminate Lifecycle Action",
        "source": "aws.autoscaling",
        "detail": {
            "EC2InstanceId": INSTANCE,
            "AutoScalingGroupName": "asg",
            "LifecycleHookName": "ecs-drainer",
            "LifecycleActionToken": "c0ffee00-0000-4000-8000-000000000001",
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
        },
    }
    return {**event, **changes}


def spot(**changes: Any) -> dict[str, Any]:
    event = {
        "version": "0",
        "id": EVENT_ID,
        "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2",
        "detail": {"instance-id": INSTANCE, "instance-action": "terminate"},
    }
    return {**event, **changes}


# --- the name ---------------------------------------------------------------------------------
def test_a_drain_is_named_instance_kind_and_short_event_id() -> None:
    assert execution_name(lifecycle()) == f"{INSTANCE}-lifecycle-3f1c9a2e"
    assert execution_name(spot()) == f"{INSTANCE}-spot-3f1c9a2e"
    rebalance = spot(**{"detail-type": "EC2 Instance Rebalance Recommendation"})
    assert execution_name(rebalance) == f"{INSTANCE}-rebalance-3f1c9a2e"
    assert execution_name(lifecycle(), full_id=True) == f"{INSTANCE}-lifecycle-{EVENT_ID}"


def test_the_same_event_always_gets_the_same_name() -> None:
    assert execution_name(json.loads(json.dumps(spot()))) == execution_name(spot())
    no_id = {key: value for key, value in spot().items() if key != "id"}
    assert execution_name(no_id) == execution_name(dict(no_id))  # a digest of the event
    assert execution_name(no_id) != execution_name({**no_id, "detail": {"instance-id": "x"}})


def test_a_malformed_event_still_gets_a_name_and_so_an_execution() -> None:
    """Its lifecycle action must still be completed by the machine: no instance id is no
    reason not to start it."""
    assert execution_name(lifecycle(detail={"EC2InstanceId": "not-an-id"})).startswith(
        "unknown-lifecycle-3f1c9a2e"
    )
    assert execution_name({"detail-type": "something else"}).startswith("unknown-event-")
    assert execution_name("not even an object").startswith("unknown-event-")


@pytest.mark.parametrize(
    "event",
    [
        lifecycle(id='a b<c>{d}[e]?f*g"h#i%j\\k^l|m~n`o$p&q,r;s:t/u\u0007v\u0085w'),
        lifecycle(id="x" * 500),
        spot(id=""),
        spot(id=None),
        lifecycle(detail={"EC2InstanceId": "i-" + "0" * 17}),
    ],
)
def test_every_name_is_one_step_functions_accepts(event: dict[str, Any]) -> None:
    for full_id in (False, True):
        name = execution_name(event, full_id=full_id)
        check_execution_name(name)  # AWS's rules: raises InvalidName otherwise
        assert len(name) <= MAX_NAME


# --- the dispatch function ------------------------------------------------------------------
@pytest.fixture
def machine() -> Any:
    definition = {
        "StartAt": "Wait",
        "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": True}},
    }
    with mock_aws(), enforced():
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.create_state_machine(
            name="drainer",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::123456789012:role/drainer",
        )["stateMachineArn"]
        yield sfn, arn


def test_an_event_dispatched_twice_starts_one_execution(machine: Any) -> None:
    sfn, arn = machine
    first = dispatch.dispatch(spot(), arn)
    again = dispatch.dispatch(spot(), arn)
    (execution,) = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert execution["name"] == f"{INSTANCE}-spot-3f1c9a2e"
    assert first["executionArn"] == again["executionArn"] == execution["executionArn"]
    assert json.loads(sfn.describe_execution(executionArn=first["executionArn"])["input"]) == spot()


def test_an_event_dispatched_after_its_execution_ended_starts_none_and_does_not_fail(
    machine: Any,
) -> None:
    """A closed execution answers ExecutionAlreadyExists whatever the input: the function
    checks that it ran this very event, so a late redelivery is no failure (no alarm)."""
    sfn, arn = machine
    first = dispatch.dispatch(spot(), arn)
    sfn.stop_execution(executionArn=first["executionArn"])
    again = dispatch.dispatch(spot(), arn)
    assert again == {**first, "started": False}
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1


def test_another_event_with_the_same_short_name_gets_its_whole_id(machine: Any) -> None:
    sfn, arn = machine
    dispatch.dispatch(spot(), arn)
    other = spot(id=EVENT_ID[:8] + "-0000-4000-8000-000000000000")
    started = dispatch.dispatch(other, arn)
    assert started["name"] == f"{INSTANCE}-spot-{other['id']}"
    assert dispatch.dispatch(other, arn)["executionArn"] == started["executionArn"]
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 2


def test_a_failing_start_raises_so_the_invocation_is_retried(machine: Any) -> None:
    """Lambda retries a failed asynchronous invocation, then dead-letters it: the function must
    not swallow a start that did not happen."""
    _, arn = machine
    with pytest.raises(ClientError, match="StateMachineDoesNotExist"):
        dispatch.dispatch(spot(), arn.replace(":drainer", ":deleted"))
    with pytest.raises(ClientError, match="ValidationException"):
        dispatch.dispatch(spot(detail={"instance-id": INSTANCE, "pad": "x" * 300_000}), arn)


def test_a_throttled_start_raises(machine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, arn = machine

    class Throttling:
        def start_execution(self, **params: Any) -> None:
            error = {"Code": "ThrottlingException", "Message": "Rate exceeded"}
            raise ClientError({"Error": error}, "StartExecution")

    monkeypatch.setattr(aws, "client", lambda service: Throttling())
    with pytest.raises(Throttled):
        dispatch.dispatch(spot(), arn)


# --- what the stack lets it do ----------------------------------------------------------------
def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_dispatch_role_may_start_executions_of_this_state_machine_only(
    config: DrainerConfig,
) -> None:
    stack, template = synth(config)
    resolve = stack.resolve
    function = stack.dispatch_function
    role = resolve(stack.get_logical_id(function.role.node.default_child))
    machine = resolve(stack.state_machine.state_machine_arn)
    granted: dict[str, list[Any]] = {}
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role} not in policy["Properties"]["Roles"]:
            continue
        for statement in as_list(policy["Properties"]["PolicyDocument"]["Statement"]):
            assert statement["Effect"] == "Allow"
            for action in as_list(statement["Action"]):
                granted.setdefault(action, []).extend(as_list(statement["Resource"]))
    assert granted["states:StartExecution"] == [machine]
    (executions,) = granted["states:DescribeExecution"]
    assert ":execution:" in json.dumps(executions)
    assert json.dumps({"Fn::GetAtt": [machine["Ref"], "Name"]}) in json.dumps(executions)
    assert not any(
        action.startswith("states:")
        for action in set(granted) - {"states:StartExecution", "states:DescribeExecution"}
    )
    # Everywhere else in the stack, only the state machine's own role touches executions.
    for logical_id, policy in template.find_resources("AWS::IAM::Policy").items():
        for statement in as_list(policy["Properties"]["PolicyDocument"]["Statement"]):
            if "states:StartExecution" in as_list(statement["Action"]):
                assert policy["Properties"]["Roles"] == [{"Ref": role}], logical_id


def test_a_start_lambda_gave_up_on_lands_in_the_alarmed_dead_letter_queue(
    config: DrainerConfig,
) -> None:
    stack, template = synth(config)
    resolve = stack.resolve
    logical_id = resolve(stack.get_logical_id(stack.dispatch_function.node.default_child))
    properties = template.find_resources("AWS::Lambda::Function")[logical_id]["Properties"]
    queue = resolve(stack.dead_letters.queue_arn)
    assert properties["DeadLetterConfig"] == {"TargetArn": queue}
    variables = properties["Environment"]["Variables"]
    assert variables["DRAINER_STATE_MACHINE_ARN"] == resolve(stack.state_machine.state_machine_arn)
    (invoke_config,) = [
        config
        for config in template.find_resources("AWS::Lambda::EventInvokeConfig").values()
        if config["Properties"]["FunctionName"] == {"Ref": logical_id}
    ]
    assert invoke_config["Properties"]["MaximumRetryAttempts"] == 2
    assert invoke_config["Properties"]["MaximumEventAgeInSeconds"] == 6 * 3600
    alarm = resolve(stack.dead_letter_alarm.node.default_child.metric_name)
    assert alarm == "ApproximateNumberOfMessagesVisible"
