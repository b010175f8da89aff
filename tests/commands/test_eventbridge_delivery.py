"""The bus's delivery model: delay, loss, duplicates and order, through the stack's real rules
(sandbox/eventbridge.py), for the world's ECS events."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest

from sandbox.deployment import REACTIVATE_RULE
from sandbox.eventbridge import IMMEDIATE, PESSIMISTIC, DeliveryModel, EventBridge, Rule
from simulated_aws import World
from stacks.config import DrainerConfig
from stacks.event_patterns import event_patterns, instance_return_pattern
from tests.worlds import CLUSTER, drain_world

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:ecs-drainer"
TASK_EVENTS = "TaskEvents"  # a rule of the test's own: the stack has none for task events
STOPPED_TASKS = "StoppedTasks"


class Targets:
    """Stands in for Step Functions as every rule's target: records each input per rule."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._rules: dict[str, str] = {}

    def start_execution(self, stateMachineArn: str, name: str, input: str) -> dict[str, str]:
        self.received.append((self._rules[stateMachineArn], json.loads(input)))
        return {"executionArn": f"{stateMachineArn}:{name}"}

    def rules(self, patterns: dict[str, dict[str, Any]]) -> list[Rule]:
        for name in patterns:
            self._rules[f"{MACHINE}-{name}"] = name
        return [Rule(name, pattern, f"{MACHINE}-{name}") for name, pattern in patterns.items()]

    def of(self, rule: str) -> list[dict[str, Any]]:
        return [event for name, event in self.received if name == rule]


def stack_and_test_rules(config: DrainerConfig) -> dict[str, dict[str, Any]]:
    """The stack's real patterns, plus two test rules on task events."""
    task = {"source": ["aws.ecs"], "detail-type": ["ECS Task State Change"]}
    stopped = {**task, "detail": {"lastStatus": ["STOPPED"]}}
    return {
        **event_patterns(config),
        REACTIVATE_RULE: instance_return_pattern(config),
        TASK_EVENTS: task,
        STOPPED_TASKS: stopped,
    }


def bus_on(
    world: World, config: DrainerConfig, model: DeliveryModel
) -> tuple[EventBridge, Targets]:
    targets = Targets()
    bus = EventBridge(
        world.clock,
        targets.rules(stack_and_test_rules(config)),
        targets,
        lambdas=None,
        account=world.account,
        region=world.region,
        delivery=model,
    )
    world.subscribe(bus.deliver)
    return bus, targets


def drain(world: World, victim: str) -> None:
    """The victim set DRAINING as the drainer would; ECS moves its tasks."""
    with world.op():
        world.ecs._set_status(world.ecs.container_instance(victim), "DRAINING")
        world.ecs.reconcile()
    world.clock.advance(600)


def synthetic(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"event-{i}",
            "source": "aws.ecs",
            "detail-type": "ECS Task State Change",
            "detail": {"lastStatus": "RUNNING", "version": i},
        }
        for i in range(n)
    ]


def deliver_spread(bus: EventBridge, world: World, events: list[dict[str, Any]]) -> None:
    """One event every 100 ms, then long enough for every delivery."""
    for event in events:
        bus.deliver(event)
        world.clock.advance(0.1)
    world.clock.advance(bus.delivery.max_delay_seconds + 1)
    assert bus.in_flight == 0


def test_at_zero_delay_a_tasks_events_arrive_in_status_order(config: DrainerConfig) -> None:
    world, (victim,) = drain_world(config)
    bus, targets = bus_on(world, config, IMMEDIATE)
    drain(world, victim)
    by_task: dict[str, list[tuple[str, int]]] = {}
    for event in targets.of(TASK_EVENTS):
        detail = event["detail"]
        by_task.setdefault(detail["taskArn"], []).append((detail["lastStatus"], detail["version"]))
    moved = [by_task[t.arn] for t in world.tasks_on(victim)]
    assert len(moved) == 4
    for seen in moved:
        assert [status for status, _ in seen] == ["DEACTIVATING", "STOPPING", "STOPPED"]
        versions = [version for _, version in seen]
        assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert bus.lost == [] and not any(d.duplicate for d in bus.log)


def test_events_pass_the_real_rules_only_when_they_should(config: DrainerConfig) -> None:
    world, (victim,) = drain_world(config)
    world.add_cluster("elsewhere")
    other = world.add_instance(cluster="elsewhere")
    world.add_service("elsewhere", "web", desired=1)
    world.add_instance(cluster="elsewhere")  # where its task moves
    bus, targets = bus_on(world, config, IMMEDIATE)
    drain(world, victim)
    drain(world, other)
    # Task events reach no rule of the stack: nothing in the product consumes them yet.
    stack_rules = set(event_patterns(config)) | {REACTIVATE_RULE}
    for dispatched in bus.log:
        if dispatched.event["detail-type"] == "ECS Task State Change":
            assert set(dispatched.rules) & stack_rules == set()
    stopped = targets.of(STOPPED_TASKS)
    assert stopped and {e["detail"]["lastStatus"] for e in stopped} == {"STOPPED"}
    assert len(stopped) == 5  # the victim's 4 tasks and the other cluster's one
    # The reactivate rule takes DRAINING, connected instances of the configured clusters only:
    # the victim's DRAINING event and each task's release of its slot there.
    returned = targets.of(REACTIVATE_RULE)
    assert {e["detail"]["clusterArn"].rsplit("/", 1)[1] for e in returned} == {CLUSTER}
    assert {(e["detail"]["status"], e["detail"]["agentConnected"]) for e in returned} == {
        ("DRAINING", True)
    }
    assert len(returned) == 1 + 4


def test_the_default_model_delays_each_event_a_little(config: DrainerConfig) -> None:
    world, (victim,) = drain_world(config)
    emitted: dict[str, Any] = {}
    world.subscribe(lambda event: emitted.setdefault(event["id"], world.clock.now()))
    bus, _ = bus_on(world, config, DeliveryModel())
    drain(world, victim)
    delays = [(d.time - emitted[d.event["id"]]).total_seconds() for d in bus.log]
    assert delays and min(delays) >= 0.5 and max(delays) <= 1.5
    assert DeliveryModel().max_delay_seconds == 1.5


def test_loss_duplication_and_reordering_at_the_configured_rates(config: DrainerConfig) -> None:
    world = World()
    model = DeliveryModel(delay_seconds=1, jitter_seconds=5, loss=0.1, duplication=0.05, seed=7)
    bus, _ = bus_on(world, config, model)
    events = synthetic(4000)
    deliver_spread(bus, world, events)
    assert 0.08 < len(bus.lost) / len(events) < 0.12
    duplicates = [d for d in bus.log if d.duplicate]
    assert 0.035 < len(duplicates) / (len(events) - len(bus.lost)) < 0.065
    originals = {d.event["id"]: d.event for d in bus.log if not d.duplicate}
    for duplicate in duplicates:  # same id, same detail version
        assert duplicate.event == originals[duplicate.event["id"]]
    # Delivered in the order of their sampled delays, not of their emission.
    order = [d.event["detail"]["version"] for d in bus.log if not d.duplicate]
    inversions = sum(1 for a, b in itertools.pairwise(order) if a > b)
    assert inversions > len(order) / 10
    assert len(bus.log) == len(events) - len(bus.lost) + len(duplicates)


def test_loss_can_be_limited_to_some_detail_types(config: DrainerConfig) -> None:
    world = World()
    model = DeliveryModel(loss=0.5, lossy_detail_types=("ECS Task State Change",), seed=3)
    bus, _ = bus_on(world, config, model)
    others = [{**event, "detail-type": "Other"} for event in synthetic(200)]
    deliver_spread(bus, world, synthetic(200) + others)
    assert bus.lost and {event["detail-type"] for event in bus.lost} == {"ECS Task State Change"}


def test_the_same_seed_gives_the_same_run(config: DrainerConfig) -> None:
    def run(seed: int) -> list[tuple[str, bool]]:
        world = World()
        model = DeliveryModel(jitter_seconds=5, loss=0.2, duplication=0.2, seed=seed)
        bus, _ = bus_on(world, config, model)
        deliver_spread(bus, world, synthetic(300))
        return [(d.event["id"], d.duplicate) for d in bus.log]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_without_jitter_nothing_is_reordered(config: DrainerConfig) -> None:
    world = World()
    bus, _ = bus_on(world, config, DeliveryModel(delay_seconds=3, jitter_seconds=0))
    deliver_spread(bus, world, synthetic(200))
    assert [d.event["detail"]["version"] for d in bus.log] == list(range(200))


def test_a_pessimistic_bus_has_a_long_tail_within_its_cap() -> None:
    model = PESSIMISTIC
    rng = random.Random(0)
    delays = sorted(model.sample_delay(rng) for _ in range(5000))
    assert delays[0] >= 2 and delays[-1] <= model.max_delay_seconds == 62
    assert 8 < delays[len(delays) // 2] < 11  # median of 2 + Exp(mean 10): 2 + 10 ln 2


@pytest.mark.parametrize(
    "wrong",
    [{"loss": 1.5}, {"duplication": -0.1}, {"delay_seconds": -1}, {"jitter": "gaussian"}],
)
def test_a_model_that_cannot_be_is_refused(wrong: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DeliveryModel(**wrong)
