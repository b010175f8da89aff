"""Start and poll slots (drainer/pacing.py) on the real definition and handlers, on the virtual
clock.

A refresh of more instances than fit before the first heartbeat at drain_start_rate_per_second
leaves the later drains' slots past it: each keeps its lifecycle action alive while it waits and
starts at its slot, not all at once as the heartbeat falls due. In poll mode the polls of the
drains in flight are paced the same way (poll_rate_per_second).
"""

from __future__ import annotations

from datetime import timedelta

import boto3

from drainer import pacing
from sandbox.harness import REGION, Harness
from simulated_aws import World
from tests.executions import names_of_states
from tests.worlds import CLUSTER, GROUP, take_slots, world_for

TAKEN_SECONDS = 1_500  # slots already handed out: past the second heartbeat (600 s apart)
TASK_READS = {"ListTasks", "DescribeTasks"}


def quick_world(config) -> tuple[World, list[str]]:
    world, ids = world_for(config)
    world.add_service(
        CLUSTER, "api", desired=3, start_seconds=5, stop_seconds=5, deregistration_delay_seconds=0
    )
    return world, ids


def draining_at(world: World) -> list:
    return [
        call.time
        for call in world.api_calls
        if call.operation == "UpdateContainerInstancesState" and call.outcome == "ok"
    ]


def test_a_slot_past_the_first_heartbeat_keeps_the_action_alive_and_starts_at_the_slot(config):
    world, (victim, *_) = quick_world(config)
    interval = config.heartbeat_timeout_seconds // 3
    with Harness(world, config) as harness:
        slot = take_slots(world, TAKEN_SECONDS)
        action = world.asg.scale_in(GROUP, victim)
        harness.run()
        (delivery,) = harness.deliveries
        history = harness.execution(delivery.execution_arn)["history"]
        (outcome,) = harness.outcomes()

    assert outcome["outcome"] == "drained"
    assert action.ended_by == "completed"
    assert world.terminations[0].tasks_killed == []
    # DRAINING at the slot, not before it and not at the first heartbeat.
    (started,) = draining_at(world)
    since_slot = started.timestamp() - slot
    assert 0 <= since_slot < 2, since_slot
    # No ECS call before the slot: waiting costs ECS nothing.
    before = [c for c in world.api_calls if c.service == "ecs" and c.time.timestamp() < slot]
    assert before == []
    # A heartbeat as each one fell due while it waited, none late.
    beats = [b for b in action.heartbeats if b < started]
    assert len(beats) == TAKEN_SECONDS // interval
    gaps = [b - a for a, b in zip([action.started, *beats], [*beats, started], strict=True)]
    assert max(gaps) <= timedelta(seconds=interval + 1)
    # Each round: the slot's Wait, "Start draining" (no ECS call), the heartbeat, and back.
    states = names_of_states(history)
    round_trip = [
        "Wait for a drain start slot",
        "Start draining",
        "Check drain progress",
        "Record heartbeat",
        "Check drain progress",
    ]
    rounds = TAKEN_SECONDS // interval
    assert states[2 : 2 + 5 * rounds] == round_trip * rounds
    assert states[2 + 5 * rounds : 4 + 5 * rounds] == [
        "Wait for a drain start slot",
        "Start draining",
    ]


def test_a_slot_before_the_first_heartbeat_costs_no_transition_more(config):
    """The common case: Resolve, its Route, the slot's Wait, Start draining, as without pacing."""
    transitions = {}
    for taken in (0, 300):
        world, (victim, *_) = quick_world(config)
        with Harness(world, config) as harness:
            slot = take_slots(world, taken)
            world.asg.scale_in(GROUP, victim)
            harness.run()
            (drain,) = harness.record().drains
            (started,) = draining_at(world)
        assert 0 <= started.timestamp() - slot < 2
        assert world.lifecycle_actions[0].heartbeats == []
        transitions[taken] = drain.state_transitions
    assert transitions[300] == transitions[0]


def test_an_action_ended_while_its_drain_waits_for_its_slot_ends_the_drain(config):
    world, (victim, *_) = quick_world(config)
    interval = config.heartbeat_timeout_seconds // 3
    with Harness(world, config) as harness:
        take_slots(world, TAKEN_SECONDS)
        action = world.asg.scale_in(GROUP, victim)

        def operator_completes() -> None:  # before the first heartbeat falls due
            boto3.client("autoscaling", region_name=REGION).complete_lifecycle_action(
                AutoScalingGroupName=GROUP,
                LifecycleHookName=config.lifecycle_hook_name,
                LifecycleActionToken=action.token,
                LifecycleActionResult="CONTINUE",
            )

        world.call_later(interval - 60, operator_completes)
        harness.run()
        (outcome,) = harness.outcomes()
    assert outcome["outcome"] == "action-ended-externally"
    assert draining_at(world) == []  # never set DRAINING
    assert not any(call.service == "ecs" for call in world.api_calls)


def test_a_poll_waits_for_its_poll_slot_keeping_the_action_alive(config):
    """Poll mode, the poll item's slots handed out far ahead (many drains in flight): no task
    read before the slot, a heartbeat as each falls due meanwhile, then the drain as usual.
    Events mode takes no poll slot."""
    world, (victim, *_) = quick_world(config)
    interval = config.heartbeat_timeout_seconds // 3
    with Harness(world, config) as harness:
        slot = take_slots(world, TAKEN_SECONDS, pacing.POLL_KEY)
        action = world.asg.scale_in(GROUP, victim)
        harness.run()
        (outcome,) = harness.outcomes()
    assert outcome["outcome"] == "drained" and action.ended_by == "completed"
    assert world.terminations[0].tasks_killed == []
    reads = [c.time.timestamp() for c in world.api_calls if c.operation in TASK_READS]
    if config.drain_end_detection == "events":
        assert min(reads) < slot
        return
    assert min(reads) >= slot
    beats = [b for b in action.heartbeats if b.timestamp() < slot]
    assert len(beats) == TAKEN_SECONDS // interval
    polled = next(c.time for c in world.api_calls if c.operation in TASK_READS)
    gaps = [b - a for a, b in zip([action.started, *beats], [*beats, polled], strict=True)]
    assert max(gaps) <= timedelta(seconds=interval + 1)
