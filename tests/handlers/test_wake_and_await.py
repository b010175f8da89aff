"""The wake and await functions on their own: thin handlers over drainer/watch.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import await_stops
import pytest
import wake_drain
from hypothesis import given, settings
from hypothesis import strategies as st

from drainer import watch
from drainer.clock import parse_iso
from tools.offline import ROOT

FARGATE = json.loads(
    (ROOT / "tests/fixtures/aws-sample-events/ecs-task-state-change-fargate.json").read_text()
)
EC2 = json.loads((ROOT / "tests/fixtures/aws-sample-events/ecs-task-state-change.json").read_text())
INSTANCE = json.loads(
    (ROOT / "tests/fixtures/aws-sample-events/ecs-container-instance-state-change.json").read_text()
)


@pytest.fixture
def calls(monkeypatch) -> list[tuple[Any, ...]]:
    made: list[tuple[Any, ...]] = []
    monkeypatch.setattr(watch, "call", lambda *args, **params: made.append(args) or {})
    monkeypatch.setattr(
        watch, "record_stop", lambda *args: made.append(("record_stop", *args)) or watch.RECORDED
    )
    monkeypatch.setattr(
        watch,
        "record_draining",
        lambda *args: made.append(("record_draining", *args)) or watch.RECORDED,
    )
    return made


def stopped(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "detail": {**event["detail"], "lastStatus": "STOPPED"}}


def test_a_fargate_task_is_ignored_before_any_call(calls):
    assert "containerInstanceArn" not in FARGATE["detail"]
    answer = wake_drain.handler(stopped(FARGATE), None)  # no settings read, no AWS call
    assert answer == {"result": wake_drain.IGNORED} and calls == []


def test_an_ec2_task_stop_is_recorded_against_its_container_instance(calls):
    answer = wake_drain.wake(stopped(EC2), lambda: "claims", None)
    assert answer == {"result": watch.RECORDED}
    detail = EC2["detail"]
    assert calls == [
        ("record_stop", "claims", detail["containerInstanceArn"], detail["taskArn"], None, None)
    ]


def test_a_task_not_stopped_is_ignored(calls):
    assert wake_drain.wake(EC2, lambda: "claims", None) == {"result": wake_drain.IGNORED}
    assert calls == []


def test_a_draining_instance_event_records_when_draining_began(calls):
    event = {**INSTANCE, "detail": {**INSTANCE["detail"], "status": "DRAINING"}}
    assert wake_drain.wake(event, lambda: "claims", None) == {"result": watch.RECORDED}
    detail = event["detail"]
    assert calls == [
        (
            "record_draining",
            "claims",
            detail["containerInstanceArn"],
            parse_iso(detail["updatedAt"]),
        )
    ]


@pytest.mark.parametrize("updated_at", [None, 1481042466991, "yesterday"])
def test_a_draining_event_without_a_readable_moment_is_ignored(calls, updated_at):
    detail = {**INSTANCE["detail"], "status": "DRAINING", "updatedAt": updated_at}
    assert wake_drain.wake({**INSTANCE, "detail": detail}, lambda: "claims", None) == {
        "result": wake_drain.IGNORED
    }
    assert calls == []


def test_an_instance_event_of_another_status_or_kind_is_ignored(calls):
    assert INSTANCE["detail"]["status"] == "ACTIVE"
    assert wake_drain.wake(INSTANCE, lambda: "claims", None) == {"result": wake_drain.IGNORED}
    other = {**stopped(EC2), "detail-type": "ECS Service Action"}
    assert wake_drain.wake(other, lambda: "claims", None) == {"result": wake_drain.IGNORED}
    assert calls == []


def test_the_await_function_arms_with_the_awaited_tasks(monkeypatch):
    armed: list[dict[str, Any]] = []
    monkeypatch.setattr(
        watch, "arm", lambda table, ci, **kw: armed.append({"ci": ci, **kw}) or False
    )
    event = {
        "taskToken": "t",
        "executionArn": "arn:x",
        "request": {"deadline": None},
        "target": {"containerInstanceArn": "ci"},
        "progress": {"awaitedTasks": ["a", "b"], "aliveTasks": ["a", "b", "daemon"]},
    }
    answer = await_stops.await_stops(event, "claims", datetime(2026, 1, 5, tzinfo=UTC))
    assert answer == {"armed": True, "woke": False}
    ((arming),) = armed
    assert (arming["ci"], arming["token"], arming["alive"]) == ("ci", "t", ["a", "b"])
    assert arming["execution_arn"] == "arn:x"


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=30),
    st.lists(st.text(max_size=10), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    base=st.sampled_from([EC2, INSTANCE]),
    field=st.sampled_from(
        [
            "detail-type",
            "detail",
            "containerInstanceArn",
            "taskArn",
            "lastStatus",
            "status",
            "updatedAt",
        ]
    ),
    junk=JUNK,
)
def test_a_mangled_ecs_event_never_raises_and_writes_only_what_it_names(base, field, junk):
    """Whatever one field of a task or container instance event holds, the wake function
    answers without raising (a raise would retry the event, then dead-letter it), and records
    only a STOPPED task or a DRAINING moment with the ids that event carries."""
    event = stopped(base) if base is EC2 else {**base, "detail": {**base["detail"]}}
    event["detail"]["status"] = "DRAINING" if base is INSTANCE else None
    if field in ("detail-type", "detail"):
        event[field] = junk
    else:
        event["detail"][field] = junk
    made: list[tuple[Any, ...]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(watch, "record_stop", lambda *args: made.append(args) or watch.RECORDED)
        patch.setattr(watch, "record_draining", lambda *args: made.append(args) or watch.RECORDED)
        answer = wake_drain.wake(event, lambda: "claims", datetime(2026, 1, 5, tzinfo=UTC))
    assert answer["result"] in (wake_drain.IGNORED, watch.RECORDED)
    for _table, instance, *rest in made:
        assert isinstance(instance, str) and instance == event["detail"]["containerInstanceArn"]
        assert rest and all(value is None or isinstance(value, str | datetime) for value in rest)
