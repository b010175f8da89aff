"""`make bench`: what each drainer costs per drain, how soon it lets the instance go, how it
copes with an instance refresh of 500 to 5,000 instances, and how fast its handlers import, in
each drain-end detection mode this build has. See results/README-BENCH.md.

    python -m bench                  # full run, writes results/ (tracked)
    python -m bench --small          # quick run (20-instance refresh, few drains) to a temp dir
    python -m bench --refresh 5000   # that refresh alone, to results/refresh-5000.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench import (
    baselines,
    coldstart,
    console,
    detection,
    dispatch,
    floors,
    modes,
    notes,
    prices,
    report,
    scenarios,
    sim,
)
from bench.modes import EVENTS, POLL
from bench.notes import ECS_BURST, ECS_RATE_PER_S
from bench.refresh import RefreshResult, refresh_job
from bench.result import FIXED, BenchResult, LatencySummary, price, product
from stacks.config import DrainerConfig, load_config

T = TypeVar("T")

# The refresh's web tasks deregister from their load balancer for this long, so every drain
# lasts ~2.5 min (five poll rounds) with all of them sharing the buckets. ALB's default is
# 300 s; shorter here to fit the wall-time budget (longer drains only poll more rounds).
REFRESH_DEREGISTRATION_SECONDS = 120.0
REFRESH_WALL_TIMEOUT_SECONDS = 3600.0


@dataclass(frozen=True)
class Plan:
    latency_drains: int
    five_minute_drains: int  # the 5-minute drain on this many instances (poll phases)
    refresh_sizes: tuple[int, ...]
    import_repetitions: int
    measure_ceiling: bool  # run the 48 h drain (else: computed from the poll schedule)
    # Below an hour the fixed poll is the product's schedule: --small skips those runs.
    fixed_poll_drains: bool
    fixed_poll_latency: bool
    detection_drains: int  # drains of 1 min–47 h, per delay preset
    detection_presets: tuple[str, ...]
    loss_drains: int
    unrelated_stops: int


FULL = Plan(24, 30, (500, 2000), 15, True, True, True, 16, ("default", "pessimistic"), 40, 10_000)
SMALL = Plan(6, 5, (20,), 1, False, False, False, 3, ("default",), 6, 200)


def main(argv: list[str] | None = None) -> int:
    summary = " ".join((__doc__ or "").split("\n\n")[0].split())
    parser = argparse.ArgumentParser(prog="python -m bench", description=summary)
    parser.add_argument("--small", action="store_true", help="quick run for tests and smoke checks")
    parser.add_argument(
        "--out", type=Path, help="output directory (default: results/, or a temp dir with --small)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a floor fails")
    parser.add_argument(
        "--refresh",
        type=int,
        metavar="INSTANCES",
        help="run only the refresh of this many instances (each mode) and write "
        "refresh-INSTANCES.json, which a full run then reads",
    )
    parser.add_argument(
        "--modes",
        metavar="MODE[,MODE]",
        help="with --refresh: only these drain_end_detection modes (default: every mode)",
    )
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
    # The shipped settings, pointed at the simulated world's cluster and group.
    shipped = load_config().model_copy(
        update={"cluster_names": [scenarios.CLUSTER], "auto_scaling_group_names": [scenarios.GROUP]}
    )
    configs = {m: modes.config_for(shipped, m) for m in modes.MODES if modes.available(m)}
    if args.refresh:
        wanted = set(args.modes.split(",")) if args.modes else set(configs)
        unknown = wanted - set(configs)
        if unknown:
            parser.error(f"--modes: {', '.join(sorted(unknown))} not one of {', '.join(configs)}")
        chosen = {mode: config for mode, config in configs.items() if mode in wanted}
        return refresh_only(args.refresh, chosen, args.refresh_deregistration, out)

    wall: dict[str, float] = {}
    started = time.monotonic()
    fixed, refusal = baselines.fixed_poll_config(configs[POLL])
    profile = prices.LambdaProfile(shipped.lambda_memory_mb, shipped.lambda_architecture)

    # Imports first, before anything else runs: a busy core slows a handler's compile of our
    # modules more than boto3's precompiled import, so the ratio is measured on a quiet machine
    # (about a minute; the interleaved runs still spread any other load over all alike).
    cold = timed(wall, "cold start", lambda: coldstart.measure(plan.import_repetitions))
    # The refreshes, the longest scenarios, run in other processes (two at a time, the largest
    # first, each in a fresh process: its peak memory is its own) while this one runs the other
    # scenarios: a simulation keeps one core busy (one actor at a time, under the GIL), the
    # machine has two, and the refreshes take most of the CPU.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=spawn, max_tasks_per_child=1) as pool:
        began = time.monotonic()
        pending = [
            submit_refresh(pool, configs[mode], mode, size, args.refresh_deregistration)
            for size in sorted(plan.refresh_sizes, reverse=True)
            for mode in configs
        ]
        drains, latency, phases = [], [], {}
        found: dict[str, list] = {}
        with sim.speedups():
            for mode, config in configs.items():
                measured = run_mode(plan, config, mode, wall)
                drains += measured.drains
                phases[mode] = measured.phases
                latency.append(measured.latency)
                for key, runs in measured.scenarios.items():
                    found.setdefault(key, []).extend(runs)
            drains += timed(wall, "baseline drains", lambda: run_baseline_drains(plan, fixed))
            lengths = scenarios.latency_lengths(plan.latency_drains, sim.SEED)
            latency += timed(
                wall, "baseline latency", lambda: run_baseline_latency(plan, fixed, lengths)
            )
        waited = time.monotonic()
        refreshes = [future.result() for future in pending]
        wall["waiting for the refreshes"] = time.monotonic() - waited
        for refresh in refreshes:
            part = f"refresh of {refresh.instances} ({refresh.mode}, own process)"
            wall[part], CPU[part] = refresh.wall_seconds, refresh.cpu_seconds
        wall["refreshes in all (in parallel)"] = time.monotonic() - began
    refreshes += stored_refreshes(out, plan.refresh_sizes, set(configs))
    price(drains, profile)
    result = BenchResult(
        mode="small" if args.small else "full",
        configuration=notes.configuration(shipped),
        assumptions=prices.assumptions(profile) + notes.throttling_assumptions(),
        simulation=notes.simulation_notes(plan, args.refresh_deregistration),
        drains=drains,
        latency=latency,
        refreshes=sorted(refreshes, key=lambda r: (r.instances, r.mode)),
        coldstart=cold,
        dispatch=dispatch.model(cold),
        five_minute_transitions=phases,
        modes={
            mode: "measured" if mode in configs else modes.unavailable_reason(mode)
            for mode in modes.MODES
        },
        detection=found.get("detection", []),
        loss=found.get("loss", []),
        unrelated=found.get("unrelated", []),
    )
    result.simulation = notes.mode_notes(result) + result.simulation
    result.floors = floors.judge(result)
    result.findings = notes.findings(result, configs[POLL], refusal)
    wall["total"] = time.monotonic() - started
    result.wall_seconds = wall
    result.cpu_seconds = dict(CPU)
    console.print_console(result)
    paths = report.write(result, out)
    print(
        "wall time (CPU time): "
        + ", ".join(
            f"{name} {seconds:.0f} s" + (f" ({CPU[name]:.0f} s)" if name in CPU else "")
            for name, seconds in wall.items()
        )
    )
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    failed = [f.name for f in result.floors if f.verdict == "FAIL"]
    return 1 if args.strict and failed else 0


def submit_refresh(
    pool: ProcessPoolExecutor,
    config: DrainerConfig,
    mode: str,
    size: int,
    deregistration: float,
) -> Future[RefreshResult]:
    return pool.submit(
        refresh_job,
        config,
        size,
        ECS_RATE_PER_S,
        ECS_BURST,
        deregistration,
        REFRESH_WALL_TIMEOUT_SECONDS,
        mode,
    )


def refresh_only(
    size: int, configs: dict[str, DrainerConfig], deregistration: float, out: Path
) -> int:
    """`make bench-refresh-5000`: one refresh per mode, each in a process of its own (side by
    side: two cores), to a file a full run reads (with the commit it measured)."""
    spawn = multiprocessing.get_context("spawn")
    workers = min(2, len(configs))
    with ProcessPoolExecutor(max_workers=workers, mp_context=spawn, max_tasks_per_child=1) as pool:
        futures = [
            submit_refresh(pool, config, mode, size, deregistration)
            for mode, config in configs.items()
        ]
        results = [future.result() for future in futures]
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"refresh-{size}.json"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=sim.ROOT, capture_output=True, text=True
    ).stdout.strip()
    stored = [{**asdict(r), "source": f"{path.name} (commit {commit})"} for r in results]
    path.write_text(json.dumps(stored, indent=1) + "\n")
    for refresh in results:
        print(
            f"refresh of {size} ({refresh.mode}): {refresh.drained} drained, "
            f"{refresh.failed_executions} failed, {refresh.tasks_killed} tasks killed, "
            f"{sum(refresh.throttled.values())} throttled ({refresh.throttled_after_first_minute} "
            f"after the first minute), ECS calls per drain median "
            f"{refresh.ecs_calls_per_drain_median}, notice p50 "
            f"{refresh.notice_percentile(50)} s p95 {refresh.notice_percentile(95)} s; "
            f"{refresh.virtual_seconds:.0f} s virtual, {refresh.wall_seconds:.0f} s wall, "
            f"{refresh.cpu_seconds:.0f} s CPU, {refresh.peak_rss_mb:.0f} MB peak"
        )
    print(f"wrote {path}")
    return 0


def stored_refreshes(out: Path, ran: tuple[int, ...], mode_names: set[str]) -> list[RefreshResult]:
    """The refreshes of the floors' sizes this run did not include, from refresh-SIZE.json."""
    found = []
    for size in floors.REFRESH_SIZES:
        path = out / f"refresh-{size}.json"
        if size in ran or not path.exists():
            continue
        for stored in json.loads(path.read_text()):
            if stored.get("mode") in mode_names:
                found.append(RefreshResult(**stored))
    return found


def timed(wall: dict[str, float], name: str, work: Callable[..., T], *args: Any) -> T:
    """Run `work`, recording its wall time in `wall` and its CPU time (this process, every
    thread: on a shared machine the steadier figure) in CPU under the same name."""
    began, cpu = time.monotonic(), time.process_time()
    try:
        return work(*args)
    finally:
        wall[name] = time.monotonic() - began
        CPU[name] = time.process_time() - cpu
        print(f"  {name}: {wall[name]:.0f} s ({CPU[name]:.0f} s CPU)", file=sys.stderr, flush=True)


CPU: dict[str, float] = {}


@dataclass
class ModeRun:
    drains: list[scenarios.DrainMeasure]
    phases: list[int]
    latency: LatencySummary
    scenarios: dict[str, list]


def run_mode(plan: Plan, config: DrainerConfig, mode: str, wall: dict[str, float]) -> ModeRun:
    """Every scenario but the refresh, in one drain-end detection mode."""
    drains = timed(wall, f"drain kinds ({mode})", run_product_drains, plan, config, mode)
    phases = timed(
        wall,
        f"5-minute drains ({mode})",
        scenarios.run_phase_sample,
        config,
        300,
        plan.five_minute_drains,
        300,
    )
    lengths = scenarios.latency_lengths(plan.latency_drains, sim.SEED)
    samples = timed(wall, f"latency ({mode})", scenarios.run_latency, config, lengths, 600)
    latency = LatencySummary(product(mode), samples)
    return ModeRun(drains, phases, latency, run_event_scenarios(plan, config, mode, wall))


def run_product_drains(
    plan: Plan, config: DrainerConfig, mode: str
) -> list[scenarios.DrainMeasure]:
    drains = []
    for kind in scenarios.KINDS:
        if kind.workload_seconds is None and not kind.spot and not plan.measure_ceiling:
            if mode == POLL:  # the poll schedule's own count; no such model of the events mode
                drains.append(baselines.computed_ceiling_drain(product(mode), config))
        else:
            drains.append(scenarios.run_kind(product(mode), config, kind, wall_timeout=180))
    return drains


def run_baseline_drains(plan: Plan, fixed: DrainerConfig) -> list[scenarios.DrainMeasure]:
    drains = []
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


def run_baseline_latency(
    plan: Plan, fixed: DrainerConfig, lengths: list[float]
) -> list[LatencySummary]:
    summaries = []
    if plan.fixed_poll_latency:
        summaries.append(LatencySummary(FIXED, scenarios.run_latency(fixed, lengths, 600)))
    for loop_detection in (True, False):
        name = baselines.SAMPLE if loop_detection else f"{baselines.SAMPLE}, loop detection off"
        summaries.append(
            LatencySummary(name, baselines.run_sample_latency(lengths, loop_detection))
        )
    return summaries


def run_event_scenarios(
    plan: Plan, config: DrainerConfig, mode: str, wall: dict[str, float]
) -> dict[str, list]:
    """Detection over 1 min–47 h per delay preset, lost task events (events mode: in poll mode
    no rule receives task events) and the unrelated task events."""
    lengths = detection.detection_lengths(plan.detection_drains, sim.SEED)
    runs: dict[str, list] = {"detection": [], "loss": [], "unrelated": []}
    for preset in plan.detection_presets:
        model = detection.PRESETS[preset]
        samples = timed(
            wall,
            f"detection, {preset} delays ({mode})",
            detection.run_detection,
            config,
            lengths,
            model,
            3600,
        )
        runs["detection"].append(
            detection.DetectionRun(mode, preset, model.max_delay_seconds, samples)
        )
    if mode == EVENTS:
        loss_lengths = scenarios.latency_lengths(plan.loss_drains, sim.SEED + 1)
        runs["loss"].append(
            timed(
                wall,
                f"lost task events ({mode})",
                detection.run_loss,
                config,
                mode,
                loss_lengths,
                sim.SEED,
                1800,
            )
        )
    runs["unrelated"].append(
        timed(
            wall,
            f"unrelated task events ({mode})",
            detection.run_unrelated,
            config,
            mode,
            plan.unrelated_stops,
            1800,
        )
    )
    return runs


if __name__ == "__main__":
    sys.exit(main())
