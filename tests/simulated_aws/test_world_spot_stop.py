"""Spot `stop`/`hibernate` in the world: the instance is stopped and kept, and comes back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simulated_aws import World

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "aws-sample-events"


@pytest.mark.parametrize("action", ["stop", "hibernate"])
def test_a_stopped_spot_instance_comes_back_with_the_status_it_had(
    world: World, action: str
) -> None:
    events: list[dict[str, Any]] = []
    world.subscribe(events.append)
    world.add_cluster("demo")
    instance = world.add_instance(cluster="demo")
    world.add_service("demo", "web", desired=1)
    world.spot_interrupt(instance, action)
    ci = world.ecs.container_instance(instance)
    ci.status = "DRAINING"  # as a drain would have set it
    world.clock.advance(120)
    assert world.terminations == []
    (stop,) = world.stops
    assert [status for _, status in stop.tasks_killed] == ["RUNNING"]
    assert (world.instances[instance].state, ci.status, ci.agent_connected) == (
        "stopped",
        "DRAINING",
        False,
    )
    world.clock.advance(3600)
    world.start_instance(instance)
    assert (ci.status, ci.agent_connected) == ("DRAINING", True)
    returned = events[-1]
    sample = json.loads((SAMPLES / "ecs-container-instance-state-change.json").read_text())
    assert list(returned) == list(sample)
    assert returned["detail-type"] == sample["detail-type"]
    # the sample's fields, and the task counts of the ContainerInstance the detail resembles
    counts = {"runningTasksCount", "pendingTasksCount"}
    assert set(returned["detail"]) == set(sample["detail"]) | counts
    assert returned["detail"]["status"] == "DRAINING"
    assert returned["detail"]["agentConnected"] is True
    assert returned["detail"]["version"] == ci.version
    assert world.tasks_on(instance, live=True) == []  # nothing placed on a DRAINING instance


def test_auto_scaling_spot_instances_are_always_terminated(world: World) -> None:
    world.add_cluster("demo")
    world.add_group("spot-asg", heartbeat_timeout=1800)
    instance = world.add_instance(cluster="demo", group="spot-asg")
    with pytest.raises(ValueError, match="always terminated"):
        world.spot_interrupt(instance, "stop")
