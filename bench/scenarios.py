"""Drains of each kind, a latency sample and a 500-instance refresh, run by the real state machine
and handlers (sandbox/harness.py) against the simulated world (simulated_aws/), in virtual time."""

from __future__ import annotations

import json
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import boto3

from bench.sim import Harness, World, quiet, reseed
from stacks.config import DrainerConfig

CLUSTER, GROUP = "bench", "bench-asg"
# A web service behind a load balancer: replacements start in 30 s, old tasks deregister for
# 30 s and stop in 12 s, so the service part of every drain is over after 72 s (off the 5-s
# Spot poll grid, so no drain ends on the very instant of a poll).
SERVICE = {"start_seconds": 30, "stop_seconds": 12, "deregistration_delay_seconds": 30}
BATCH_STOP_SECONDS = 10  # a standalone batch task's SIGTERM-to-exit time
SPOT_WATCH_SECONDS = 180  # after a Spot drain, run on past the interruption (2 min)


@dataclass(frozen=True)
class Kind:
    """A drain kind: when the last task on the instance stops (None: never), or a Spot warning."""

    name: str
    workload_seconds: float | None
    spot: bool = False


KINDS = (
    # The last task stops 300 s after the lifecycle action started. Where that falls between
    # two polls (the drainer staggers each instance's polls) decides 10 or 11 polls: see
    # run_phase_sample. A task stopping at the very instant of a poll is seen by the next one.
    Kind("5 min", 300),
    Kind("1 h", 3600),
    Kind("48 h ceiling", None),
    Kind("Spot", None, spot=True),
)


@dataclass
class DrainMeasure:
    """What one drain cost and how soon its instance was let go."""

    drainer: str
    kind: str
    outcome: str | None
    transitions: int | None
    history_events: int | None
    lambda_invocations: int
    ecs_calls: int
    asg_calls: int
    sns_publishes: int = 0
    billed_lambda_ms: float | None = None  # None: invocations × the drainer's assumed duration
    latency_seconds: float | None = None  # last task stopped → lifecycle action ended
    tasks_killed: int = 0
    ended_by: str | None = None
    note: str = ""
    status: str = "measured"  # or "computed" / "fails: history quota" / "not handled"
    cost_usd: float | None = None


@dataclass
class LatencySample:
    length_seconds: float
    latency_seconds: float | None  # None when tasks were killed (the drain was cut)
    ended_by: str | None
    tasks_killed: int


@dataclass
class RefreshResult:
    instances: int
    rate_per_s: float
    burst: float
    deregistration_seconds: float
    drained: int
    outcomes: dict[str, int]
    failed_executions: int
    actions_completed: int
    tasks_killed: int
    virtual_seconds: float
    wall_seconds: float
    lambda_invocations: dict[str, int]
    api_calls: dict[str, int]
    throttled: dict[str, int]
    peak_attempts_per_s: dict[str, int]
    peak_accepted_per_s: dict[str, int]
    timeline: dict[str, list[int]] = field(default_factory=dict)  # per virtual second
    throttled_after_first_minute: int = 0
    ecs_calls_per_drain_median: float | None = None  # calls naming the drain's instance or tasks
    notice_p50_seconds: float | None = None  # last task stopped → lifecycle action completed
    notice_p95_seconds: float | None = None

    @property
    def passed(self) -> bool:
        return (
            self.drained == self.instances
            and self.failed_executions == 0
            and self.actions_completed == self.instances
            and self.tasks_killed == 0
        )


# --- worlds --------------------------------------------------------------------------------
def new_world(hook_name: str, heartbeat_timeout: int, default_result: str = "CONTINUE") -> World:
    world = World()
    world.add_cluster(CLUSTER)
    world.add_group(
        GROUP,
        hook_name=hook_name,
        heartbeat_timeout=heartbeat_timeout,
        default_result=default_result,
    )
    return world


def kind_world(kind: Kind, world: World) -> str:
    """Three instances with one web task each; the victim also runs a batch task that sets the
    drain's length (the web task moves within ~70 s). Returns the victim."""
    victim, *_ = [world.add_instance(cluster=CLUSTER, group=GROUP, max_tasks=4) for _ in range(3)]
    world.add_service(CLUSTER, "web", desired=3, **SERVICE)
    if not kind.spot:
        world.run_task(
            CLUSTER,
            victim,
            "batch",
            runs_for_seconds=batch_run_seconds(kind.workload_seconds),
            stop_seconds=BATCH_STOP_SECONDS,
        )
    return victim


def batch_run_seconds(workload_seconds: float | None) -> float | None:
    # The task exits after `runs_for`, then spends BATCH_STOP_SECONDS in STOPPING.
    return None if workload_seconds is None else workload_seconds - BATCH_STOP_SECONDS


def latency_lengths(count: int, seed: int) -> list[float]:
    """Drain lengths spread over 1–55 minutes: one random length in each of `count` equal
    slices (stratified), so even a small sample covers the range."""
    rng = random.Random(seed)
    low, high = 60.0, 55 * 60.0
    step = (high - low) / count
    return [round(low + (i + rng.random()) * step) for i in range(count)]


def latency_world(lengths: list[float], world: World) -> list[str]:
    """One victim per length (web task + batch task of that length) and spare capacity."""
    victims = [world.add_instance(cluster=CLUSTER, group=GROUP, max_tasks=4) for _ in lengths]
    world.add_service(CLUSTER, "web", desired=len(lengths), **SERVICE)
    for victim, length in zip(victims, lengths, strict=True):
        world.run_task(
            CLUSTER,
            victim,
            "batch",
            runs_for_seconds=batch_run_seconds(length),
            stop_seconds=BATCH_STOP_SECONDS,
        )
    for _ in range(len(lengths) // 2 + 1):
        world.add_instance(cluster=CLUSTER, group=GROUP, max_tasks=4)
    return victims


def start_drain(world: World, victim: str, kind: Kind) -> None:
    if kind.spot:
        world.spot_interrupt(victim)
    else:
        world.asg.scale_in(GROUP, victim)


# --- what happened to an instance ------------------------------------------------------------
def last_natural_stop(world: World, instance_id: str) -> datetime | None:
    """When the last task that stopped by itself (not killed with the host) stopped."""
    stops = [t.stopped_at for t in world.tasks_on(instance_id) if t.stopped_at and not t.killed]
    return max(stops) if stops else None


def killed_tasks(world: World, instance_id: str) -> int:
    return sum(
        1
        for termination in world.terminations
        if termination.instance_id == instance_id
        for _, status in termination.tasks_killed
        if status != "STOPPED"
    )


def action_of(world: World, instance_id: str) -> Any:
    return next(a for a in world.lifecycle_actions if a.instance_id == instance_id)


def lifecycle_latency(world: World, instance_id: str, length: float) -> LatencySample | None:
    """Last task stopped → lifecycle action ended (completed, or timed out); no latency when
    tasks died with the instance (the drain was cut, or completed while tasks still stopped)."""
    action = action_of(world, instance_id)
    last = last_natural_stop(world, instance_id)
    killed = killed_tasks(world, instance_id)
    if action.ended_at is None or last is None:
        return None
    latency = None if killed else (action.ended_at - last).total_seconds()
    return LatencySample(length, latency, action.ended_by, killed)


def api_totals(api_calls: dict[str, int]) -> tuple[int, int]:
    ecs = sum(n for key, n in api_calls.items() if key.startswith("ecs:"))
    asg = sum(n for key, n in api_calls.items() if key.startswith("autoscaling:"))
    return ecs, asg


# --- the drainer (product, or a configuration of it) ---------------------------------------
def run_kind(drainer: str, config: DrainerConfig, kind: Kind, wall_timeout: float) -> DrainMeasure:
    world = new_world(config.lifecycle_hook_name, config.heartbeat_timeout_seconds)
    victim = kind_world(kind, world)
    reseed()
    with quiet(), Harness(world, config) as harness:
        start = world.clock.now()
        start_drain(world, victim, kind)
        harness.run(max_virtual_seconds=3 * 86400, wall_timeout=wall_timeout)
        if kind.spot:
            world.clock.run_for(SPOT_WATCH_SECONDS, active=harness.running)
        record = harness.record()
    (drain,) = record.drains
    ecs, asg = api_totals(record.api_calls)
    measure = DrainMeasure(
        drainer=drainer,
        kind=kind.name,
        outcome=drain.outcome,
        transitions=drain.state_transitions,
        history_events=drain.history_events,
        lambda_invocations=sum(record.lambda_invocations.values()),
        ecs_calls=ecs,
        asg_calls=asg,
        tasks_killed=len(record.tasks_killed),
    )
    if kind.spot:
        # No lifecycle action: detection is the drain reporting that every task stopped.
        last = last_natural_stop(world, victim)
        end = start + timedelta(seconds=drain.virtual_seconds)
        measure.latency_seconds = (end - last).total_seconds() if last else None
        measure.ended_by = "spot interruption"
    else:
        sample = lifecycle_latency(world, victim, kind.workload_seconds or 0)
        measure.latency_seconds = sample.latency_seconds if sample else None
        measure.ended_by = action_of(world, victim).ended_by
    return measure


def run_phase_sample(
    config: DrainerConfig, seconds: float, count: int, wall_timeout: float
) -> list[int]:
    """State transitions of `count` drains of the same length on different instances, all at
    once: each instance polls at its own phase, so the sample shows how the count varies."""
    world = new_world(config.lifecycle_hook_name, config.heartbeat_timeout_seconds)
    victims = latency_world([seconds] * count, world)
    reseed()
    with quiet(), Harness(world, config) as harness:
        for victim in victims:
            world.asg.scale_in(GROUP, victim)
        harness.run(max_virtual_seconds=86400, wall_timeout=wall_timeout)
        record = harness.record()
    if {drain.outcome for drain in record.drains} != {"drained"}:
        raise AssertionError(f"phase sample did not all drain: {record.drains}")
    return sorted(drain.state_transitions for drain in record.drains)


def run_latency(
    config: DrainerConfig, lengths: list[float], wall_timeout: float
) -> list[LatencySample]:
    world = new_world(config.lifecycle_hook_name, config.heartbeat_timeout_seconds)
    victims = latency_world(lengths, world)
    reseed()
    with quiet(), Harness(world, config) as harness:
        for victim in victims:
            world.asg.scale_in(GROUP, victim)
        harness.run(max_virtual_seconds=86400, wall_timeout=wall_timeout)
        outcomes = Counter(o["outcome"] for o in harness.outcomes())
    if outcomes != Counter({"drained": len(lengths)}):
        raise AssertionError(f"latency drains did not all drain: {dict(outcomes)}")
    samples = [lifecycle_latency(world, v, n) for v, n in zip(victims, lengths, strict=True)]
    return [sample for sample in samples if sample is not None]


# --- a 500-instance refresh under ECS token buckets ------------------------------------------
def run_refresh(
    config: DrainerConfig,
    instances: int,
    rate: float,
    burst: float,
    deregistration_seconds: float,
    wall_timeout: float,
) -> RefreshResult:
    """Every old instance leaves at once; as many replacements are already in service.

    Each old instance runs one task of one web service behind a load balancer (start 10 s,
    stop 5 s, deregistration `deregistration_seconds`), so a drain lasts about
    deregistration_seconds + 15 s: the number of poll rounds every drain goes through while
    all of them share the ECS token buckets.
    """
    world = new_world(config.lifecycle_hook_name, config.heartbeat_timeout_seconds)
    old = [world.add_instance(cluster=CLUSTER, group=GROUP, max_tasks=2) for _ in range(instances)]
    world.add_service(
        CLUSTER,
        "web",
        desired=instances,
        start_seconds=10,
        stop_seconds=5,
        deregistration_delay_seconds=deregistration_seconds,
    )
    for _ in range(instances):
        world.add_instance(cluster=CLUSTER, group=GROUP, max_tasks=2)
    world.ecs.set_throttle(rate, burst, per_operation=True)
    reseed()
    with quiet(), Harness(world, config) as harness:
        start = world.clock.now()
        for instance in old:
            world.asg.scale_in(GROUP, instance)
        wall = time.monotonic()
        harness.run(max_virtual_seconds=86400, wall_timeout=wall_timeout)
        wall = time.monotonic() - wall
        outcomes = execution_outcomes()
        invocations = dict(harness.invocations)
    actions = [a for a in world.lifecycle_actions if a.instance_id in set(old)]
    ecs_calls = [c for c in world.api_calls if c.service == "ecs"]
    per_drain = calls_per_instance(world, old, ecs_calls)
    notices = sorted(
        (a.ended_at - last).total_seconds()
        for a in actions
        if a.ended_at and (last := last_natural_stop(world, a.instance_id))
    )
    return RefreshResult(
        instances=instances,
        rate_per_s=rate,
        burst=burst,
        deregistration_seconds=deregistration_seconds,
        drained=sum(1 for o in outcomes if o["outcome"] == "drained" and not o.get("error")),
        outcomes=dict(Counter(o["outcome"] for o in outcomes)),
        failed_executions=sum(1 for o in outcomes if o["outcome"] == "failed" or o.get("error"))
        + (instances - len(outcomes)),
        actions_completed=sum(1 for a in actions if a.ended_by == "completed"),
        tasks_killed=sum(killed_tasks(world, i) for i in old),
        virtual_seconds=max((a.ended_at - start).total_seconds() for a in actions if a.ended_at),
        wall_seconds=wall,
        lambda_invocations=invocations,
        api_calls=world.api_call_counts(),
        throttled=dict(Counter(c.operation for c in ecs_calls if c.outcome != "ok")),
        peak_attempts_per_s=peak_rates(ecs_calls, start, lambda c: True),
        peak_accepted_per_s=peak_rates(ecs_calls, start, lambda c: c.outcome == "ok"),
        timeline=timeline(ecs_calls, start),
        throttled_after_first_minute=sum(
            1 for c in ecs_calls if c.outcome != "ok" and (c.time - start).total_seconds() >= 60
        ),
        ecs_calls_per_drain_median=statistics.median(per_drain) if per_drain else None,
        notice_p50_seconds=_percentile(notices, 50),
        notice_p95_seconds=_percentile(notices, 95),
    )


def _percentile(values: list[float], percent: int) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, round(percent / 100 * (len(values) - 1)))]


def calls_per_instance(world: World, instances: list[str], calls: list[Any]) -> list[int]:
    """ECS calls (throttled attempts included) per drained instance: each call is attributed by
    the instance id, container instance or tasks it names (DescribeServices names none)."""
    owner: dict[str, str] = {}
    for instance in instances:
        owner[instance] = instance
        owner[world.ecs.container_instance(instance).arn] = instance
        for task in world.tasks_on(instance):
            owner[task.arn] = instance
    counts = dict.fromkeys(instances, 0)
    for c in calls:
        params = c.params or {}
        names = [
            *(params.get("containerInstances") or []),
            *(params.get("tasks") or []),
            params.get("containerInstance"),
            str(params.get("filter") or "").rpartition(" ")[2],
        ]
        found = next((owner[n] for n in names if n in owner), None)
        if found:
            counts[found] += 1
    return list(counts.values())


def refresh_job(
    config: DrainerConfig,
    instances: int,
    rate: float,
    burst: float,
    deregistration_seconds: float,
    wall_timeout: float,
) -> RefreshResult:
    """run_refresh in a process of its own (bench/__main__ runs it beside the other scenarios:
    each simulation is single-threaded under the GIL, the machine has two cores)."""
    from bench.sim import speedups

    with speedups():
        return run_refresh(config, instances, rate, burst, deregistration_seconds, wall_timeout)


def execution_outcomes() -> list[dict[str, Any]]:
    """Each execution's outcome summary, read from its output (a failed execution has none: it
    counts as failed). Used instead of the SNS outcome queue, which moto scans per message."""
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    outcomes = []
    for machine in sfn.list_state_machines()["stateMachines"]:
        pages = sfn.get_paginator("list_executions").paginate(
            stateMachineArn=machine["stateMachineArn"]
        )
        for execution in (e for page in pages for e in page["executions"]):
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            output = json.loads(described.get("output") or "{}")
            summary = output.get("outcome") if isinstance(output, dict) else None
            if described["status"] != "SUCCEEDED" or not isinstance(summary, dict):
                summary = {"outcome": "failed", "error": described["status"]}
            outcomes.append(summary)
    return outcomes


def peak_rates(calls: list[Any], start: datetime, keep: Callable[[Any], bool]) -> dict[str, int]:
    """Most calls of each operation within any one second (sliding window)."""
    by_operation: dict[str, list[float]] = {}
    for call in calls:
        if keep(call):
            by_operation.setdefault(call.operation, []).append((call.time - start).total_seconds())
    peaks = {}
    for operation, times in by_operation.items():
        times.sort()
        first, best = 0, 0
        for last, moment in enumerate(times):
            while moment - times[first] >= 1.0:
                first += 1
            best = max(best, last - first + 1)
        peaks[operation] = best
    return peaks


def timeline(calls: list[Any], start: datetime) -> dict[str, list[int]]:
    """ECS calls per virtual second: accepted and throttled."""
    if not calls:
        return {"accepted": [], "throttled": []}
    length = int(max((c.time - start).total_seconds() for c in calls)) + 1
    accepted, throttled = [0] * length, [0] * length
    for call in calls:
        second = int((call.time - start).total_seconds())
        (accepted if call.outcome == "ok" else throttled)[second] += 1
    return {"accepted": accepted, "throttled": throttled}
