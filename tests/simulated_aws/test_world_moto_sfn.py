"""moto's Step Functions interpreter runs Wait states, Retry back-offs and callback Tasks on the
virtual clock (simulated_aws/moto_waits.py), and says so loudly the day moto moves what that
patches."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from sandbox.lambda_seam import LambdaSeam
from simulated_aws import World, moto_waits
from stacks.definition import Function

ROLE = "arn:aws:iam::123456789012:role/states"
SFN_CONFIG: Any = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}


@pytest.fixture
def sfn_world() -> Iterator[World]:
    world = World()
    with mock_aws(config=SFN_CONFIG), world.install():
        yield world


def _run(
    world: World, definition: dict[str, Any], at_start: Any = None
) -> tuple[dict[str, Any], float]:
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(name="m", definition=json.dumps(definition), roleArn=ROLE)[
        "stateMachineArn"
    ]
    execution = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]

    def running() -> int:
        listed = sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING")
        return len(listed["executions"])

    def finished() -> bool:
        return sfn.describe_execution(executionArn=execution)["status"] != "RUNNING"

    if at_start is not None:
        at_start()
    wall = time.monotonic()
    assert world.clock.run(finished, running, max_virtual_seconds=72 * 3600, wall_timeout=10)
    return sfn.describe_execution(executionArn=execution), time.monotonic() - wall


def test_a_48h_wait_state_completes_on_the_virtual_clock(sfn_world: World) -> None:
    start = sfn_world.clock.now()
    definition = {
        "StartAt": "Wait",
        "States": {
            "Wait": {"Type": "Wait", "Seconds": 172800, "Next": "Done"},
            "Done": {"Type": "Succeed"},
        },
    }
    result, wall = _run(sfn_world, definition)
    assert result["status"] == "SUCCEEDED"
    assert sfn_world.clock.now() - start == timedelta(hours=48)
    assert result["stopDate"] - result["startDate"] == timedelta(hours=48)
    assert wall < 3


def test_retry_backoff_passes_on_the_virtual_clock(sfn_world: World) -> None:
    start = sfn_world.clock.now()
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                # moto's simple Lambda always succeeds; a missing table always fails.
                "Resource": "arn:aws:states:::dynamodb:getItem",
                "Parameters": {"TableName": "missing", "Key": {"pk": {"S": "x"}}},
                "Retry": [
                    {
                        "ErrorEquals": ["States.ALL"],
                        "IntervalSeconds": 3600,
                        "BackoffRate": 2,
                        "MaxAttempts": 2,
                    }
                ],
                "End": True,
            }
        },
    }
    result, wall = _run(sfn_world, definition)
    assert result["status"] == "FAILED"
    assert sfn_world.clock.now() - start == timedelta(hours=3)  # 1 h + 2 h of back-off
    assert wall < 3


# The callback Lambda, run in-process by the Lambda seam: it keeps the task token it is given.
TOKENS: list[str] = []
REMEMBER = Function(
    name="RememberToken",
    handler=f"{__name__}.remember_token",
    description="keeps the task token of a callback Task",
)


def remember_token(event: dict[str, Any], context: object) -> None:
    TOKENS.append(event["token"])


CALLBACK: dict[str, Any] = {
    "StartAt": "Await",
    "States": {
        "Await": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": REMEMBER.name, "Payload": {"token.$": "$$.Task.Token"}},
            "TimeoutSeconds": 3600,
            "ResultPath": "$.wake",
            "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.wake", "Next": "Done"}],
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}


@pytest.fixture
def callback_world(sfn_world: World) -> Iterator[World]:
    TOKENS.clear()
    role = boto3.client("iam").create_role(
        RoleName="remember", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
    )["Role"]["Arn"]
    boto3.client("lambda").create_function(
        FunctionName=REMEMBER.name,
        Runtime="python3.12",
        Role=role,
        Handler=REMEMBER.handler,
        Code={"ZipFile": b"not run: the seam calls the handler"},
    )
    with LambdaSeam({REMEMBER.name: REMEMBER}).installed():
        yield sfn_world


def test_a_callback_task_times_out_on_the_virtual_clock(callback_world: World) -> None:
    start = callback_world.clock.now()
    result, wall = _run(callback_world, CALLBACK)
    assert len(TOKENS) == 1  # the Lambda ran and nobody called back
    assert result["status"] == "SUCCEEDED"
    assert json.loads(result["output"])["wake"]["Error"] == "States.Timeout"
    assert callback_world.clock.now() - start == timedelta(hours=1)
    assert result["stopDate"] - result["startDate"] == timedelta(hours=1)
    assert wall < 3


def test_send_task_success_ends_a_callback_wait_at_its_virtual_time(
    callback_world: World,
) -> None:
    start = callback_world.clock.now()
    sfn = boto3.client("stepfunctions")

    def call_back() -> None:
        sfn.send_task_success(taskToken=TOKENS[0], output=json.dumps({"wokenBy": "timer"}))

    result, wall = _run(
        callback_world, CALLBACK, lambda: callback_world.clock.call_later(100, call_back)
    )
    assert result["status"] == "SUCCEEDED"
    assert json.loads(result["output"])["wake"] == {"wokenBy": "timer"}
    assert callback_world.clock.now() - start == timedelta(seconds=100)
    assert result["stopDate"] - result["startDate"] == timedelta(seconds=100)
    assert wall < 3


@pytest.mark.parametrize("first", ["timeout", "success"])
def test_a_closed_callback_refuses_a_late_send_task_success(
    callback_world: World, first: str
) -> None:
    """Step Functions answers TaskTimedOut to a token whose Task closed (timed out or already
    succeeded) while the execution runs on, and InvalidToken once the execution ended."""
    sfn = boto3.client("stepfunctions")
    errors: list[str] = []

    def send(label: str) -> None:
        try:
            sfn.send_task_success(taskToken=TOKENS[0], output=json.dumps({"wokenBy": label}))
        except ClientError as error:
            errors.append(error.response["Error"]["Code"])

    definition = json.loads(json.dumps(CALLBACK))
    definition["States"]["Done"] = {"Type": "Wait", "Seconds": 600, "End": True}

    def schedule() -> None:
        if first == "success":
            callback_world.clock.call_later(100, lambda: send("first"))
        # while the execution still runs: after the timeout (3600 s) or after the success
        callback_world.clock.call_later(3700 if first == "timeout" else 200, lambda: send("late"))

    result, _ = _run(callback_world, definition, schedule)
    assert result["status"] == "SUCCEEDED"
    assert errors == ["TaskTimedOut"]
    send("after the end")
    assert errors == ["TaskTimedOut", "InvalidToken"]


def test_moto_still_waits_where_the_patch_expects() -> None:
    # Fails after a moto upgrade that moved its Wait/Retry sleeps: update moto_waits.py.
    moto_waits.check_seams()


def test_a_moved_seam_fails_loudly_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    monkeypatch.setattr(retrier_decl, "time", object())
    with pytest.raises(moto_waits.MotoSeamsMoved, match=r"update simulated_aws/moto_waits\.py"):
        moto_waits.check_seams()
    with pytest.raises(moto_waits.MotoSeamsMoved), World().install():
        pass  # never reached: installing a world checks first


def test_moto_waits_follow_one_world_at_a_time(sfn_world: World) -> None:
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    assert retrier_decl.time is not time  # patched while the world is installed
    with (
        pytest.raises(RuntimeError, match="already on a virtual clock"),
        moto_waits.on_clock(sfn_world.clock),
    ):
        pass


def test_moto_waits_are_real_again_after_the_world() -> None:
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.eval.callback import callback
    from moto.stepfunctions.parser.asl.eval.environment import Environment

    original_wait, original_stop = callback.CallbackEndpoint.wait, Environment.set_stop
    with mock_aws(config=SFN_CONFIG), World().install():
        assert callback.CallbackEndpoint.wait is not original_wait
        assert Environment.set_stop is not original_stop
    assert retrier_decl.time is time
    assert callback.CallbackEndpoint.wait is original_wait
    assert Environment.set_stop is original_stop
    moto_waits.check_seams()


def test_a_moved_callback_wait_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.stepfunctions.parser.asl.eval.callback import callback

    monkeypatch.setattr(callback.CallbackEndpoint, "wait", lambda self, timeout, heartbeat: None)
    with pytest.raises(moto_waits.MotoSeamsMoved, match=r"CallbackEndpoint\.wait.*moto_waits"):
        moto_waits.check_seams()


def _history(execution: str) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions")
    return sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]


def _stopped_after(world: World, definition: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Start an execution, stop it `seconds` in (virtual time), and drive the clock until its
    history ends in ExecutionAborted."""
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(name="m", definition=json.dumps(definition), roleArn=ROLE)[
        "stateMachineArn"
    ]
    execution = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    world.clock.call_later(seconds, lambda: sfn.stop_execution(executionArn=execution))

    def aborted() -> bool:
        return _history(execution)[-1]["type"] == "ExecutionAborted"

    def still_running() -> int:  # an actor until its program has ended
        return 0 if aborted() else 1

    assert world.clock.run(aborted, still_running, max_virtual_seconds=72 * 3600, wall_timeout=10)
    return {"arn": execution, "history": _history(execution)}


WAIT_48H: dict[str, Any] = {
    "StartAt": "Wait",
    "States": {
        "Wait": {"Type": "Wait", "Seconds": 172800, "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}


@pytest.mark.parametrize("waiting_in", ["Wait state", "callback Task"])
def test_stop_execution_ends_the_wait_at_once(callback_world: World, waiting_in: str) -> None:
    """StopExecution ends the execution at its stopDate, whatever state it waits in
    (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StopExecution.html):
    nothing after it in the history, neither the state's exit nor its timeout. moto ends a
    Wait state at once only in real time and a callback Task only at its timeout."""
    start = callback_world.clock.now()
    definition = WAIT_48H if waiting_in == "Wait state" else CALLBACK
    stopped = _stopped_after(callback_world, definition, 100)
    kinds = [event["type"] for event in stopped["history"]]
    assert kinds[-1] == "ExecutionAborted"
    assert stopped["history"][-1]["timestamp"] - start == timedelta(seconds=100)
    assert not any(kind.endswith(("StateExited", "TimedOut", "Succeeded")) for kind in kinds)
    assert callback_world.clock.now() - start == timedelta(seconds=100)


def test_a_callback_task_keeps_its_virtual_timeout_however_slow_the_machine(
    callback_world: World,
) -> None:
    """A callback Task with a second to go, on a machine too busy to move the clock for two
    real seconds: it is still woken at its virtual time, not timed out in real time (in a
    refresh of thousands of drains the virtual clock runs at about real speed)."""
    sfn = boto3.client("stepfunctions")
    definition = json.loads(json.dumps(CALLBACK))
    definition["States"]["Await"]["TimeoutSeconds"] = 1

    def call_back() -> None:
        sfn.send_task_success(taskToken=TOKENS[0], output=json.dumps({"wokenBy": "timer"}))

    def busy_then_call_back() -> None:
        callback_world.clock.call_later(0.1, lambda: time.sleep(2))  # the driver, held up
        callback_world.clock.call_later(0.9, call_back)

    result, _ = _run(callback_world, definition, busy_then_call_back)
    assert json.loads(result["output"])["wake"] == {"wokenBy": "timer"}
