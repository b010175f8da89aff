"""The harness counts running executions as moto ends them (no scan per clock step): the same
count as a scan of every execution, while drains run and after they end."""

from __future__ import annotations

from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from sandbox.deployment import ACCOUNT, REGION, running_executions
from sandbox.harness import Harness
from stacks.config import DrainerConfig
from tests.worlds import GROUP, drain_world


def scanned() -> int:
    backend = stepfunctions_parser_backends[ACCOUNT][REGION]
    return sum(
        1 for e in backend._get_executions() if e.exec_status is None or e.status == "RUNNING"
    )


def test_running_executions_counts_as_a_scan_would(config: DrainerConfig) -> None:
    world, victims = drain_world(config, victims=3)
    seen: list[tuple[int, int]] = []
    with Harness(world, config) as harness:
        for victim in victims:
            world.asg.scale_in(GROUP, victim)
        world.clock.call_later(40, lambda: seen.append((running_executions(), scanned())))
        harness.run(wall_timeout=120)
        seen.append((running_executions(), scanned()))
        assert len(harness.record().drains) == 3
    assert seen == [(3, 3), (0, 0)]
