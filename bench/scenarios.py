"""Drains of each kind and a latency sample, run by the real state machine and handlers
(sandbox/harness.py) against the simulated world (simulated_aws/), in virtual time."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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


def percentile(values: list[float], q: int) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[q - 1]


class LatencySamples:
    """What a set of latency samples tells: the latencies measured, the drains cut, a
    percentile (the latency summaries and detection runs share it)."""

    samples: list[LatencySample]

    @property
    def measured(self) -> list[float]:
        return sorted(s.latency_seconds for s in self.samples if s.latency_seconds is not None)

    @property
    def cut(self) -> int:
        return sum(1 for s in self.samples if s.latency_seconds is None)

    def percentile(self, q: int) -> float | None:
        return percentile(self.measured, q)


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
            world.clock.run_for(
                SPOT_WATCH_SECONDS, active=harness.running, wall_timeout=wall_timeout
            )
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
