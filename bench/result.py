"""What a benchmark run measured: its drains, latencies, refresh and cold start, and its floors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench import prices
from bench.coldstart import ColdStart
from bench.detection import DetectionRun, LossRun, UnrelatedRun
from bench.dispatch import DispatchModel
from bench.refresh import RefreshResult
from bench.scenarios import DrainMeasure, LatencySample, LatencySamples

PRODUCT = "ecs-drainer (this project)"
FIXED = "fixed 30-s poll (same state machine)"


def product(mode: str) -> str:
    """The product's label in tables for one drain-end detection mode."""
    return f"{PRODUCT}, {mode}"


@dataclass
class LatencySummary(LatencySamples):
    drainer: str
    samples: list[LatencySample]

    def endings(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for sample in self.samples:
            counts[sample.ended_by or "?"] = counts.get(sample.ended_by or "?", 0) + 1
        return counts


@dataclass
class Floor:
    """One floor for one mode: `measured` against `limit` (`comparison`: "<=" or "<")."""

    name: str  # stable identifier, e.g. drain_5min_transitions
    measured: float | None  # None: not measured (see why)
    limit: float | None  # None: no floor for this mode
    verdict: str  # PASS | FAIL | n/a
    mode: str = ""  # "events" | "poll"; "" where the mode does not matter
    comparison: str = "<="
    detail: str = ""  # what was measured, in words
    why: str = ""


@dataclass
class BenchResult:
    mode: str
    configuration: dict[str, Any]
    assumptions: list[str]
    simulation: list[str]
    drains: list[DrainMeasure]
    latency: list[LatencySummary]
    refreshes: list[RefreshResult]  # per mode and size, smallest first
    coldstart: ColdStart
    dispatch: DispatchModel
    # mode -> the 5-minute drain's transitions, one per instance
    five_minute_transitions: dict[str, list[int]] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)  # mode -> "measured" or why not
    detection: list[DetectionRun] = field(default_factory=list)
    loss: list[LossRun] = field(default_factory=list)
    unrelated: list[UnrelatedRun] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    floors: list[Floor] = field(default_factory=list)
    wall_seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # per part, where measured


def price(drains: list[DrainMeasure], profile: prices.LambdaProfile) -> None:
    """Fill cost_usd for drains run by a Step Functions drainer (the sample prices itself)."""
    for drain in drains:
        if drain.cost_usd is None and drain.transitions is not None:
            drain.cost_usd = prices.drainer_cost(
                drain.transitions, drain.lambda_invocations, profile
            )
