"""The checks every reliability scenario ends with (its worlds come from tests/worlds.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from drainer.outcome import OUTCOMES
from sandbox.harness import Harness, ScenarioRecord
from simulated_aws import World
from tests.reliability import tally

# Bounds no drain of these scenarios comes near: a drain that retried forever would hit them.
MAX_VIRTUAL_SECONDS = 6 * 3600
MAX_TRANSITIONS = 400


def finish(harness: Harness, name: str, **run: Any) -> ScenarioRecord:
    """Run to the end; assert nothing was retried forever and every drain said how it ended."""
    harness.run(max_virtual_seconds=MAX_VIRTUAL_SECONDS, wall_timeout=60, **run)
    record = harness.record()
    published = {outcome["executionArn"] for outcome in harness.outcomes()}
    for drain, delivery in zip(record.drains, harness.drain_deliveries(), strict=True):
        assert drain.status in ("SUCCEEDED", "FAILED"), (name, drain)
        assert drain.state_transitions <= MAX_TRANSITIONS, (name, drain)
        assert drain.outcome in OUTCOMES, (name, drain)
        assert delivery.execution_arn in published
    return record


def assert_clean(record: ScenarioRecord, world: World, name: str) -> None:
    """No task killed while it ran; every lifecycle action completed by the drainer."""
    assert record.tasks_killed == [], (name, record.tasks_killed)
    tally.actions_completed(world.lifecycle_actions, name)


def later(world: World, seconds: float, action: Callable[[], object]) -> None:
    world.call_later(seconds, action, "reliability scenario")


def error_type(outcome: dict[str, Any]) -> str:
    """The Lambda error type a failed outcome names (Step Functions puts the Lambda's error
    document in Cause)."""
    error = outcome["error"] or {}
    try:
        return json.loads(error.get("Cause") or "{}").get("errorType") or error.get("Error", "")
    except json.JSONDecodeError:
        return str(error.get("Error", ""))
