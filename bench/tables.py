"""The run's tables as rows of text, and its one-line summaries: the same cells for the
markdown file (markdown.py) and the console (console.py)."""

from __future__ import annotations

from bench.coldstart import ColdStart, ImportTime
from bench.refresh import RefreshResult
from bench.result import BenchResult


def _n(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _usd(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:.4f}" if value >= 0.0001 else f"${value:.6f}"


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def phase_summary(sample: list[int]) -> str:
    counts = {n: sample.count(n) for n in sorted(set(sample))}
    return ", ".join(f"{n} ({k}×)" for n, k in counts.items())


def drain_rows(result: BenchResult) -> list[list[str]]:
    rows = []
    for d in result.drains:
        outcome = d.status if d.status not in ("measured",) else (d.outcome or "—")
        notes = [d.note] if d.note else []
        if d.sns_publishes:
            notes.append(f"{d.sns_publishes} SNS publishes")
        rows.append(
            [
                d.drainer,
                d.kind,
                outcome,
                _n(d.transitions),
                _n(d.history_events),
                _n(d.lambda_invocations),
                _n(d.ecs_calls),
                _n(d.asg_calls),
                _usd(d.cost_usd),
                _s(d.latency_seconds) if d.tasks_killed == 0 else f"cut ({d.tasks_killed} killed)",
                "; ".join(notes),
            ]
        )
    return rows


DRAIN_HEADER = [
    "Drainer",
    "Drain",
    "Outcome",
    "State transitions",
    "History events",
    "Lambda invocations",
    "ECS calls",
    "Auto Scaling calls",
    "Cost per drain",
    "Detection latency (s)",
    "Notes",
]
LATENCY_HEADER = [
    "Drainer",
    "Drains",
    "p50 (s)",
    "p95 (s)",
    "max (s)",
    "Cut (tasks killed)",
    "Action ended by",
]
REFRESH_HEADER = ["Operation", "Calls", "Throttled", "Peak attempts/s", "Peak accepted/s", "Bucket"]
COLD_HEADER = ["Module", "Import (ms): median (fastest–slowest)", "× boto3 alone (medians)"]
FLOOR_HEADER = ["Floor", "Mode", "Measured", "Limit", "Verdict", "Detail", "Why"]
REFRESH_SIZES_HEADER = [
    "Instances",
    "Mode",
    "Drained",
    "Failed",
    "Tasks killed",
    "Throttled (after 1st minute)",
    "ECS calls per drain: median (+ naming no instance)",
    "Time to notice p50 / p95 (s)",
    "Last action (virtual s)",
    "Wall (s)",
    "CPU (s)",
    "Peak memory (MB)",
    "Source",
]
DETECTION_HEADER = [
    "Mode",
    "Delay model",
    "Model's max delay (s)",
    "Drains",
    "p50 (s)",
    "p95 (s)",
    "max (s)",
    "Cut",
]
LOSS_HEADER = [
    "Mode",
    "Task events lost",
    "Drains",
    "p50 (s)",
    "p95 (s)",
    "Tasks killed",
    "Completed twice",
]
UNRELATED_HEADER = [
    "Mode",
    "STOPPED events",
    "Executions",
    "State transitions",
    "ECS calls",
    "Lambda invocations",
]
DISPATCH_HEADER = ["Step added before DRAINING", "Seconds", "When", "Source"]


def latency_rows(result: BenchResult) -> list[list[str]]:
    return [
        [
            s.drainer,
            str(len(s.samples)),
            _s(s.percentile(50)),
            _s(s.percentile(95)),
            _s(max(s.measured) if s.measured else None),
            str(s.cut),
            ", ".join(f"{k} {v}" for k, v in sorted(s.endings().items())),
        ]
        for s in result.latency
    ]


def refresh_rows(refresh: RefreshResult) -> list[list[str]]:
    bucket = f"burst {refresh.burst:g}, {refresh.rate_per_s:g}/s"
    rows = []
    for key, calls in sorted(refresh.api_calls.items()):
        service, operation = key.split(":", 1)
        rows.append(
            [
                key,
                f"{calls:,}",
                f"{refresh.throttled.get(operation, 0):,}" if service == "ecs" else "—",
                str(refresh.peak_attempts_per_s.get(operation, "—")) if service == "ecs" else "—",
                str(refresh.peak_accepted_per_s.get(operation, "—")) if service == "ecs" else "—",
                bucket if service == "ecs" else "none",
            ]
        )
    return rows


def cold_rows(cold: ColdStart) -> list[list[str]]:
    def spread(item: ImportTime) -> str:
        low, high = min(item.samples_us) / 1000, max(item.samples_us) / 1000
        return f"{item.median_us / 1000:.0f} ({low:.0f}–{high:.0f})"

    rows = [["boto3 alone", spread(cold.boto3), "1.00"]]
    rows += [[h.module, spread(h), f"{h.ratio:.2f}"] for h in cold.handlers]
    return rows


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"


def floor_rows(result: BenchResult) -> list[list[str]]:
    return [
        [
            f.name,
            f.mode or "—",
            _num(f.measured),
            "—" if f.limit is None else f"{f.comparison} {_num(f.limit)}",
            f.verdict,
            f.detail,
            f.why,
        ]
        for f in result.floors
    ]


def refresh_size_rows(result: BenchResult) -> list[list[str]]:
    return [
        [
            f"{r.instances:,}",
            r.mode,
            f"{r.drained:,}",
            str(r.failed_executions),
            str(r.tasks_killed),
            f"{sum(r.throttled.values()):,} ({r.throttled_after_first_minute:,})",
            f"{_s(r.ecs_calls_per_drain_median)} (+{r.ecs_calls_naming_no_instance})",
            f"{_s(r.notice_percentile(50))} / {_s(r.notice_percentile(95))}",
            f"{r.virtual_seconds:.0f}",
            f"{r.wall_seconds:.0f}",
            f"{r.cpu_seconds:.0f}",
            f"{r.peak_rss_mb:.0f}",
            r.source,
        ]
        for r in result.refreshes
    ]


def detection_rows(result: BenchResult) -> list[list[str]]:
    return [
        [
            run.mode,
            run.preset,
            f"{run.max_delay_seconds:g}",
            str(len(run.samples)),
            _s(run.percentile(50)),
            _s(run.percentile(95)),
            _s(max(run.measured) if run.measured else None),
            str(run.cut),
        ]
        for run in result.detection
    ]


def loss_rows(result: BenchResult) -> list[list[str]]:
    return [
        [
            run.mode,
            f"{run.lost_task_events} of {run.task_events} ({run.lost_stops} STOPPED)",
            str(len(run.samples)),
            _s(run.percentile(50)),
            _s(run.percentile(95)),
            str(run.tasks_killed),
            str(run.completed_twice),
        ]
        for run in result.loss
    ]


def unrelated_rows(result: BenchResult) -> list[list[str]]:
    return [
        [
            run.mode,
            f"{run.stopped_events:,}",
            str(run.executions),
            str(run.transitions),
            str(run.ecs_calls),
            ", ".join(f"{k} {v:,}" for k, v in sorted(run.lambda_invocations.items())) or "0",
        ]
        for run in result.unrelated
    ]


def phase_line(result: BenchResult) -> str:
    return "; ".join(
        f"{mode} mode on {len(sample)} instances: {phase_summary(sample)}"
        for mode, sample in result.five_minute_transitions.items()
    )


def refresh_summary(refresh: RefreshResult) -> str:
    invocations = sum(refresh.lambda_invocations.values())
    return (
        f"{refresh.mode} mode: {refresh.instances} instances leave at once (their web tasks "
        "deregister from the load "
        f"balancer for {refresh.deregistration_seconds:g} s); {refresh.drained} drained, "
        f"{refresh.failed_executions} failed, {refresh.actions_completed} lifecycle actions "
        f"completed by the drainer, {refresh.tasks_killed} tasks killed; outcomes "
        f"{refresh.outcomes}. Last action completed {refresh.virtual_seconds:.0f} s (virtual) "
        f"after the refresh began; {invocations:,} Lambda invocations "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(refresh.lambda_invocations.items()))}); "
        f"simulated in {refresh.wall_seconds:.0f} s of wall time."
    )


def dispatch_rows(result: BenchResult) -> list[list[str]]:
    model = result.dispatch
    rows = [
        [
            step.name,
            f"{step.seconds:.3f}",
            "cold start" if step.cold_only else "every drain",
            step.source,
        ]
        for step in model.steps
    ]
    rows.append(["total, warm", f"{model.warm_seconds:.3f}", "", ""])
    rows.append(["total, cold start", f"{model.cold_seconds:.3f}", "", ""])
    return rows
