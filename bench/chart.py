"""bench.png: cost per drain, detection latency and the refresh's ECS calls per second."""

from __future__ import annotations

from pathlib import Path

from bench.floors import UNDER_HOUR_LATENCY_SECONDS
from bench.result import BenchResult


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
    latency.axhline(UNDER_HOUR_LATENCY_SECONDS, color="red", linestyle="--", linewidth=1)
    latency.set_yscale("log")
    latency.set_ylim(0.8, 2000)
    latency.set_xticks(
        range(len(result.latency)), [s.drainer for s in result.latency], rotation=15, fontsize=7
    )
    latency.set_ylabel("seconds (bar: p95; dashed: 30 s floor)")
    latency.set_title("Detection latency, drains of 1–55 min")

    shown = max(result.refreshes, key=lambda r: (r.source == "this run", r.instances))
    line = shown.timeline
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
        f"Refresh of {shown.instances} ({shown.mode}): ECS buckets burst {shown.burst:g}, "
        f"{shown.rate_per_s:g}/s each"
    )
    refresh.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
