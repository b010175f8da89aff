"""`make bench`: what each drainer costs per drain, how soon it lets the instance go, how it
copes with a 500-instance refresh, and how fast its handlers import. See results/README-BENCH.md.

    python -m bench            # full run, writes results/ (tracked)
    python -m bench --small    # quick run (20-instance refresh, 6 latency drains) to a temp dir
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench import (
    baselines,
    coldstart,
    console,
    dispatch,
    floors,
    prices,
    report,
    scenarios,
    sim,
)
from bench.result import FIXED, PRODUCT, BenchResult, LatencySummary, price
from stacks.config import DrainerConfig, load_config

T = TypeVar("T")

# ECS token buckets assumed for every operation, one bucket per operation: burst 50, refill
# 20/s. Sources: the ECS API reference "Request throttling for the Amazon ECS API" (token bucket
# per operation; its example gives cluster read actions a bucket of 50 tokens) and
# aws-solutions/workload-discovery-on-aws PR #355 (DescribeContainerInstances and DescribeTasks
# "approx 20 TPS", citing that page). The page's per-action table could not be retrieved here;
# if AWS grants task reads more, this setting is the conservative side.
ECS_RATE_PER_S = 20.0
ECS_BURST = 50.0
# The refresh's web tasks deregister from their load balancer for this long, so every drain
# lasts ~2.5 min (five poll rounds) with 500 of them sharing the buckets. ALB's default is
# 300 s; shorter here to fit the wall-time budget (longer drains only poll more rounds).
REFRESH_DEREGISTRATION_SECONDS = 120.0


@dataclass(frozen=True)
class Plan:
    latency_drains: int
    five_minute_drains: int  # the 5-minute drain on this many instances (poll phases)
    refresh_instances: int
    import_repetitions: int
    measure_ceiling: bool  # run the 48 h drain (else: computed from the poll schedule)
    # Below an hour the fixed poll is the product's schedule: --small skips those runs.
    fixed_poll_drains: bool
    fixed_poll_latency: bool


FULL = Plan(24, 30, 500, 7, True, True, True)
SMALL = Plan(6, 5, 20, 1, False, False, False)


def main(argv: list[str] | None = None) -> int:
    summary = " ".join((__doc__ or "").split("\n\n")[0].split())
    parser = argparse.ArgumentParser(prog="python -m bench", description=summary)
    parser.add_argument("--small", action="store_true", help="quick run for tests and smoke checks")
    parser.add_argument(
        "--out", type=Path, help="output directory (default: results/, or a temp dir with --small)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a floor fails")
    parser.add_argument(
        "--refresh-deregistration",
        type=float,
        default=REFRESH_DEREGISTRATION_SECONDS,
        metavar="SECONDS",
        help="load-balancer deregistration delay of the refresh's tasks, i.e. its drain length "
        f"(default {REFRESH_DEREGISTRATION_SECONDS:g})",
    )
    args = parser.parse_args(argv)
    plan = SMALL if args.small else FULL
    out = args.out or (
        Path(tempfile.mkdtemp(prefix="bench-small-")) if args.small else sim.ROOT / "results"
    )

    wall: dict[str, float] = {}
    started = time.monotonic()
    # The shipped settings, pointed at the simulated world's cluster and group.
    product = load_config().model_copy(
        update={"cluster_names": [scenarios.CLUSTER], "auto_scaling_group_names": [scenarios.GROUP]}
    )
    fixed, refusal = baselines.fixed_poll_config(product)
    profile = prices.LambdaProfile(product.lambda_memory_mb, product.lambda_architecture)

    # The refresh, the longest scenario, runs in a second process while this one measures
    # imports and runs the other scenarios: a simulation keeps one core busy (one actor at a
    # time, under the GIL) and the machine has two. Import times are compared as ratios of
    # interleaved runs, so the busy core weighs on boto3's runs and the handlers' alike.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        began = time.monotonic()
        pending = pool.submit(
            scenarios.refresh_job,
            product,
            plan.refresh_instances,
            ECS_RATE_PER_S,
            ECS_BURST,
            args.refresh_deregistration,
            900,
        )
        cold = timed(wall, "cold start", lambda: coldstart.measure(plan.import_repetitions))
        with sim.speedups():
            drains = timed(wall, "drain kinds", lambda: run_drains(plan, product, fixed))
            phases = timed(
                wall,
                "5-minute drains",
                lambda: scenarios.run_phase_sample(product, 300, plan.five_minute_drains, 300),
            )
            lengths = scenarios.latency_lengths(plan.latency_drains, sim.SEED)
            latency = timed(wall, "latency", lambda: run_latency(plan, product, fixed, lengths))
        refresh = pending.result()
        wall[f"refresh of {plan.refresh_instances} (in parallel)"] = time.monotonic() - began
    price(drains, profile)
    result = BenchResult(
        mode="small" if args.small else "full",
        configuration=configuration(product),
        assumptions=prices.assumptions(profile) + throttling_assumptions(),
        simulation=simulation_notes(plan, args.refresh_deregistration),
        drains=drains,
        latency=latency,
        refresh=refresh,
        coldstart=cold,
        dispatch=dispatch.model(cold),
        five_minute_transitions=phases,
    )
    result.floors = floors.judge(result)
    result.findings = findings(result, product, refusal)
    wall["total"] = time.monotonic() - started
    result.wall_seconds = wall
    console.print_console(result)
    paths = report.write(result, out)
    print("wall time: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in wall.items()))
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    failed = [f.name for f in result.floors if f.verdict == "FAIL"]
    return 1 if args.strict and failed else 0


def timed(wall: dict[str, float], name: str, work: Callable[[], T]) -> T:
    began = time.monotonic()
    try:
        return work()
    finally:
        wall[name] = time.monotonic() - began
        print(f"  {name}: {wall[name]:.0f} s", file=sys.stderr, flush=True)


def run_drains(
    plan: Plan, product: DrainerConfig, fixed: DrainerConfig
) -> list[scenarios.DrainMeasure]:
    drains = []
    for kind in scenarios.KINDS:
        if kind.workload_seconds is None and not kind.spot and not plan.measure_ceiling:
            drains.append(baselines.computed_ceiling_drain(PRODUCT, product))
        else:
            drains.append(scenarios.run_kind(PRODUCT, product, kind, wall_timeout=180))
    for kind in scenarios.KINDS:
        if kind.workload_seconds is None and not kind.spot:
            # Validation refuses this configuration for 48 h; running it would also take minutes.
            drains.append(baselines.computed_ceiling_drain(FIXED, fixed))
        elif kind.spot or plan.fixed_poll_drains:
            drains.append(scenarios.run_kind(FIXED, fixed, kind, wall_timeout=180))
    for loop_detection in (True, False):
        for kind in scenarios.KINDS:
            if loop_detection or not kind.spot:
                drains.append(baselines.run_sample_kind(kind, loop_detection))
    return drains


def run_latency(
    plan: Plan, product: DrainerConfig, fixed: DrainerConfig, lengths: list[float]
) -> list[LatencySummary]:
    summaries = [LatencySummary(PRODUCT, scenarios.run_latency(product, lengths, 600))]
    if plan.fixed_poll_latency:
        summaries.append(LatencySummary(FIXED, scenarios.run_latency(fixed, lengths, 600)))
    for loop_detection in (True, False):
        name = baselines.SAMPLE if loop_detection else f"{baselines.SAMPLE}, loop detection off"
        summaries.append(
            LatencySummary(name, baselines.run_sample_latency(lengths, loop_detection))
        )
    return summaries


# --- text -------------------------------------------------------------------------------------
def configuration(config: DrainerConfig) -> dict[str, object]:
    summary = (
        f"poll every {config.poll_interval_seconds} s, after {config.backoff_after_seconds} s "
        f"backing off ×{config.backoff_rate} up to {config.max_poll_interval_seconds} s; Spot "
        f"poll {config.spot_poll_interval_seconds} s; hook heartbeat timeout "
        f"{config.heartbeat_timeout_seconds} s (a heartbeat every "
        f"{config.heartbeat_timeout_seconds // 3} s); ceiling {config.max_drain_seconds} s; "
        f"Lambda {config.lambda_memory_mb} MB {config.lambda_architecture}"
    )
    return {
        "summary": summary,
        **config.model_dump(include=set(type(config).model_fields) - {"notification_emails"}),
    }


def throttling_assumptions() -> list[str]:
    return [
        f"ECS API throttling in the refresh: one token bucket per operation, burst "
        f"{ECS_BURST:g}, refill {ECS_RATE_PER_S:g}/s (ECS API reference, 'Request throttling for "
        "the Amazon ECS API': token buckets per operation, cluster reads 50 tokens in its "
        "example; aws-solutions/workload-discovery-on-aws PR #355: DescribeContainerInstances "
        "and DescribeTasks about 20 TPS). Auto Scaling not throttled.",
        "ecs-cid-sample: aws-samples/ecs-cid-sample at 0d60dd5 (2018-08-01), cform/ecs.yaml "
        "LambdaFunctionForASG and ASGTerminateHook (HeartbeatTimeout 900, DefaultResult "
        "ABANDON, no heartbeat recorded). Lambda recursive loop detection (default since July "
        "2023) stops its SNS loop after 16 invocations (Lambda developer guide, \"Recursive "
        "loop detection\"; ecs-cid-sample #30, boto3 #3899); a failed invocation is retried "
        "twice (asynchronous invocation).",
    ]


def simulation_notes(plan: Plan, deregistration: float) -> list[str]:
    web = scenarios.SERVICE
    return [
        "The shipped drainer.toml, with the simulated world's cluster and group names "
        f"({scenarios.CLUSTER}, {scenarios.GROUP}).",
        "Drain kinds: three instances with one web task each (behind a load balancer: start "
        f"{web['start_seconds']} s, deregistration {web['deregistration_delay_seconds']} s, stop "
        f"{web['stop_seconds']} s); the drained instance also runs a standalone batch task whose "
        "exit sets the drain's length (5 min: the last task stops 300 s after the lifecycle "
        "action starts; 48 h: it never exits, so the drain reaches the ceiling). A task that "
        "stops at the very instant of a poll is seen by the next poll. Spot: the web task only, "
        "warned two minutes before the interruption.",
        f"5-minute drains: the same 5-minute drain on {plan.five_minute_drains} instances at "
        "once, so each polls at its own phase.",
        f"Latency: {plan.latency_drains} drains at once, one per instance, lengths drawn from "
        f"1–55 min (one per equal slice, random.Random({sim.SEED})).",
        f"Refresh: {plan.refresh_instances} old instances (one web task each behind a load "
        f"balancer: start 10 s, deregistration {deregistration:g} s, stop 5 s) leave together "
        "while as many replacements are already in service; the product's configuration is "
        "unchanged. Run in a second process beside the other scenarios.",
        "Rows marked 'computed' come from drainer.schedule.drain_cost, the same per-poll counts "
        "configuration validation uses (checked against the measured 48 h drain in a full run).",
        "Wall-time speedups of the simulation (no change to what it simulates; bench/sim.py): "
        "the ASL parse cached per definition and deep-copied per execution, one boto3 Lambda "
        "client per region for moto's Task states, memoised JSONPath parsing, "
        "linecache.checkcache disabled. (The virtual clock wakes one sleeping execution per "
        "event, not all of them: simulated_aws/clock.py.)",
    ]


def findings(result: BenchResult, product: DrainerConfig, refusal: str | None) -> list[str]:
    found = []
    by = {(d.drainer, d.kind): d for d in result.drains}
    measured, computed = (
        by[(PRODUCT, "48 h ceiling")],
        baselines.computed_ceiling_drain(PRODUCT, product),
    )
    if measured.status == "measured":
        found.append(
            "drainer.schedule.drain_cost (what configuration validation checks) against the "
            f"measured 48 h drain: {computed.history_events:,} history events predicted, "
            f"{measured.history_events:,} measured; {computed.transitions:,} transitions "
            f"predicted, {measured.transitions:,} measured."
        )
    if refusal:
        found.append(f"Configuration validation refuses the fixed 30-s poll baseline: {refusal}")
    fixed_ceiling = by[(FIXED, "48 h ceiling")]
    if fixed_ceiling.status.startswith("fails"):
        found.append(f"Fixed 30-s poll, 48 h: {fixed_ceiling.note}.")
    if measured.cost_usd and fixed_ceiling.cost_usd:
        found.append(
            f"A 48 h drain costs {_usd(measured.cost_usd)} with back-off against "
            f"{_usd(fixed_ceiling.cost_usd)} for a fixed 30-s poll "
            f"({fixed_ceiling.cost_usd / measured.cost_usd:.1f}× — had it not failed); below an "
            "hour both poll alike, so cost and latency are the same."
        )
    found.append(
        f"Back-off: after {product.backoff_after_seconds} s the poll interval grows "
        f"×{product.backoff_rate} up to {product.max_poll_interval_seconds} s, so a drain longer "
        f"than an hour can wait up to {product.max_poll_interval_seconds} s to be seen (the fixed "
        "poll: 30 s); that is what keeps a 48 h drain under the history quota."
    )
    spot, fixed_spot = by[(PRODUCT, "Spot")], by[(FIXED, "Spot")]
    found.append(
        f"Spot: polling every {product.spot_poll_interval_seconds} s sees the drain end "
        f"{_s(spot.latency_seconds)} s after the last task stopped, against "
        f"{_s(fixed_spot.latency_seconds)} s at a fixed 30 s, for {_usd(spot.cost_usd or 0)} "
        f"instead of {_usd(fixed_spot.cost_usd or 0)} per interruption."
    )
    sample = next(s for s in result.latency if s.drainer == baselines.SAMPLE)
    limit = baselines.LOOP_DETECTION_LIMIT
    last_turn = (limit - 1) * baselines.LOOP_PERIOD_SECONDS
    found.append(
        f"ecs-cid-sample today: recursive loop detection ends its loop after {limit} "
        f"invocations (the last ~{last_turn:.0f} s after the action started); "
        f"longer drains wait for the 900 s heartbeat timeout (ABANDON) and drains past 15 min "
        f"are cut: {sample.cut} of {len(sample.samples)} latency drains lost tasks. It also "
        "completes as soon as runningTasksCount is 0, while tasks still deregister or stop."
    )
    found.append(refresh_finding(result.refresh, product))
    return found


def refresh_finding(refresh: scenarios.RefreshResult, config: DrainerConfig) -> str:
    offered = 2 * refresh.instances / config.poll_interval_seconds  # two ListTasks per poll
    if refresh.throttled:
        throttled = ", ".join(f"{op} {n:,}" for op, n in sorted(refresh.throttled.items()))
        text = (
            f"Refresh of {refresh.instances}: {sum(refresh.throttled.values()):,} ECS calls "
            f"throttled ({throttled}). All drains locate their instance "
            "(ListContainerInstances) at the same moment, and each poll makes two ListTasks "
            f"calls: {offered:.0f}/s for {refresh.instances} drains polling every "
            f"{config.poll_interval_seconds} s, against a refill of {refresh.rate_per_s:g}/s."
        )
    else:
        text = f"Refresh of {refresh.instances}: no ECS call was throttled."
    if refresh.failed_executions:
        text += (
            f" {refresh.failed_executions} drains failed: throttling reached their outcome (the "
            f"rescue path completed their lifecycle actions, {refresh.tasks_killed} tasks "
            "killed)."
        )
    else:
        text += " No throttling reached an outcome: every drain ended 'drained'."
    return text


def _usd(value: float) -> str:
    return f"${value:.4f}"


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


if __name__ == "__main__":
    sys.exit(main())
