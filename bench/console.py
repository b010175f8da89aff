"""The run's tables printed to the terminal (rich), failed floors in red."""

from __future__ import annotations

import sys

from bench.result import BenchResult
from bench.tables import (
    COLD_HEADER,
    DISPATCH_HEADER,
    DRAIN_HEADER,
    FLOOR_HEADER,
    LATENCY_HEADER,
    REFRESH_HEADER,
    cold_rows,
    dispatch_rows,
    drain_rows,
    floor_rows,
    latency_rows,
    phase_summary,
    refresh_rows,
    refresh_summary,
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
    show("Starting a drain: the dispatch function (model)", DISPATCH_HEADER, dispatch_rows(result))
    show("Floors", FLOOR_HEADER, floor_rows(result))
    for finding in result.findings:
        console.print(f"• {finding}")
