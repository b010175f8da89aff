"""Tables (console and markdown), floors, JSON and the chart."""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import prices
from bench.coldstart import ColdStart, ImportTime
from bench.scenarios import DrainMeasure, LatencySample, RefreshResult

PRODUCT = "ecs-drainer (this project)"
FIXED = "fixed 30-s poll (same state machine)"
LATENCY_FLOOR_SECONDS = 30
IMPORT_RATIO_FLOOR = 1.3
REFRESH_FLOOR_INSTANCES = 500


@dataclass
class LatencySummary:
    drainer: str
    samples: list[LatencySample]

    @property
    def measured(self) -> list[float]:
        return sorted(s.latency_seconds for s in self.samples if s.latency_seconds is not None)

    @property
    def cut(self) -> int:
        return sum(1 for s in self.samples if s.latency_seconds is None)

    def percentile(self, q: int) -> float | None:
        values = self.measured
        if not values:
            return None
        if len(values) == 1:
            return values[0]
        return statistics.quantiles(values, n=100, method="inclusive")[q - 1]

    def endings(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for sample in self.samples:
            counts[sample.ended_by or "?"] = counts.get(sample.ended_by or "?", 0) + 1
        return counts


@dataclass
class Floor:
    name: str
    measured: str
    verdict: str  # PASS | FAIL | n/a
    why: str = ""


@dataclass
class BenchResult:
    mode: str
    configuration: dict[str, Any]
    assumptions: list[str]
    simulation: list[str]
    drains: list[DrainMeasure]
    latency: list[LatencySummary]
    refresh: RefreshResult
    coldstart: ColdStart
    five_minute_transitions: list[int] = field(default_factory=list)  # one per instance
    findings: list[str] = field(default_factory=list)
    floors: list[Floor] = field(default_factory=list)
    wall_seconds: dict[str, float] = field(default_factory=dict)


# --- numbers -------------------------------------------------------------------------------
def price(drains: list[DrainMeasure], profile: prices.LambdaProfile) -> None:
    """Fill cost_usd for drains run by a Step Functions drainer (the sample prices itself)."""
    for drain in drains:
        if drain.cost_usd is None and drain.transitions is not None:
            drain.cost_usd = prices.drainer_cost(
                drain.transitions, drain.lambda_invocations, profile
            )


def judge(result: BenchResult) -> list[Floor]:
    product = {d.kind: d for d in result.drains if d.drainer == PRODUCT}
    floors = []
    ceiling = product["48 h ceiling"]
    ok = (ceiling.transitions or 0) < 5000 and (ceiling.history_events or 0) < 25000
    floors.append(
        Floor(
            "48 h drain: < 5,000 state transitions and < 25,000 history events",
            f"{ceiling.transitions:,} transitions, {ceiling.history_events:,} events"
            + (f" ({ceiling.status})" if ceiling.status != "measured" else ""),
            "PASS" if ok else "FAIL",
        )
    )
    floors.append(five_minute_floor(result.five_minute_transitions))
    latency = next(s for s in result.latency if s.drainer == PRODUCT)
    p95 = latency.percentile(95)
    floors.append(
        Floor(
            f"Detection latency p95 ≤ {LATENCY_FLOOR_SECONDS} s (drains under an hour)",
            f"p95 {p95:.1f} s over {len(latency.measured)} drains" if p95 is not None else "none",
            "PASS"
            if p95 is not None and p95 <= LATENCY_FLOOR_SECONDS and not latency.cut
            else "FAIL",
        )
    )
    cold = result.coldstart
    worst_import = max(cold.handlers, key=lambda h: h.ratio or 0)
    if cold.repetitions < 3:
        verdict, why = "n/a", f"--small imports each module {cold.repetitions}× only: noise"
    else:
        passed = (worst_import.ratio or 0) <= IMPORT_RATIO_FLOOR
        verdict, why = ("PASS" if passed else "FAIL"), ""
    floors.append(
        Floor(
            f"Each handler's import ≤ {IMPORT_RATIO_FLOOR} × boto3 alone (medians)",
            f"worst {worst_import.module} {worst_import.ratio:.2f} × "
            f"(median of {cold.repetitions})",
            verdict,
            why,
        )
    )
    refresh = result.refresh
    measured = (
        f"{refresh.drained}/{refresh.instances} drained, {refresh.failed_executions} failed, "
        f"{refresh.tasks_killed} tasks killed"
    )
    if refresh.instances < REFRESH_FLOOR_INSTANCES:
        verdict = "n/a"
        why = f"--small runs {refresh.instances} instances; the floor is {REFRESH_FLOOR_INSTANCES}"
    elif refresh.passed:
        verdict, why = "PASS", ""
    else:
        verdict = "FAIL"
        why = (
            "a poll that stays throttled through its Retry fails the execution (see Findings): "
            f"{refresh.failed_executions} of {refresh.instances} outcomes 'failed'"
        )
    floors.append(
        Floor(
            f"{REFRESH_FLOOR_INSTANCES}-instance refresh: all drain, "
            "no throttling error in an outcome",
            measured,
            verdict,
            why,
        )
    )
    return floors


def five_minute_floor(sample: list[int]) -> Floor:
    """Judged on the worst 5-minute drain: a floor holds for every instance, not the typical one."""
    worst = max(sample)
    over = sum(1 for n in sample if n >= 40)
    why = ""
    if over:
        why = (
            f"{over} of {len(sample)} instances cost {worst}: each 30-s poll costs 3 transitions "
            "(Wait, Poll, Choice) on top of the fixed ones, and a drain that ends just after one "
            "of its instance's polls needs one more poll"
        )
    return Floor(
        "5-minute drain: < 40 state transitions",
        f"max {worst} over {len(sample)} instances (min {min(sample)}, "
        f"median {statistics.median(sample):g})",
        "PASS" if worst < 40 else "FAIL",
        why,
    )


# --- text --------------------------------------------------------------------------------------
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
FLOOR_HEADER = ["Floor", "Measured", "Verdict", "Why"]


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


def floor_rows(result: BenchResult) -> list[list[str]]:
    return [[f.name, f.measured, f.verdict, f.why] for f in result.floors]


def refresh_summary(refresh: RefreshResult) -> str:
    invocations = sum(refresh.lambda_invocations.values())
    return (
        f"{refresh.instances} instances leave at once (their web tasks deregister from the load "
        f"balancer for {refresh.deregistration_seconds:g} s); {refresh.drained} drained, "
        f"{refresh.failed_executions} failed, {refresh.actions_completed} lifecycle actions "
        f"completed by the drainer, {refresh.tasks_killed} tasks killed; outcomes "
        f"{refresh.outcomes}. Last action completed {refresh.virtual_seconds:.0f} s (virtual) "
        f"after the refresh began; {invocations:,} Lambda invocations "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(refresh.lambda_invocations.items()))}); "
        f"simulated in {refresh.wall_seconds:.0f} s of wall time."
    )


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def clean(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(result: BenchResult) -> str:
    cold = result.coldstart
    small = " --small" if result.mode == "small" else ""
    parts = [
        "# Benchmark: what a drain costs and how soon the instance goes",
        "",
        f"Generated by `make bench` (`python -m bench{small}`)"
        " on the simulated ECS / Auto Scaling / Spot world, in virtual time: the real state "
        "machine (moto's ASL interpreter) and the real Lambda handlers, shipped configuration "
        f"(`drainer.toml`): {result.configuration['summary']}.",
        "",
        "## Cost per drain",
        "",
        markdown_table(DRAIN_HEADER, drain_rows(result)),
        "",
        "Detection latency: from the last task on the instance stopping to the lifecycle action "
        "ending (Spot: to the drain reporting `spot-drained`). *cut*: tasks were still alive "
        "(running, deregistering or stopping) when the instance went. The same 5-minute drain on "
        f"{len(result.five_minute_transitions)} instances (each polls at its own phase) took "
        f"{phase_summary(result.five_minute_transitions)} state transitions.",
        "",
        "## Detection latency over drains of 1–55 minutes",
        "",
        markdown_table(LATENCY_HEADER, latency_rows(result)),
        "",
        "p50/p95 over the drains whose tasks all stopped by themselves; *cut* drains have no "
        "latency (their instance went with tasks alive).",
        "",
        f"## Instance refresh: {result.refresh.instances} instances at once",
        "",
        refresh_summary(result.refresh),
        "",
        markdown_table(REFRESH_HEADER, refresh_rows(result.refresh)),
        "",
        "Peaks are the most calls within any one second of virtual time; a full bucket plus one "
        "second of refill lets up to burst + rate through in a second. Calls include the "
        "throttled attempts, and Lambda invocations include the attempts the state machine "
        "retried after a throttled call.",
        "",
        "## Cold start",
        "",
        f"Median of {cold.repetitions} fresh interpreters (`python -B -X importtime`, nothing "
        "precompiled, as on Lambda), boto3 and handler runs interleaved while the refresh "
        "simulation occupies the other core: compare the ratios, not the milliseconds. "
        "Deployment package (`lambdas/` zipped without "
        f"{', '.join(cold.exclude)}): {cold.package_bytes / 1024:.1f} KiB, {cold.package_files} "
        f"files ({cold.unpacked_bytes / 1024:.1f} KiB unpacked).",
        "",
        markdown_table(COLD_HEADER, cold_rows(cold)),
        "",
        "## Floors",
        "",
        markdown_table(FLOOR_HEADER, floor_rows(result)),
        "",
        "## Findings",
        "",
        *[f"- {finding}" for finding in result.findings],
        "",
        "## Assumptions and sources",
        "",
        *[f"- {line}" for line in result.assumptions],
        "",
        "## How it was simulated",
        "",
        *[f"- {line}" for line in result.simulation],
        "",
    ]
    return "\n".join(parts)


def print_console(result: BenchResult) -> None:
    from rich.console import Console
    from rich.table import Table

    # A terminal gets its own width; a pipe or file gets room for the wide tables.
    console = Console(width=None if sys.stdout.isatty() else 200)

    def show(title: str, header: list[str], rows: list[list[str]]) -> None:
        table = Table(title=title, title_justify="left", show_lines=False)
        for column in header:
            table.add_column(column, overflow="fold")
        for row in rows:
            style = "red" if "FAIL" in row else None
            table.add_row(*row, style=style)
        console.print(table)

    show("Cost per drain (virtual time)", DRAIN_HEADER, drain_rows(result))
    console.print(
        f"5-minute drain on {len(result.five_minute_transitions)} instances: "
        f"{phase_summary(result.five_minute_transitions)} state transitions"
    )
    show("Detection latency, drains of 1–55 min", LATENCY_HEADER, latency_rows(result))
    console.print(refresh_summary(result.refresh))
    show(
        f"Refresh of {result.refresh.instances} instances",
        REFRESH_HEADER,
        refresh_rows(result.refresh),
    )
    show("Cold start", COLD_HEADER, cold_rows(result.coldstart))
    show("Floors", FLOOR_HEADER, floor_rows(result))
    for finding in result.findings:
        console.print(f"• {finding}")


# --- files ---------------------------------------------------------------------------------
def write(result: BenchResult, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out / "README-BENCH.md",
        "json": out / "bench.json",
        "chart": out / "bench.png",
    }
    paths["markdown"].write_text(markdown(result))
    data = asdict(result)
    data["latency"] = [
        {
            "drainer": s.drainer,
            "p50": s.percentile(50),
            "p95": s.percentile(95),
            "cut": s.cut,
            "samples": [asdict(x) for x in s.samples],
        }
        for s in result.latency
    ]
    paths["json"].write_text(json.dumps(data, indent=1, default=str) + "\n")
    chart(result, paths["chart"])
    return paths


def chart(result: BenchResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (costs, latency, refresh) = plt.subplots(1, 3, figsize=(18, 5.5))
    kinds = list(dict.fromkeys(d.kind for d in result.drains))
    drainers = list(dict.fromkeys(d.drainer for d in result.drains))
    color = {drainer: f"C{index}" for index, drainer in enumerate(drainers)}
    width = 0.8 / len(drainers)
    for index, drainer in enumerate(drainers):
        labelled = False
        for position, kind in enumerate(kinds):
            found = [d for d in result.drains if d.drainer == drainer and d.kind == kind]
            if not found or not found[0].cost_usd:
                continue
            costs.bar(
                position + index * width,
                found[0].cost_usd,
                width,
                color=color[drainer],
                hatch="//" if found[0].status != "measured" else None,
                label=None if labelled else drainer,
            )
            labelled = True
    costs.set_yscale("log")
    costs.set_xticks([k + 0.4 - width / 2 for k in range(len(kinds))], kinds, rotation=20)
    costs.set_ylabel("USD per drain (log; hatched: computed, not run)")
    costs.set_title("Cost per drain")
    costs.legend(fontsize=7)

    for index, summary in enumerate(result.latency):
        values = [max(value, 1.0) for value in summary.measured]  # log axis: 0 s shown as 1 s
        latency.scatter(
            [index] * len(values), values, s=14, alpha=0.7, color=color[summary.drainer]
        )
        p95 = summary.percentile(95)
        if p95 is not None:
            latency.hlines(max(p95, 1.0), index - 0.3, index + 0.3, colors="black")
        if summary.cut:
            latency.annotate(f"{summary.cut} cut", (index, 1.2), ha="center", fontsize=8)
    latency.axhline(LATENCY_FLOOR_SECONDS, color="red", linestyle="--", linewidth=1)
    latency.set_yscale("log")
    latency.set_ylim(0.8, 2000)
    latency.set_xticks(
        range(len(result.latency)), [s.drainer for s in result.latency], rotation=15, fontsize=7
    )
    latency.set_ylabel("seconds (bar: p95; dashed: 30 s floor)")
    latency.set_title("Detection latency, drains of 1–55 min")

    line = result.refresh.timeline
    seconds = range(len(line.get("accepted", [])))
    refresh.bar(seconds, line.get("accepted", []), width=1.0, label="accepted")
    refresh.bar(
        seconds,
        line.get("throttled", []),
        width=1.0,
        bottom=line.get("accepted", []),
        label="throttled",
    )
    refresh.set_xlabel("virtual seconds since the refresh began")
    refresh.set_ylabel("ECS calls per second (all operations)")
    refresh.set_title(
        f"Refresh of {result.refresh.instances}: ECS buckets burst {result.refresh.burst:g}, "
        f"{result.refresh.rate_per_s:g}/s each"
    )
    refresh.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
