"""The real ASL file on moto's interpreter, with the real handlers, against the simulated world.

The acceptance runs: a lifecycle drain to completion, the Spot branch, each rebalance
policy, and instances in no cluster.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from sandbox.harness import Harness
from simulated_aws import World
from stacks.config import DrainerConfig
from tests.executions import names_of_states
from tests.worlds import CLUSTER, GROUP, with_settings, world_for


def build_world(config: DrainerConfig, instances: int = 3) -> tuple[World, list[str]]:
    world, ids = world_for(config, instances)
    world.add_service(
        CLUSTER,
        "web",
        desired=6,
        min_healthy=100,
        max_percent=200,
        start_seconds=40,
        stop_seconds=10,
        deregistration_delay_seconds=60,
    )
    world.add_service(CLUSTER, "logs", desired=0, daemon=True, deregistration_delay_seconds=0)
    return world, ids


def only_outcome(harness: Harness) -> dict:
    (outcome,) = harness.outcomes()
    return outcome


def test_lifecycle_drain_runs_to_completion(config):
    world, (victim, *_) = build_world(config)
    with Harness(world, config) as harness:
        action = world.asg.scale_in(GROUP, victim)
        harness.run()
        (delivery,) = harness.deliveries
        execution = harness.execution(delivery.execution_arn)
        outcome = only_outcome(harness)

    assert execution["status"] == "SUCCEEDED"
    assert outcome["outcome"] == "drained"
    assert outcome["actionCompleted"] is True
    (termination,) = world.terminations
    assert termination.cause == "completed"
    assert termination.tasks_killed == []  # nothing was still running, stopping included
    assert action.ended_by == "completed"
    states = names_of_states(execution["history"])
    # Resolve claims the drain itself: no Claim Task or "duplicate?" Choice before DRAINING;
    # only the start slot's Wait, before the first ECS call.
    assert states[:4] == [
        "Resolve drain request",
        "Route by event kind",
        "Wait for a drain start slot",
        "Start draining",
    ]
    # The drain ends by completing the action, then reporting (the last state).
    assert states[-3:] == ["Check drain progress", "Complete lifecycle action", "Report outcome"]


def test_spot_interruption_drains_first_and_ends_by_the_interruption(config):
    world, (victim, *_) = build_world(config)
    with Harness(world, config) as harness:
        event = world.spot_interrupt(victim)
        harness.run()
        world.clock.run_for(180, active=harness.running)  # past the interruption
        (delivery,) = harness.deliveries
        execution = harness.execution(delivery.execution_arn)
        outcome = only_outcome(harness)

    states = names_of_states(execution["history"])
    # DRAINING first (the claim follows inside "Start draining"), then the loop lifecycle
    # drains share, without its heartbeats.
    assert states[:4] == [
        "Resolve drain request",
        "Route by event kind",
        "Start draining",
        "Check drain progress",
    ]
    assert "Record heartbeat" not in states
    assert outcome["outcome"] in {"spot-drained", "spot-interrupted"}
    assert outcome["kind"] == "spot"
    ended = execution["history"][-1]["timestamp"]
    (termination,) = world.terminations
    assert termination.cause == "spot-interruption"
    assert ended <= termination.time, f"execution ended {ended}, interruption {termination.time}"
    assert event["detail"]["instance-id"] == victim


def test_rebalance_is_ignored_by_default(config):
    world, (victim, *_) = build_world(config)
    with Harness(world, config) as harness:
        world.rebalance_recommendation(victim)
        harness.run()
        outcome = only_outcome(harness)
    assert outcome["outcome"] == "rebalance-ignored"
    assert world.terminations == []
    assert "ecs:UpdateContainerInstancesState" not in world.api_call_counts()


def test_rebalance_drain_policy_sets_draining(config):
    config = with_settings(config, rebalance_policy="drain")
    world, (victim, *_) = build_world(config)
    with Harness(world, config) as harness:
        world.rebalance_recommendation(victim)
        harness.run(max_virtual_seconds=600)
        outcome = only_outcome(harness)
    assert outcome["outcome"] == "rebalance-draining"
    assert world.ecs.container_instance(victim).status == "DRAINING"


def test_rebalance_replace_policy_hands_over_to_the_lifecycle_branch(config):
    config = with_settings(config, rebalance_policy="replace")
    world, (victim, *_) = build_world(config)
    with Harness(world, config) as harness:
        world.rebalance_recommendation(victim)
        harness.run()
        outcomes = {item["kind"]: item["outcome"] for item in harness.outcomes()}
    assert outcomes == {"rebalance": "replacement-requested", "lifecycle": "drained"}
    (termination,) = world.terminations
    assert (termination.instance_id, termination.cause, termination.tasks_killed) == (
        victim,
        "completed",
        [],
    )


def test_lifecycle_instance_in_no_cluster_is_completed_at_once(config):
    world, _ = build_world(config)
    stray = world.add_instance(cluster=None, group=GROUP)
    with Harness(world, config) as harness:
        world.asg.scale_in(GROUP, stray)
        harness.run()
        outcome = only_outcome(harness)
    assert outcome["outcome"] == "not-in-cluster"
    assert outcome["actionCompleted"] is True
    (termination,) = world.terminations
    assert termination.cause == "completed"
    assert termination.time - world.lifecycle_actions[0].started < timedelta(seconds=5)


@pytest.mark.parametrize("kind", ["spot", "rebalance"])
def test_account_wide_events_for_other_instances_end_as_not_ours(config, kind):
    config = with_settings(config, rebalance_policy="drain")
    world, _ = build_world(config)
    stranger = world.add_instance(cluster=None, group=None)
    with Harness(world, config) as harness:
        if kind == "spot":
            world.spot_interrupt(stranger)
        else:
            world.rebalance_recommendation(stranger)
        harness.run()
        (delivery,) = harness.deliveries
        execution = harness.execution(delivery.execution_arn)
        outcome = only_outcome(harness)
    assert execution["status"] == "SUCCEEDED"
    assert outcome["outcome"] == "not-ours"
    assert len(execution["history"]) < 20
