"""The floors a run is judged by, each under a stable name, per drain-end detection mode.

A floor's limit may differ by mode, or be absent for one: then that mode's figure is shown for
comparison (verdict n/a). The poll mode keeps the floors it had before event-woken drains
(5-minute drain < 40 transitions, 48 h drain < 5,000 transitions and < 25,000 history events:
written here as ≤ 39, ≤ 4,999, ≤ 24,999); the event floors are for the events mode. A mode this
build does not have is n/a, never measured with the other mode's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import detection, modes
from bench.dispatch import BUDGET_SECONDS
from bench.modes import EVENTS, POLL
from bench.refresh import RefreshResult
from bench.result import BenchResult, Floor, LatencySummary, product

UNDER_HOUR_LATENCY_SECONDS = 30  # the poll era's floor, drains of 1–55 min
IMPORT_RATIO_FLOOR = 1.2
REFRESH_SIZES = (500, 2000, 5000)
NOTICE_RATIO_FLOOR = 2.0  # p95 time-to-notice at 5,000 instances against 500
BOTH = "both"  # the same limit in either mode


@dataclass(frozen=True)
class Spec:
    name: str
    limits: dict[str, float | None]  # mode (or "" for mode-independent) -> limit
    unit: str = ""
    comparison: str = "<="


def spec(name: str, events: float | None, poll: float | None, unit: str = "") -> Spec:
    return Spec(name, {EVENTS: events, POLL: poll}, unit)


def refresh_specs(size: int) -> list[Spec]:
    return [
        spec(f"refresh_{size}_failed", 0, 0),
        spec(f"refresh_{size}_tasks_killed", 0, 0),
        spec(f"refresh_{size}_completed_twice", 0, 0),
        spec(f"refresh_{size}_throttled_after_first_minute", 0, 0),
        spec(f"refresh_{size}_throttled_fraction", 0.01, 0.01),
        # A poll-mode drain polls every 30 s: at five rounds it cannot make six calls.
        spec(f"refresh_{size}_ecs_calls_per_drain_median", 6, None),
    ]


def judge(result: BenchResult) -> list[Floor]:
    floors: list[Floor] = []
    for mode in modes.MODES:
        floors += _mode_floors(result, mode)
    floors.append(dispatch_floor(result))
    floors.append(import_floor(result))
    return floors


def _mode_floors(result: BenchResult, mode: str) -> list[Floor]:
    status = result.modes.get(mode, modes.unavailable_reason(mode))
    measured: dict[str, tuple[float | None, str]] = {}
    if status == "measured":
        measured = _measurements(result, mode)
    floors = []
    for item in _specs(result):
        limit = item.limits[mode]
        value, detail = measured.get(item.name, (None, ""))
        if status != "measured":
            floors.append(Floor(item.name, None, limit, "n/a", mode, item.comparison, "", status))
        elif limit is None:
            why = "no floor in this mode" + (": shown for comparison" if value is not None else "")
            floors.append(Floor(item.name, value, None, "n/a", mode, item.comparison, detail, why))
        elif value is None:
            floors.append(
                Floor(item.name, None, limit, "n/a", mode, item.comparison, "", _not_run(item))
            )
        else:
            verdict = "PASS" if value <= limit else "FAIL"
            floors.append(Floor(item.name, value, limit, verdict, mode, item.comparison, detail))
    return floors


def _specs(result: BenchResult) -> list[Spec]:
    specs = [
        spec("drain_5min_transitions", 15, 39),
        spec("drain_1h_transitions", 50, None),
        spec("drain_48h_transitions", 1000, 4999),
        spec("drain_48h_history_events", 5000, 24999),
        spec("detection_p95_seconds_under_1h", UNDER_HOUR_LATENCY_SECONDS, 30, "s"),
    ]
    for preset, model in detection.PRESETS.items():
        suffix = "" if preset == "default" else f"_{preset}"
        limit = model.max_delay_seconds + detection.DETECTION_MARGIN_SECONDS
        specs.append(spec(f"detection_p95_seconds{suffix}", limit, None, "s"))
    specs += [
        spec("detection_p95_seconds_events_lost_1pct", loss_limit(result), None, "s"),
        spec("events_lost_1pct_tasks_killed", 0, None),
        spec("events_lost_1pct_completed_twice", 0, None),
        spec("unrelated_events_transitions", 0, 0),
        spec("unrelated_events_ecs_calls", 0, 0),
    ]
    for size in REFRESH_SIZES:
        specs += refresh_specs(size)
    specs.append(spec("refresh_notice_p95_ratio_5000_to_500", NOTICE_RATIO_FLOOR, None))
    return specs


def _not_run(item: Spec) -> str:
    for size in REFRESH_SIZES:
        if item.name.startswith(f"refresh_{size}_") or item.name.endswith(f"_{size}_to_500"):
            return (
                f"not run: make bench-refresh-{size} writes results/refresh-{size}.json, "
                "which make bench reads"
            )
    return "not run"


def loss_limit(result: BenchResult) -> float | None:
    """The fallback poll interval + 30 s; None before the events mode has its setting."""
    fallback = result.configuration.get("fallback_poll_seconds")
    return None if fallback is None else float(fallback) + detection.LOSS_MARGIN_SECONDS


def _measurements(result: BenchResult, mode: str) -> dict[str, tuple[float | None, str]]:
    found: dict[str, tuple[float | None, str]] = {}
    drains = {d.kind: d for d in result.drains if d.drainer == product(mode)}
    phases = result.five_minute_transitions.get(mode) or []
    if phases:
        found["drain_5min_transitions"] = (
            max(phases),
            f"worst of {len(phases)} instances (min {min(phases)})",
        )
    if "1 h" in drains:
        found["drain_1h_transitions"] = (drains["1 h"].transitions, "")
    ceiling = drains.get("48 h ceiling")
    if ceiling is not None:
        note = "" if ceiling.status == "measured" else ceiling.status
        found["drain_48h_transitions"] = (ceiling.transitions, note)
        found["drain_48h_history_events"] = (ceiling.history_events, note)
    latency = next((s for s in result.latency if s.drainer == product(mode)), None)
    if latency is not None:
        found["detection_p95_seconds_under_1h"] = _latency(latency)
    for run in result.detection:
        if run.mode == mode:
            suffix = "" if run.preset == "default" else f"_{run.preset}"
            p95 = run.percentile(95)
            detail = (
                f"{len(run.measured)} drains of 1 min–47 h, {run.preset} delay model "
                f"(max {run.max_delay_seconds:g} s), {run.cut} cut"
            )
            found[f"detection_p95_seconds{suffix}"] = (None if run.cut else p95, detail)
    for loss in result.loss:
        if loss.mode == mode:
            detail = (
                f"{loss.lost_task_events} of {loss.task_events} task events lost "
                f"({loss.lost_stops} STOPPED) over {len(loss.samples)} drains"
            )
            found["detection_p95_seconds_events_lost_1pct"] = (loss.percentile(95), detail)
            found["events_lost_1pct_tasks_killed"] = (loss.tasks_killed, "")
            found["events_lost_1pct_completed_twice"] = (loss.completed_twice, "")
    for run in result.unrelated:
        if run.mode == mode:
            detail = f"{run.stopped_events:,} STOPPED task events, {run.executions} executions"
            found["unrelated_events_transitions"] = (run.transitions, detail)
            found["unrelated_events_ecs_calls"] = (run.ecs_calls, detail)
    sizes = {r.instances: r for r in result.refreshes if r.mode == mode}
    for refresh in sizes.values():
        found.update(refresh_measurements(refresh))
    if 500 in sizes and 5000 in sizes:
        small, large = sizes[500].notice_percentile(95), sizes[5000].notice_percentile(95)
        if small and large is not None:
            found["refresh_notice_p95_ratio_5000_to_500"] = (
                large / small,
                f"p95 {large:.1f} s at 5,000, {small:.1f} s at 500",
            )
    return found


def refresh_measurements(refresh: RefreshResult) -> dict[str, tuple[float | None, str]]:
    prefix = f"refresh_{refresh.instances}"
    throttled = sum(refresh.throttled.values())
    return {
        f"{prefix}_failed": (
            refresh.failed_executions + (refresh.instances - refresh.actions_completed),
            f"{refresh.drained}/{refresh.instances} drained, {refresh.actions_completed} "
            "actions completed by the drainer",
        ),
        f"{prefix}_tasks_killed": (refresh.tasks_killed, ""),
        f"{prefix}_completed_twice": (refresh.completed_twice, ""),
        f"{prefix}_throttled_after_first_minute": (refresh.throttled_after_first_minute, ""),
        f"{prefix}_throttled_fraction": (
            refresh.throttled_fraction,
            f"{throttled:,} of {refresh.ecs_calls:,} ECS calls",
        ),
        f"{prefix}_ecs_calls_per_drain_median": (refresh.ecs_calls_per_drain_median, ""),
    }


def _latency(summary: LatencySummary) -> tuple[float | None, str]:
    p95 = summary.percentile(95)
    detail = f"{len(summary.measured)} drains of 1–55 min, {summary.cut} cut"
    return (None if summary.cut else p95), detail


def dispatch_floor(result: BenchResult) -> Floor:
    model = result.dispatch
    return Floor(
        "dispatch_spot_added_seconds",
        model.cold_seconds,
        BUDGET_SECONDS,
        "PASS" if model.within_budget else "FAIL",
        "",
        "<",
        f"{model.warm_seconds:.2f} s warm, {model.cold_seconds:.2f} s on a cold start",
        "modelled: see 'Starting a drain'",
    )


def import_floor(result: BenchResult) -> Floor:
    cold = result.coldstart
    worst = max(cold.handlers, key=lambda h: h.ratio or 0)
    detail = f"worst {worst.module} (median of {cold.repetitions})"
    if cold.repetitions < 3:
        verdict, why = "n/a", f"--small imports each module {cold.repetitions}× only: noise"
    else:
        verdict, why = ("PASS" if (worst.ratio or 0) <= IMPORT_RATIO_FLOOR else "FAIL"), ""
    return Floor(
        "handler_import_ratio", worst.ratio, IMPORT_RATIO_FLOOR, verdict, "", "<=", detail, why
    )
