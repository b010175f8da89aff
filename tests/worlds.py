"""The worlds the test suites drain: one cluster and one Auto Scaling group carrying the
configured lifecycle hook, as the stack would create it."""

from __future__ import annotations

import math
from typing import Any

import boto3

from drainer import pacing
from sandbox.harness import CLAIMS_TABLE, REGION
from simulated_aws import World
from stacks.config import DrainerConfig, validate

CLUSTER, GROUP = "demo", "demo-asg"


def with_settings(config: DrainerConfig, **changes: Any) -> DrainerConfig:
    """The configuration with `changes`, validated as `cdk synth` would."""
    return validate({**config.model_dump(), **changes})


def world_for(
    config: DrainerConfig, instances: int = 3, capacity: int = 10, **group: Any
) -> tuple[World, list[str]]:
    """`instances` container instances of CLUSTER in GROUP (whose hook is the configured one),
    each with room for `capacity` tasks; no services yet."""
    world = World()
    world.add_cluster(CLUSTER)
    world.add_group(
        GROUP,
        hook_name=config.lifecycle_hook_name,
        heartbeat_timeout=config.heartbeat_timeout_seconds,
        **group,
    )
    ids = [
        world.add_instance(cluster=CLUSTER, group=GROUP, max_tasks=capacity)
        for _ in range(instances)
    ]
    return world, ids


def drain_world(
    config: DrainerConfig, victims: int = 1, spares: int = 2, tasks: int = 4, **group: Any
) -> tuple[World, list[str]]:
    """`victims` instances to take out, each carrying `tasks` tasks of a service behind a load
    balancer (so a task killed while it still serves shows in `record().tasks_killed`), and
    `spares` instances, added after the service, to take the tasks over."""
    world, ids = world_for(config, instances=victims, **group)
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


def take_slots(world: World, seconds: float, key: str = pacing.PACING_KEY) -> float:
    """A pacing item (drainer/pacing.py: start slots, or poll slots with POLL_KEY) as after a
    refresh's earlier drains, many of them in flight: its next slot `seconds` from now."""
    slot = world.clock.now().timestamp() + seconds
    boto3.client("dynamodb", region_name=REGION).put_item(
        TableName=CLAIMS_TABLE,
        Item={
            "pk": {"S": key},
            "nextSlot": {"N": repr(slot)},
            "expiresAt": {"N": str(math.ceil(slot) + pacing.KEEP_SECONDS)},
        },
    )
    return slot
