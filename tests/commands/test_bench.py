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
    assert data["refresh"]["instances"] == 20
    assert data["refresh"]["drained"] == 20
    assert len(data["floors"]) == 6
    assert {floor["verdict"] for floor in data["floors"]} <= {"PASS", "FAIL", "n/a"}
    assert (tmp_path / "bench.png").read_bytes()[:8] == PNG_SIGNATURE
