"""The floors a run is judged by: what the drainer must cost and how soon it must let go."""

from __future__ import annotations

import statistics

from bench.dispatch import BUDGET_SECONDS
from bench.result import PRODUCT, BenchResult, Floor

LATENCY_FLOOR_SECONDS = 30
IMPORT_RATIO_FLOOR = 1.3
REFRESH_FLOOR_INSTANCES = 500


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
    model = result.dispatch
    floors.append(
        Floor(
            f"Spot: the dispatch function adds < {BUDGET_SECONDS:g} s before DRAINING (model)",
            f"{model.warm_seconds:.2f} s warm, {model.cold_seconds:.2f} s on a cold start",
            "PASS" if model.within_budget else "FAIL",
            "modelled: see 'Starting a drain'",
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
