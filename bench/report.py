"""The results directory a run writes: README-BENCH.md, bench.json and bench.png."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from bench.chart import chart
from bench.markdown import markdown
from bench.result import BenchResult


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
    data["refreshes"] = [
        {
            **asdict(r),
            "throttled_fraction": r.throttled_fraction,
            "ecs_calls_per_drain_median": r.ecs_calls_per_drain_median,
            "notice_p50": r.notice_percentile(50),
            "notice_p95": r.notice_percentile(95),
        }
        for r in result.refreshes
    ]
    data["detection"] = [
        {**asdict(run), "p50": run.percentile(50), "p95": run.percentile(95)}
        for run in result.detection
    ]
    paths["json"].write_text(json.dumps(data, indent=1, default=str) + "\n")
    chart(result, paths["chart"])
    return paths
