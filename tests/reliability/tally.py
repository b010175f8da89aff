"""What the reliability tests measured: cases tried, faults injected and survived, actions left
open. Printed in pytest's terminal summary (tests/reliability/conftest.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

CASES: Counter[str] = Counter()  # hostile inputs tried, by the layer they went through
FAULTS: Counter[str] = Counter()  # faults injected into a run that then passed its assertions
ACTIONS_CHECKED: Counter[str] = Counter()  # lifecycle actions whose end was asserted
ACTIONS_LEFT_OPEN: list[str] = []  # lifecycle actions a bug left to time out (must stay empty)
KNOWN_GAPS: list[str] = []  # what a scenario showed the product does not do yet (xfail)


def case(layer: str, count: int = 1) -> None:
    CASES[layer] += count


def survived(kind: str, count: int) -> None:
    """Call after a run's assertions passed: its injected faults were survived."""
    if count:
        FAULTS[kind] += count


def world_faults(world: Any) -> dict[str, int]:
    """Every failing answer the simulated world gave (injected faults and throttling)."""
    counts: Counter[str] = Counter()
    for call in world.api_calls:
        if call.outcome != "ok":
            counts[f"{call.service}:{call.operation} {call.outcome}"] += 1
    return dict(counts)


def actions_completed(actions: Iterable[Any], where: str) -> None:
    """Assert every action ended by our completion; record any that a bug left open."""
    left = []
    for action in actions:
        ACTIONS_CHECKED[where] += 1
        if action.ended_by != "completed":
            left.append(f"{where}: {action.instance_id} ended by {action.ended_by}")
    ACTIONS_LEFT_OPEN.extend(left)
    assert not left, left


def gap(description: str) -> None:
    KNOWN_GAPS.append(description)


def summary_lines() -> list[str]:
    lines = [f"hostile inputs tried: {sum(CASES.values())}"]
    lines += [f"  {layer}: {count}" for layer, count in sorted(CASES.items())]
    lines.append(f"faults injected and survived: {sum(FAULTS.values())}")
    lines += [f"  {kind}: {count}" for kind, count in sorted(FAULTS.items())]
    lines.append(f"lifecycle actions checked: {sum(ACTIONS_CHECKED.values())}")
    lines.append(f"lifecycle actions left open by a bug: {len(ACTIONS_LEFT_OPEN)}")
    lines += [f"  {entry}" for entry in ACTIONS_LEFT_OPEN]
    lines += [f"known gap: {entry}" for entry in KNOWN_GAPS]
    return lines
