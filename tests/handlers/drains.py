"""State documents of lifecycle drains for the handler tests."""

from __future__ import annotations

import resolve

from drainer import progress
from drainer.request import DrainRequest
from drainer.settings import settings
from tests.steps import ARN
from tests.worlds import GROUP


def resolved(world, event) -> dict:
    return resolve.handler({"event": event, "executionArn": ARN}, None)


def lifecycle_state(world, instance_id: str) -> dict:
    """The document Resolve makes of a scale-in of `instance_id`."""
    return resolved(world, world.asg.scale_in(GROUP, instance_id).event)


def first_heartbeat_gap(state: dict) -> int:
    """When the drain's first heartbeat falls due (its instance's phase: drainer/progress.py)."""
    request = DrainRequest.from_state(state["request"])
    return int(progress.heartbeat_gap(request, {"heartbeats": 0}, settings()))
