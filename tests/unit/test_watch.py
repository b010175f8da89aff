"""The watch item against moto's DynamoDB: every order of stops and arming wakes the wait once
the tasks alive at the last poll have all stopped, and never before (drainer/watch.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from drainer import watch
from drainer.clock import iso
from sandbox.deployment import CLAIMS_TABLE, create_claims_table

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CI = "arn:aws:ecs:us-east-1:123456789012:container-instance/demo/0123"
OTHER_CI = "arn:aws:ecs:us-east-1:123456789012:container-instance/demo/4567"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:ecs-drainer:one"
A, B, C = (f"arn:aws:ecs:us-east-1:123456789012:task/demo/{n}" for n in "abc")


class Calls:
    """Every AWS call the watch makes; Step Functions answers from `refusals` (else {})."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.made: list[tuple[str, str, dict[str, Any]]] = []
        self.refusals: list[str] = []

    def __call__(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        self.made.append((service, operation, params))
        if service != "stepfunctions":
            return self.real(service, operation, **params)
        if self.refusals:
            code = self.refusals.pop(0)
            raise ClientError({"Error": {"Code": code, "Message": code}}, "SendTaskSuccess")
        return {}

    def of(self, service: str) -> list[tuple[str, dict[str, Any]]]:
        return [(operation, params) for s, operation, params in self.made if s == service]

    @property
    def wake_ups(self) -> list[dict[str, Any]]:
        return [
            {"token": params["taskToken"], **json.loads(params["output"])}
            for _, params in self.of("stepfunctions")
        ]


@pytest.fixture
def calls(monkeypatch):
    with mock_aws():
        create_claims_table(boto3.client("dynamodb", region_name="us-east-1"))
        recorder = Calls(watch.call)
        monkeypatch.setattr(watch, "call", recorder)
        yield recorder


def opened(ci: str = CI) -> None:
    watch.open_watch(
        CLAIMS_TABLE,
        ci,
        execution_arn=EXECUTION,
        instance_id="i-0aaaaaaaaaaaaaaa1",
        cluster="demo",
        expires_at=watch.expires_at(None, NOW),
        opened_at=NOW,
    )


def armed(token: str, *alive: str, execution: str = EXECUTION) -> bool:
    return watch.arm(
        CLAIMS_TABLE,
        CI,
        execution_arn=execution,
        token=token,
        alive=alive,
        expires_at=watch.expires_at(None, NOW),
        now=NOW,
    )


def stop(task: str, ci: str = CI) -> str:
    return watch.record_stop(CLAIMS_TABLE, ci, task, NOW)


def item(ci: str = CI) -> dict[str, Any]:
    table = boto3.client("dynamodb", region_name="us-east-1")
    return table.get_item(TableName=CLAIMS_TABLE, Key={"pk": {"S": watch.watch_key(ci)}}).get(
        "Item", {}
    )


def test_the_last_stop_wakes_the_armed_wait(calls):
    opened()
    assert armed("t1", A, B) is False
    assert stop(A) == watch.RECORDED
    assert calls.wake_ups == []
    assert stop(B) == watch.WOKE
    assert calls.wake_ups == [
        {"token": "t1", "wokenBy": watch.TASK_STOPPED, "taskArn": B, "at": iso(NOW)}
    ]


def test_a_stop_between_the_snapshot_and_the_arming_wakes_at_arming(calls):
    """The lost wake-up race: the event comes after the poll saw the task alive but before
    the callback stored its token; the arming sees the stop and wakes at once."""
    opened()
    assert stop(A) == watch.RECORDED  # no token yet: nobody to wake
    assert stop(B) == watch.RECORDED
    assert calls.wake_ups == []
    assert armed("t1", A, B) is True
    assert [w["wokenBy"] for w in calls.wake_ups] == [watch.ALREADY_STOPPED]
    assert calls.wake_ups[0]["token"] == "t1"


def test_tasks_a_poll_still_found_alive_wake_at_arming_once_not_again(calls):
    """A stop recorded, yet the poll after the wake-up still found the task alive: arming
    with the same tasks again waits for the fallback instead of spinning arm → wake → poll."""
    opened()
    stop(A)
    assert armed("t1", A) is True
    assert armed("t2", A) is False  # the same tasks: no second wake at arming
    assert [w["token"] for w in calls.wake_ups] == ["t1"]
    stop(B)
    assert armed("t3", A, B) is True  # other tasks: a stop between poll and arming again


def test_part_of_the_stops_before_arming_and_the_rest_after(calls):
    opened()
    stop(A)
    assert armed("t1", A, B) is False
    assert stop(B) == watch.WOKE
    assert len(calls.wake_ups) == 1


def test_duplicated_and_reordered_events_change_nothing(calls):
    opened()
    armed("t1", A, B, C)
    # C's events twice, then B's before A's: a set records each once, whatever the order.
    assert [stop(C), stop(C), stop(B)] == [watch.RECORDED] * 3
    assert calls.wake_ups == []
    assert item()["stopped"]["SS"] and set(item()["stopped"]["SS"]) == {B, C}
    assert stop(A) == watch.WOKE
    # A's duplicate finds the wait already woken: Step Functions refuses the used token.
    calls.refusals.append("TaskTimedOut")
    assert stop(A) == watch.RECORDED
    assert len(calls.wake_ups) == 2 and set(item()["stopped"]["SS"]) == {A, B, C}


def test_a_stop_on_an_instance_not_draining_is_one_dynamodb_call(calls):
    opened()
    assert stop(A, ci=OTHER_CI) == watch.NOT_WATCHED
    assert [(s, o) for s, o, _ in calls.made[1:]] == [("dynamodb", "update_item")]
    assert item(OTHER_CI) == {}  # and creates nothing


@pytest.mark.parametrize("refusal", sorted(watch.MOVED_ON))
def test_a_wake_up_after_the_execution_moved_on_is_ignored(calls, refusal):
    opened()
    armed("old", A)
    calls.refusals.append(refusal)
    assert stop(A) == watch.RECORDED


def test_other_refusals_of_the_wake_up_raise(calls):
    opened()
    armed("t1", A)
    calls.refusals.append("AccessDeniedException")
    with pytest.raises(ClientError):
        stop(A)


def test_a_new_arming_waits_for_its_own_tasks(calls):
    opened()
    armed("t1", A, B)
    stop(A)
    stop(B)
    # The poll after the wake-up found a task that had not stopped after all (C): the next
    # wait waits for it alone, whatever stopped before.
    assert armed("t2", C) is False
    assert item()["token"]["S"] == "t2"
    assert stop(C) == watch.WOKE
    assert calls.wake_ups[-1]["token"] == "t2"


def test_a_watch_held_by_another_execution_is_left_alone(calls):
    opened()
    assert armed("theirs", A, execution=EXECUTION + "-2") is False
    assert "token" not in item()


def test_arming_without_an_opened_watch_creates_it_with_a_ttl(calls):
    assert armed("t1", A) is False
    assert item()["executionArn"]["S"] == EXECUTION
    assert int(item()["expiresAt"]["N"]) > NOW.timestamp()
    assert stop(A) == watch.WOKE


def test_closing_deletes_only_this_executions_watch(calls):
    opened()
    watch.close_watch(CLAIMS_TABLE, CI, EXECUTION + "-2")
    assert item() != {}
    watch.close_watch(CLAIMS_TABLE, CI, EXECUTION)
    assert item() == {}
    watch.close_watch(CLAIMS_TABLE, CI, EXECUTION)  # already closed: nothing to do
    assert stop(A) == watch.NOT_WATCHED


def draining(at: datetime, ci: str = CI) -> str:
    return watch.record_draining(CLAIMS_TABLE, ci, at)


def test_the_earliest_draining_event_is_ecs_own_moment_of_draining(calls):
    """Every DRAINING event describes the instance after ECS set it DRAINING: the earliest,
    whatever order they come in, is that moment; a duplicate or a later one changes nothing."""
    opened()
    assert watch.draining_since(CLAIMS_TABLE, CI) is None
    later, first = NOW + timedelta(seconds=40), NOW + timedelta(seconds=1)
    assert draining(later) == watch.RECORDED  # a task's stop came first
    assert draining(first) == watch.RECORDED  # the status change's own event, late
    assert [draining(first), draining(later)] == [watch.NOT_WATCHED] * 2
    assert watch.draining_since(CLAIMS_TABLE, CI) == first


def test_a_draining_event_from_before_the_watch_is_not_recorded(calls):
    """An event of an earlier drain of the same instance, delivered late, is older than this
    drain's watch: recording it would count tasks told to stop before this DRAINING."""
    opened()
    assert draining(NOW - timedelta(seconds=5)) == watch.NOT_WATCHED
    assert watch.draining_since(CLAIMS_TABLE, CI) is None


def test_a_draining_event_for_an_instance_without_a_watch_writes_nothing(calls):
    assert draining(NOW) == watch.NOT_WATCHED
    assert item() == {}
