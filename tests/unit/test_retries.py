"""Every Task of the state machine retries every transient Lambda service error."""

from __future__ import annotations

import json

import pytest

from statemachine.build import DEFINITION_FILE, TRANSIENT_LAMBDA_ERRORS

STATES = json.loads(DEFINITION_FILE.read_text())["States"]
TASKS = sorted(name for name, state in STATES.items() if state["Type"] == "Task")


def test_the_definition_has_tasks():
    assert len(TASKS) >= 10


@pytest.mark.parametrize("name", TASKS)
def test_every_task_retries_every_transient_lambda_error(name):
    retried = {
        error
        for retrier in STATES[name].get("Retry", [])
        if retrier["MaxAttempts"] > 0
        for error in retrier["ErrorEquals"]
    }
    if "States.ALL" in retried or "States.TaskFailed" in retried:
        return
    missing = [error for error in TRANSIENT_LAMBDA_ERRORS if error not in retried]
    assert not missing, f"{name!r} does not retry {missing}"
