"""What the `drains` command prints: an aligned table, a timeline, or JSON for scripts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from drains.executions import DrainView, duration
from drains.timeline import Step

ENDED_BY_AWS = {"ABORTED": "failed (aborted)", "TIMED_OUT": "failed (timed out)"}
COLUMNS = (
    "instance",
    "kind",
    "started (UTC)",
    "duration",
    "outcome",
    "cut short",
    "heartbeats",
    "execution",
)
RIGHT_ALIGNED = {"duration", "cut short", "heartbeats"}


def outcome_text(view: DrainView) -> str:
    """The outcome word; a running drain says where it is, a failed one says `failed`."""
    if view.status == "RUNNING":
        return f"running: {view.state}" if view.state else "running"
    if view.status in ENDED_BY_AWS:
        return ENDED_BY_AWS[view.status]
    if view.status == "FAILED":
        return "failed"
    return view.outcome or view.status.lower()


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def row(view: DrainView) -> dict[str, str]:
    return {
        "instance": view.instance,
        "kind": view.kind,
        "started (UTC)": when(view.started),
        "duration": duration(view.elapsed),
        "outcome": outcome_text(view),
        "cut short": _count(view.tasks_cut_short),
        "heartbeats": str(view.heartbeats),
        "execution": view.name,
    }


def table(rows: Sequence[dict[str, str]], columns: Sequence[str] = COLUMNS) -> list[str]:
    """Columns padded to their widest cell; counts right-aligned."""
    widths = {name: max([len(name), *(len(r[name]) for r in rows)]) for name in columns}

    def line(cells: dict[str, str]) -> str:
        padded = (
            cells[name].rjust(widths[name])
            if name in RIGHT_ALIGNED
            else cells[name].ljust(widths[name])
            for name in columns
        )
        return "  ".join(padded).rstrip()

    return [line({name: name for name in columns}), *(line(r) for r in rows)]


def as_json(view: DrainView) -> dict[str, Any]:
    return {
        "instance": view.instance,
        "kind": view.kind,
        "status": view.status,
        "outcome": outcome_text(view),
        "state": view.state or None,
        "started": view.started.astimezone(UTC).isoformat(),
        "durationSeconds": int(view.elapsed.total_seconds()),
        "tasksCutShort": view.tasks_cut_short,
        "heartbeats": view.heartbeats,
        "tasksLeft": view.tasks_left,
        "error": view.error,
        "executionArn": view.arn,
        "name": view.name,
    }


def summary(view: DrainView) -> list[str]:
    """The head of `show`: what drained, how it ended."""
    ran = "running for" if view.status == "RUNNING" else "ran"
    lines = [
        f"{view.instance}  {view.kind}  {outcome_text(view)}",
        f"  execution   {view.arn}",
        f"  status      {view.status}, started {when(view.started)} UTC, "
        f"{ran} {duration(view.elapsed)}",
        f"  counts      heartbeats {view.heartbeats}, tasks cut short "
        f"{_count(view.tasks_cut_short)}, tasks left {_count(view.tasks_left)}",
    ]
    if view.error:
        lines.append(f"  error       {view.error}")
    return lines


def timeline(found: Sequence[Step], started: datetime) -> list[str]:
    """One line per step: time (UTC), time since the start, state, what changed."""
    lines = []
    width = max((len(_label(step)) for step in found), default=0)
    for step in found:
        offset = "+" + duration(step.at - started)
        notes = _quiet(step) if step.kind == "Quiet" else "; ".join(step.notes)
        lines.append(
            f"  {step.at.astimezone(UTC):%H:%M:%S}  {offset:>9}  "
            f"{_label(step).ljust(width)}  {notes}".rstrip()
        )
    return lines


def _label(step: Step) -> str:
    if step.kind == "Quiet":
        return "…"
    if step.kind == "Wait" and step.waited is not None:
        return f"{step.state} ({step.waited:g} s)"
    return step.state


def _quiet(step: Step) -> str:
    counts = ", ".join(f"{name} ×{count}" for name, count in step.states.items())
    until = f" until {step.until.astimezone(UTC):%H:%M:%S}" if step.until else ""
    return f"{counts}{_waits(step.waits)}{until}: nothing new"


def _waits(waits: list[float]) -> str:
    if not waits:
        return ""
    low, high = min(waits), max(waits)
    return f" (waits of {low:g} s)" if low == high else f" (waits of {low:g}–{high:g} s)"


def timeline_json(found: Sequence[Step]) -> list[dict[str, Any]]:
    return [
        {
            "at": step.at.astimezone(UTC).isoformat(),
            "state": step.state or None,
            "type": step.kind,
            "notes": step.notes,
            **({"waitedSeconds": step.waited} if step.waited is not None else {}),
            **(
                {"until": step.until.astimezone(UTC).isoformat(), "states": dict(step.states)}
                if step.kind == "Quiet" and step.until
                else {}
            ),
        }
        for step in found
    ]
