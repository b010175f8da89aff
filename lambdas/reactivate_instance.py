"""Lambda: set a Spot instance the drainer parked (stop/hibernate) ACTIVE when it comes back.

EventBridge invokes it for "ECS Container Instance State Change" events of the configured
clusters' container instances that are connected and DRAINING (stacks/event_patterns.py). Only
an instance noted as parked by a Spot drain, seen after its interruption, is changed; every other
event costs one GetItem. See drainer/parking.py.
"""

from __future__ import annotations

from typing import Any

from drainer.clock import utcnow
from drainer.parking import reactivate
from drainer.settings import settings


def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    config = settings()
    return reactivate(config.claims_table, event, config.dry_run, utcnow())
