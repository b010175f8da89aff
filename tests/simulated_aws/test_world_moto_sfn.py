"""moto's Step Functions interpreter runs Wait states and Retry back-offs on the virtual clock
(simulated_aws/moto_waits.py), and says so loudly the day moto moves what that patches."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from simulated_aws import World, moto_waits

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


def _run(world: World, definition: dict[str, Any]) -> tuple[dict[str, Any], float]:
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

    with mock_aws(config=SFN_CONFIG), World().install():
        pass
    assert retrier_decl.time is time
    moto_waits.check_seams()
