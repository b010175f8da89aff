from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from simulated_aws import World

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "aws-sample-events"


def test_spot_interruption_warns_then_terminates_120s_later(world: World) -> None:
    events: list[dict[str, Any]] = []
    world.subscribe(events.append)
    world.add_cluster("demo")
    instance = world.add_instance(cluster="demo")
    world.add_service("demo", "web", desired=1)
    world.clock.advance(17.5)
    event = world.spot_interrupt(instance)
    sample = json.loads((SAMPLES / "ec2-spot-interruption-warning.json").read_text())
    assert list(event) == list(sample) and list(event["detail"]) == list(sample["detail"])
    assert event["detail"] == {"instance-id": instance, "instance-action": "terminate"}
    assert event["resources"] == [f"arn:aws:ec2:us-east-1:123456789012:instance/{instance}"]
    assert event["time"] == "2026-01-05T09:00:17Z"
    assert events[-1] == event
    world.clock.advance(119)  # 09:02:16.5
    assert world.terminations == []
    world.clock.advance(1)
    (termination,) = world.terminations
    assert termination.cause == "spot-interruption"
    event_time = datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert termination.time == event_time + timedelta(seconds=120)
    assert [status for _, status in termination.tasks_killed] == ["RUNNING"]


def test_rebalance_recommendation_only_emits(world: World) -> None:
    instance = world.add_instance()  # a plain EC2 instance: no cluster, no group
    event = world.rebalance_recommendation(instance)
    sample = json.loads((SAMPLES / "ec2-rebalance-recommendation.json").read_text())
    assert list(event) == list(sample)
    assert event["detail-type"] == "EC2 Instance Rebalance Recommendation"
    world.clock.advance(3600)
    assert world.terminations == []


def test_spot_for_an_instance_in_no_cluster_still_fires(world: World) -> None:
    instance = world.add_instance()
    world.spot_interrupt(instance)
    world.clock.advance(120)
    assert [(t.instance_id, t.cause, t.tasks_killed) for t in world.terminations] == [
        (instance, "spot-interruption", [])
    ]


def test_capacity_rebalance_runs_the_hook_but_cannot_delay_the_interruption(world: World) -> None:
    events: list[dict[str, Any]] = []
    world.subscribe(events.append)
    world.add_cluster("demo")
    world.add_group("spot-asg", heartbeat_timeout=1800, capacity_rebalance=True)
    instance = world.add_instance(cluster="demo", group="spot-asg")
    world.spot_interrupt(instance)
    kinds = [e["detail-type"] for e in events if e["source"] != "aws.ecs"]
    assert kinds == [
        "EC2 Spot Instance Interruption Warning",
        "EC2 Instance-terminate Lifecycle Action",
    ]
    (action,) = world.lifecycle_actions
    world.clock.advance(120)
    assert world.terminations[0].cause == "spot-interruption"
    assert (action.active, action.ended_by) == (False, "instance-terminated")
    assert len(world.asg.groups["spot-asg"].instances) == 1  # the replacement
