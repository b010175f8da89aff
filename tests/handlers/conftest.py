"""The world the handler tests share: three instances in one cluster, a web service of three."""

from __future__ import annotations

import pytest

from sandbox.harness import Harness
from tests.worlds import CLUSTER, world_for


@pytest.fixture
def env(config):
    world, ids = world_for(config)
    world.add_service(CLUSTER, "web", desired=3, deregistration_delay_seconds=60)
    with Harness(world, config) as harness:
        yield world, ids, harness
