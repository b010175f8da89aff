"""How soon a drain's end is noticed over drains of 1 minute to 48 hours, under the bus's delay
models, with task events lost, and what task events of instances that are not draining cost.

The bus is sandbox/eventbridge.py's DeliveryModel: every event the world emits reaches the
stack's real rules after the model's delay (and may be lost). In poll mode no rule listens to
task events, so the delay model only moves the drain's start; in events mode the wake function
receives every STOPPED task event.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import boto3

from bench.refresh import completed_twice
from bench.scenarios import (
    CLUSTER,
    GROUP,
    LatencySample,
    LatencySamples,
    latency_world,
    lifecycle_latency,
    new_world,
)
from bench.sim import Harness, quiet, reseed
from drainer.schedule import MAX_LIFECYCLE_SECONDS
from sandbox.eventbridge import PESSIMISTIC, DeliveryModel
from simulated_aws.ecs.events import TASK_STATE_CHANGE
from stacks.config import DrainerConfig

# The delay presets: the bus's default (0.5 s + uniform 0–1 s) and its pessimistic one (2 s +
# exponential of mean 10 s, capped at 60 s): sandbox/eventbridge.py.
PRESETS = {"default": DeliveryModel(), "pessimistic": PESSIMISTIC}
DETECTION_MARGIN_SECONDS = 5.0  # floor: p95 ≤ the model's maximum delay + this
LOSS = 0.01  # of the task events
LOSS_MARGIN_SECONDS = 30.0  # floor: p95 ≤ the fallback poll interval + this
SHORTEST, LONGEST = 60.0, MAX_LIFECYCLE_SECONDS - 3600.0  # an hour short of the ceiling
UNRELATED_STOPS = 10_000
UNRELATED_INSTANCES = 20


@dataclass
class DetectionRun(LatencySamples):
    mode: str
    preset: str  # a PRESETS key
    max_delay_seconds: float  # the model's, DeliveryModel.max_delay_seconds
    samples: list[LatencySample]

    @property
    def limit_seconds(self) -> float:
        return self.max_delay_seconds + DETECTION_MARGIN_SECONDS


@dataclass
class LossRun(LatencySamples):
    mode: str
    loss: float
    task_events: int  # task events the world emitted
    lost_task_events: int
    lost_stops: int  # of them, STOPPED events
    samples: list[LatencySample]
    tasks_killed: int
    completed_twice: int  # lifecycle actions completed more than once


@dataclass
class UnrelatedRun:
    mode: str
    stopped_events: int  # STOPPED task events the bus handed to the rules
    executions: int
    transitions: int
    ecs_calls: int
    lambda_invocations: dict[str, int] = field(default_factory=dict)
    api_calls: dict[str, int] = field(default_factory=dict)


def detection_lengths(count: int, seed: int) -> list[float]:
    """Drain lengths from 1 minute to 47 hours, one in each of `count` slices of equal ratio
    (log-stratified: as many drains between 1 and 10 minutes as between 4 and 40 hours)."""
    rng = random.Random(seed)
    low, high = math.log(SHORTEST), math.log(LONGEST)
    step = (high - low) / count
    return [round(math.exp(low + (i + rng.random()) * step)) for i in range(count)]


def run_detection(
    config: DrainerConfig, lengths: list[float], delivery: DeliveryModel, wall_timeout: float
) -> list[LatencySample]:
    """One drain per length, all at once, on a bus with the given delivery model."""
    world = new_world(config.lifecycle_hook_name, config.heartbeat_timeout_seconds)
    victims = latency_world(lengths, world)
    reseed()
    with quiet(), Harness(world, config, delivery=delivery, outcome_queue=False) as harness:
        for victim in victims:
            world.asg.scale_in(GROUP, victim)
        harness.run(max_virtual_seconds=3 * 86400, wall_timeout=wall_timeout)
    samples = [lifecycle_latency(world, v, n) for v, n in zip(victims, lengths, strict=True)]
    return [sample for sample in samples if sample is not None]


def run_loss(
    config: DrainerConfig, mode: str, lengths: list[float], seed: int, wall_timeout: float
) -> LossRun:
    """The drains of `lengths` with 1 % of the task events lost (the drains' own lifecycle
    events arrive: the floor is about the task events)."""
    delivery = DeliveryModel(loss=LOSS, lossy_detail_types=(TASK_STATE_CHANGE,), seed=seed)
    world = new_world(config.lifecycle_hook_name, config.heartbeat_timeout_seconds)
    victims = latency_world(lengths, world)
    reseed()
    with quiet(), Harness(world, config, delivery=delivery, outcome_queue=False) as harness:
        for victim in victims:
            world.asg.scale_in(GROUP, victim)
        harness.run(max_virtual_seconds=3 * 86400, wall_timeout=wall_timeout)
        lost = list(harness.eventbridge.lost)
    samples = [lifecycle_latency(world, v, n) for v, n in zip(victims, lengths, strict=True)]
    return LossRun(
        mode=mode,
        loss=LOSS,
        task_events=sum(1 for e in world.events if e["detail-type"] == TASK_STATE_CHANGE),
        lost_task_events=len(lost),
        lost_stops=sum(1 for e in lost if e["detail"].get("lastStatus") == "STOPPED"),
        samples=[s for s in samples if s is not None],
        tasks_killed=sum(s.tasks_killed for s in samples if s is not None),
        completed_twice=completed_twice(world, victims),
    )


def run_unrelated(
    config: DrainerConfig, mode: str, stops: int, wall_timeout: float
) -> UnrelatedRun:
    """`stops` standalone tasks on ACTIVE instances run and exit; no instance drains. Their
    events go through the stack's real rules (in events mode: the wake function)."""
    world = new_world(config.lifecycle_hook_name, config.heartbeat_timeout_seconds)
    per_instance = math.ceil(stops / UNRELATED_INSTANCES)
    instances = [
        world.add_instance(cluster=CLUSTER, group=GROUP, max_tasks=per_instance + 1)
        for _ in range(UNRELATED_INSTANCES)
    ]
    for n in range(stops):
        # Exits spread over ten minutes, a few each second.
        world.run_task(CLUSTER, instances[n % len(instances)], "job", runs_for_seconds=1 + n % 600)
    reseed()
    with quiet(), Harness(world, config, outcome_queue=False) as harness:
        world.clock.run_for(700, active=harness.running, wall_timeout=wall_timeout)
        harness.run(max_virtual_seconds=3600, wall_timeout=wall_timeout)
        stopped = sum(
            1
            for d in harness.eventbridge.log
            if d.event["detail-type"] == TASK_STATE_CHANGE
            and d.event["detail"].get("lastStatus") == "STOPPED"
        )
        executions, transitions = _executions_and_transitions(harness)
        invocations = dict(harness.invocations)
    return UnrelatedRun(
        mode=mode,
        stopped_events=stopped,
        executions=executions,
        transitions=transitions,
        ecs_calls=sum(1 for c in world.api_calls if c.service == "ecs"),
        lambda_invocations=invocations,
        api_calls=world.api_call_counts(),
    )


def _executions_and_transitions(harness: Harness) -> tuple[int, int]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=harness.state_machine_arn)
    arns = [e["executionArn"] for page in pages for e in page["executions"]]
    transitions = sum(
        1 for arn in arns for e in harness.history(arn) if e["type"].endswith("StateEntered")
    )
    return len(arns), transitions
