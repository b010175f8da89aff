"""`python -m bench --small` runs and writes its tables, JSON and chart.

The benchmark is not a test: this only checks that it runs end to end (in a subprocess, so its
simulation speedups stay out of this process) and produces what `make bench` promises.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REQUIRED_FLOORS = (
    "drain_5min_transitions",
    "drain_1h_transitions",
    "drain_48h_transitions",
    "drain_48h_history_events",
    "detection_p95_seconds",
    "detection_p95_seconds_events_lost_1pct",
    "refresh_5000_failed",
    "refresh_5000_tasks_killed",
    "refresh_5000_throttled_after_first_minute",
    "refresh_5000_ecs_calls_per_drain_median",
    "unrelated_events_transitions",
    "unrelated_events_ecs_calls",
)


def test_small_benchmark_prints_and_writes_its_tables(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--small", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    for title in (
        "Cost per drain",
        "Detection latency",
        "Refresh of 20",
        "Detection, drains of 1 min–47 h",
        "Task events of instances not draining",
        "Cold start",
        "Floors",
        "dispatch function",
    ):
        assert title in run.stdout

    markdown = (tmp_path / "README-BENCH.md").read_text()
    assert "| Drainer | Drain | Outcome | State transitions |" in markdown
    for drainer in ("ecs-drainer (this project)", "fixed 30-s poll", "ecs-cid-sample"):
        assert drainer in markdown

    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["mode"] == "small"
    refreshes = {refresh["mode"]: refresh for refresh in data["refreshes"]}
    assert set(refreshes) == {mode for mode, how in data["modes"].items() if how == "measured"}
    for mode, refresh in refreshes.items():
        assert (refresh["instances"], refresh["drained"], refresh["mode"]) == (20, 20, mode)
        assert refresh["notice_p95"] is not None and refresh["ecs_calls_per_drain_median"] > 0
    names = {floor["name"] for floor in data["floors"]}
    assert names >= set(REQUIRED_FLOORS)
    for floor in data["floors"]:
        assert {"name", "measured", "limit", "verdict", "mode"} <= set(floor)
        assert floor["verdict"] in {"PASS", "FAIL", "n/a"}
    # Each mode-bound floor once per mode; a mode this build lacks is n/a, not measured.
    by_mode = {(f["name"], f["mode"]): f for f in data["floors"]}
    assert by_mode[("drain_5min_transitions", "poll")]["verdict"] == "PASS"
    assert by_mode[("unrelated_events_ecs_calls", "poll")]["measured"] == 0
    events = by_mode[("drain_5min_transitions", "events")]
    if data["modes"]["events"] != "measured":
        assert events["verdict"] == "n/a" and events["measured"] is None
    assert (tmp_path / "bench.png").read_bytes()[:8] == PNG_SIGNATURE
