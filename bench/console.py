"""The run's tables printed to the terminal (rich), failed floors in red."""

from __future__ import annotations

import sys

from bench.result import BenchResult
from bench.tables import (
    COLD_HEADER,
    DETECTION_HEADER,
    DISPATCH_HEADER,
    DRAIN_HEADER,
    FLOOR_HEADER,
    LATENCY_HEADER,
    LOSS_HEADER,
    REFRESH_HEADER,
    REFRESH_SIZES_HEADER,
    UNRELATED_HEADER,
    cold_rows,
    detection_rows,
    dispatch_rows,
    drain_rows,
    floor_rows,
    latency_rows,
    loss_rows,
    phase_line,
    refresh_rows,
    refresh_size_rows,
    refresh_summary,
    unrelated_rows,
)


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
    console.print(f"5-minute drain, state transitions: {phase_line(result)}")
    show("Detection latency, drains of 1–55 min", LATENCY_HEADER, latency_rows(result))
    show("Detection, drains of 1 min–47 h", DETECTION_HEADER, detection_rows(result))
    show("Lost task events", LOSS_HEADER, loss_rows(result))
    show("Task events of instances not draining", UNRELATED_HEADER, unrelated_rows(result))
    show("Instance refreshes", REFRESH_SIZES_HEADER, refresh_size_rows(result))
    for refresh in result.refreshes:
        console.print(refresh_summary(refresh))
        show(
            f"Refresh of {refresh.instances} instances, {refresh.mode} mode",
            REFRESH_HEADER,
            refresh_rows(refresh),
        )
    show("Cold start", COLD_HEADER, cold_rows(result.coldstart))
    show("Starting a drain: the dispatch function (model)", DISPATCH_HEADER, dispatch_rows(result))
    show("Floors", FLOOR_HEADER, floor_rows(result))
    for finding in result.findings:
        console.print(f"• {finding}")
