"""The definition file is what statemachine/build.py writes, and speaks the handlers' language."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import rescue_execution

from drainer import progress, request, state
from drainer.request import DrainRequest
from statemachine import build
from tests.conftest import install_settings

DEFINITION = json.loads(build.DEFINITION_FILE.read_text())
STATES = DEFINITION["States"]
# The state document paths Choice rules read, and the constants their strings must come from.
CONSTANTS = {
    "$.progress.verdict": set(progress.VERDICTS),
    "$.request.route": {v for k, v in vars(request).items() if k.startswith("ROUTE_")},
    "$.request.kind": {request.LIFECYCLE, request.SPOT, request.REBALANCE, request.INVALID},
}


def rules(rule: dict[str, Any]) -> list[dict[str, Any]]:
    """A Choice rule and every rule nested in it (Not, And, Or)."""
    nested = [rule.get("Not")] if "Not" in rule else rule.get("And", []) + rule.get("Or", [])
    return [rule] + [inner for part in nested for inner in rules(part)]


def test_the_committed_file_is_what_the_builder_writes():
    assert build.DEFINITION_FILE.read_text() == build.text(), "run `make statemachine`"


def test_every_choice_string_is_a_handler_constant():
    compared = 0
    for name, definition in STATES.items():
        for top in definition.get("Choices", []):
            for rule in rules(top):
                if "StringEquals" not in rule:
                    continue
                assert rule["Variable"] in CONSTANTS, f"{name}: {rule['Variable']}"
                assert rule["StringEquals"] in CONSTANTS[rule["Variable"]], f"{name}: {rule}"
                compared += 1
    assert compared >= 10


def test_the_drain_loop_has_a_branch_for_every_verdict():
    check = STATES[build.CHECK]
    branched = {rule["StringEquals"] for rule in check["Choices"]}
    assert branched | {progress.WAIT} == set(progress.VERDICTS)
    assert check["Default"] == build.WAIT
    # One loop for every drain kind: nothing else polls or waits for tasks.
    polls = [name for name, s in STATES.items() if "PollTasks" in json.dumps(s.get("Parameters"))]
    assert polls == [build.POLL]
    assert [name for name, s in STATES.items() if s["Type"] == "Wait"] == [
        build.PACE,
        build.WAIT,
        build.CEILING_WAIT,
        build.RESCUE_WAIT,
    ]


def test_the_rescue_function_names_the_rescue_path_as_built():
    assert rescue_execution.FAIL_STATE == build.FAILED
    assert rescue_execution.RESCUE_CHOICE == build.RESCUE
    assert rescue_execution.GRACE_STATE == build.RESCUE_WAIT
    assert STATES[build.RESCUE_WAIT]["Next"] == build.RESCUE_COMPLETE


def test_every_task_but_resolve_writes_one_part_in_its_shape():
    # Resolve writes the first document; Start draining the whole of it again (a lifecycle
    # drain's target is found there, after its start slot).
    for name in (build.RESOLVE, build.START):
        assert STATES[name]["OutputPath"] == "$.Payload"
        assert "ResultPath" not in STATES[name]
    for name, definition in STATES.items():
        if definition["Type"] != "Task" or name in (build.RESOLVE, build.START, build.AWAIT):
            continue
        part = definition["ResultPath"].removeprefix("$.")
        assert part in {"progress", "completion", "replacement", "outcome"}, name
        assert part in state.StateDocument.__annotations__
        selected = [key.removesuffix(".$") for key in definition["ResultSelector"]]
        assert selected == list(state.keys(getattr(state, part.title()))), name
        assert "OutputPath" not in definition


def test_the_first_progress_has_every_key_its_tasks_select(config):
    settings = install_settings(config)
    first = progress.initial(
        DrainRequest(
            kind=request.LIFECYCLE,
            instance_id="i-0aaaaaaaaaaaaaaa1",
            reason="scale-in",
            event_id="e",
            event_time="2026-01-05T09:00:00Z",
            source="aws.autoscaling",
            detail_type="x",
            route=request.ROUTE_LIFECYCLE,
        ),
        None,
        settings,
        datetime(2026, 1, 5, 9, tzinfo=UTC),
    )
    assert set(first) == set(state.keys(state.Progress))


def test_the_typed_request_is_the_drain_requests_state():
    drain_request = DrainRequest(
        kind=request.SPOT,
        instance_id="i-0aaaaaaaaaaaaaaa1",
        reason="spot",
        event_id="e",
        event_time="2026-01-05T09:00:00Z",
        source="aws.ec2",
        detail_type="x",
    )
    assert list(drain_request.to_state()) == list(state.keys(state.Request))


def test_the_awaited_wait_is_a_callback_that_times_out_into_the_poll():
    """The wake-up (or the timeout, the fallback poll) leads to the poll, which asks ECS; any
    failure of the callback falls back to the timer wait, never to the rescue path."""
    awaited = STATES[build.AWAIT]
    assert awaited["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert awaited["Parameters"]["Payload"]["taskToken.$"] == "$$.Task.Token"
    assert awaited["TimeoutSecondsPath"] == "$.progress.nextWaitSeconds"
    assert (awaited["ResultPath"], awaited["Next"]) == ("$.wake", build.POLL)
    # A retry waits its whole timeout again: Lambda's transient errors only, never the timeout.
    assert awaited["Retry"] == build.AWAIT_RETRY
    assert "States.Timeout" not in str(awaited["Retry"])
    assert [(c["ErrorEquals"], c["Next"]) for c in awaited["Catch"]] == [
        (["States.Timeout"], build.POLL),
        (["States.ALL"], build.WAIT),
    ]
    assert {
        "Variable": "$.progress.verdict",
        "StringEquals": progress.AWAIT,
        "Next": build.AWAIT,
    } in (STATES[build.CHECK]["Choices"])
