"""A small drain world and the checks every reliability scenario ends with."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from drainer.outcome import OUTCOMES
from stacks.config import DrainerConfig
from tests.harness import Harness, ScenarioRecord
from tests.reliability import tally
from tests.test_scenarios import with_settings  # noqa: F401 - re-exported for the tests here
from tests.world import World

CLUSTER, GROUP = "demo", "demo-asg"
# Bounds no drain of these scenarios comes near: a drain that retried forever would hit them.
MAX_VIRTUAL_SECONDS = 6 * 3600
MAX_TRANSITIONS = 400


def drain_world(
    config: DrainerConfig, victims: int = 1, spares: int = 2, tasks: int = 4, **group: Any
) -> tuple[World, list[str]]:
    """`victims` instances to take out, `spares` to take their tasks; a service behind a load
    balancer, so a task killed while it still serves shows in `record().tasks_killed`."""
    world = World()
    world.add_cluster(CLUSTER)
    world.add_group(
        GROUP,
        hook_name=config.lifecycle_hook_name,
        heartbeat_timeout=config.heartbeat_timeout_seconds,
        **group,
    )
    ids = [world.add_instance(cluster=CLUSTER, group=GROUP) for _ in range(victims)]
    world.add_service(
        CLUSTER,
        "web",
        desired=tasks * victims,
        start_seconds=10,
        stop_seconds=5,
        deregistration_delay_seconds=30,
    )
    for _ in range(spares):
        world.add_instance(cluster=CLUSTER, group=GROUP)
    for victim in ids:
        assert world.tasks_on(victim, live=True), "the victim must carry tasks"
    return world, ids


def finish(harness: Harness, name: str, **run: Any) -> ScenarioRecord:
    """Run to the end; assert nothing was retried forever and every drain said how it ended."""
    harness.run(max_virtual_seconds=MAX_VIRTUAL_SECONDS, wall_timeout=60, **run)
    record = harness.record()
    published = {outcome["executionArn"] for outcome in harness.outcomes()}
    for drain, delivery in zip(record.drains, harness.deliveries, strict=True):
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
