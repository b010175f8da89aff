"""The demo's view of the drains: a live table (or plain lines), then the summary.

Everything shown comes from the Step Functions API of the local endpoint (drains.executions),
as `aws stepfunctions` would show it in AWS.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from drains.executions import KINDS, DrainView, duration, list_executions, read

REFRESH_SECONDS = 0.5  # each read of a running drain fetches its history
STATUS_STYLE = {"RUNNING": "yellow", "SUCCEEDED": "green"}


class DrainWatch:
    """Polls the executions of one state machine; remembers the ones that have ended."""

    def __init__(self, sfn: Any, state_machine_arn: str) -> None:
        self.sfn = sfn
        self.state_machine_arn = state_machine_arn
        self._ended: dict[str, DrainView] = {}

    def poll(self) -> list[DrainView]:
        views = []
        for item in list_executions(self.sfn, self.state_machine_arn):
            arn = item["executionArn"]
            view = self._ended.get(arn) or read(self.sfn, arn)
            if view.status != "RUNNING":
                self._ended[arn] = view
            views.append(view)
        order = list(KINDS.values())  # lifecycle, spot, rebalance; then anything else
        return sorted(
            views, key=lambda v: (order.index(v.kind) if v.kind in order else 9, v.started)
        )

    def until_done(
        self,
        expected: int,
        timeout: float,
        show: Callable[[list[DrainView]], None],
    ) -> list[DrainView]:
        """Poll until `expected` executions exist and none is running (or `timeout` passes)."""
        deadline = time.monotonic() + timeout
        while True:
            views = self.poll()
            show(views)
            done = len(views) >= expected and all(v.status != "RUNNING" for v in views)
            if done or time.monotonic() > deadline:
                return views
            time.sleep(REFRESH_SECONDS)


def live_table(views: list[DrainView], caption: str = "") -> Table:
    table = Table(title="ECS drains (Step Functions executions)", caption=caption)
    for column in ("Instance", "Kind", "Status", "State", "Elapsed", "Tasks left", "Heartbeats"):
        table.add_column(
            column, justify="right" if column in ("Tasks left", "Heartbeats") else "left"
        )
    table.add_column("Outcome")
    for view in views:
        table.add_row(
            view.instance,
            view.kind,
            f"[{STATUS_STYLE.get(view.status, 'red')}]{view.status}[/]",
            view.state,
            duration(view.elapsed),
            "-" if view.tasks_left is None else str(view.tasks_left),
            str(view.heartbeats),
            view.outcome or "",
        )
    return table


def watch_live(
    watch: DrainWatch, expected: int, timeout: float, console: Console
) -> list[DrainView]:
    with Live(live_table([]), console=console, refresh_per_second=8) as live:

        def show(views: list[DrainView]) -> None:
            latest = max((v.latest for v in views), default=None)
            caption = f"virtual time {latest:%H:%M:%S}" if latest else "waiting for executions"
            live.update(live_table(views, caption))

        return watch.until_done(expected, timeout, show)


def watch_lines(watch: DrainWatch, expected: int, timeout: float, out: TextIO) -> list[DrainView]:
    """Headless: one line whenever a drain's status, tasks left or heartbeats change."""
    last: dict[str, tuple[Any, ...]] = {}

    def show(views: list[DrainView]) -> None:
        for view in sorted(views, key=lambda v: v.latest):
            key = (view.status, view.tasks_left, view.heartbeats)
            if last.get(view.arn) == key:
                continue
            last[view.arn] = key
            tasks = "-" if view.tasks_left is None else view.tasks_left
            print(
                f"  {view.latest:%H:%M:%S}  {view.instance}  {view.kind:<9} {view.status:<9} "
                f"{view.state:<28} tasks left {tasks}, heartbeats {view.heartbeats}"
                + (f"  → {view.outcome}" if view.outcome else ""),
                file=out,
                flush=True,
            )

    return watch.until_done(expected, timeout, show)


def summary_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Outcomes")
    for column in rows[0] if rows else ():
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    return table


def summary_lines(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["  (no executions)"]
    widths = {key: max(len(key), *(len(str(row[key])) for row in rows)) for key in rows[0]}
    header = "  ".join(key.ljust(width) for key, width in widths.items())
    body = ["  ".join(str(row[k]).ljust(w) for k, w in widths.items()) for row in rows]
    return [f"  {line}" for line in (header, *body)]
