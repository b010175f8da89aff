"""An instance refresh: hundreds to thousands of instances leave at once, their drains sharing the
ECS token buckets. Run by the real state machine and handlers on the simulated world, in virtual
time, one refresh per process (refresh_job)."""

from __future__ import annotations

import json
import resource
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3

from bench.scenarios import CLUSTER, GROUP, killed_tasks, lifecycle_latency, new_world, percentile
from bench.sim import Harness, World, quiet, reseed
from stacks.config import DrainerConfig

FIRST_MINUTE_SECONDS = 60.0


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
    wall_seconds: float  # the whole refresh, set-up included
    lambda_invocations: dict[str, int]
    api_calls: dict[str, int]
    throttled: dict[str, int]
    peak_attempts_per_s: dict[str, int]
    peak_accepted_per_s: dict[str, int]
    timeline: dict[str, list[int]] = field(default_factory=dict)  # per virtual second
    mode: str = "poll"
    ecs_calls: int = 0  # attempts, throttled ones included
    throttled_after_first_minute: int = 0
    ecs_calls_per_drain: list[float] = field(default_factory=list)  # sorted, one per drain
    # DescribeServices (once per cluster and hour) names no instance: counted apart
    ecs_calls_naming_no_instance: int = 0
    notice_seconds: list[float] = field(default_factory=list)  # last task stopped → action ended
    # CompleteLifecycleAction calls the world accepted, per instance, beyond the first
    completed_twice: int = 0
    peak_rss_mb: float = 0.0  # of the process that ran the refresh (ru_maxrss)
    cpu_seconds: float = 0.0  # of that process, the whole refresh (set-up included)
    source: str = "this run"  # or the refresh-SIZE.json it was read from

    @property
    def passed(self) -> bool:
        return (
            self.drained == self.instances
            and self.failed_executions == 0
            and self.actions_completed == self.instances
            and self.tasks_killed == 0
        )

    @property
    def throttled_fraction(self) -> float:
        return sum(self.throttled.values()) / self.ecs_calls if self.ecs_calls else 0.0

    @property
    def ecs_calls_per_drain_median(self) -> float | None:
        return statistics.median(self.ecs_calls_per_drain) if self.ecs_calls_per_drain else None

    def notice_percentile(self, q: int) -> float | None:
        return percentile(self.notice_seconds, q)


def refresh_world(config: DrainerConfig, instances: int, deregistration_seconds: float) -> World:
    world = new_world(config.lifecycle_hook_name, config.heartbeat_timeout_seconds)
    for _ in range(instances):
        world.add_instance(cluster=CLUSTER, group=GROUP, max_tasks=2)
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
    return world


def run_refresh(
    config: DrainerConfig,
    instances: int,
    rate: float,
    burst: float,
    deregistration_seconds: float,
    wall_timeout: float,
    mode: str = "poll",
) -> RefreshResult:
    """Every old instance leaves at once; as many replacements are already in service.

    Each old instance runs one task of one web service behind a load balancer (start 10 s,
    stop 5 s, deregistration `deregistration_seconds`), so a drain lasts about
    deregistration_seconds + 15 s: the number of poll rounds every drain goes through while
    all of them share the ECS token buckets.
    """
    began = time.monotonic()  # the whole refresh, set-up included, as cpu_seconds
    world = refresh_world(config, instances, deregistration_seconds)
    old = list(world.instances)[:instances]
    world.ecs.set_throttle(rate, burst, per_operation=True)
    reseed()
    # No outcome queue: moto's SQS recounts a queue's messages on every send (quadratic in
    # drains); the outcomes are read from the executions' output instead.
    with quiet(), Harness(world, config, outcome_queue=False) as harness:
        start = world.clock.now()
        for instance in old:
            world.asg.scale_in(GROUP, instance)
        harness.run(max_virtual_seconds=86400, wall_timeout=wall_timeout)
        outcomes = execution_outcomes()
        invocations = dict(harness.invocations)
    actions = [a for a in world.lifecycle_actions if a.instance_id in set(old)]
    ecs_calls = [c for c in world.api_calls if c.service == "ecs"]
    throttled = [c for c in ecs_calls if c.outcome != "ok"]
    notices = [lifecycle_latency(world, instance, 0) for instance in old]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic() - began
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
        throttled=dict(Counter(c.operation for c in throttled)),
        peak_attempts_per_s=peak_rates(ecs_calls, start, lambda c: True),
        peak_accepted_per_s=peak_rates(ecs_calls, start, lambda c: c.outcome == "ok"),
        timeline=timeline(ecs_calls, start),
        mode=mode,
        ecs_calls=len(ecs_calls),
        throttled_after_first_minute=sum(
            1 for c in throttled if (c.time - start).total_seconds() > FIRST_MINUTE_SECONDS
        ),
        ecs_calls_per_drain=calls_per_drain(world, old, ecs_calls),
        ecs_calls_naming_no_instance=calls_naming_no_instance(ecs_calls),
        notice_seconds=sorted(
            s.latency_seconds for s in notices if s is not None and s.latency_seconds is not None
        ),
        completed_twice=completed_twice(world, old),
        peak_rss_mb=usage.ru_maxrss / 1024,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


def refresh_job(
    config: DrainerConfig,
    instances: int,
    rate: float,
    burst: float,
    deregistration_seconds: float,
    wall_timeout: float,
    mode: str = "poll",
) -> RefreshResult:
    """run_refresh in a process of its own (bench/__main__ runs it beside the other scenarios:
    each simulation is single-threaded under the GIL, the machine has two cores)."""
    from bench.sim import speedups

    with speedups():
        return run_refresh(
            config, instances, rate, burst, deregistration_seconds, wall_timeout, mode
        )


def calls_per_drain(world: World, old: list[str], calls: list[Any]) -> list[float]:
    """ECS calls (attempts) per drain, each attributed to the instance it names: by container
    instance ARN, task ARN or the ec2InstanceId filter. A call naming no instance
    (DescribeServices, once per cluster and hour, asked by whichever drain's poll found the
    answer out of date) is nobody's here and counted apart (`calls_naming_no_instance`): given
    to the drain that made it, it would add 1 to that one drain."""
    instance_of: dict[str, str] = {}
    for instance in old:
        for task in world.tasks_on(instance):
            instance_of[task.arn] = instance
            instance_of[task.instance.arn] = instance
    per = Counter({instance: 0 for instance in old})
    for call in calls:
        owner = _named_instance(call.params, instance_of)
        if owner in per:
            per[owner] += 1
    return sorted(float(n) for n in per.values())


def calls_naming_no_instance(calls: list[Any]) -> int:
    return sum(1 for call in calls if _named_instance(call.params, {}) is None)


def _named_instance(params: dict[str, Any], instance_of: dict[str, str]) -> str | None:
    filter_text = params.get("filter") or ""
    if "ec2InstanceId ==" in filter_text:
        return filter_text.split("==", 1)[1].strip()
    names = [params.get("containerInstance"), params.get("task")]
    names += list(params.get("containerInstances") or []) + list(params.get("tasks") or [])
    for name in names:
        if name in instance_of:
            return instance_of[name]
    return "" if any(names) else None  # "": names something not drained


def completed_twice(world: World, instances: list[str]) -> int:
    """CompleteLifecycleAction calls the world accepted for an instance beyond its first (a
    call names the action by its token, or by the instance)."""
    by_token = {a.token: a.instance_id for a in world.lifecycle_actions}
    accepted = Counter(
        c.params.get("InstanceId") or by_token.get(c.params.get("LifecycleActionToken", ""))
        for c in world.api_calls
        if c.operation == "CompleteLifecycleAction" and c.outcome == "ok"
    )
    return sum(max(0, accepted[instance] - 1) for instance in instances)


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
