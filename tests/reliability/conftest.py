"""Prints what the reliability tests measured (tally.py) at the end of the pytest run."""

from __future__ import annotations

from typing import Any

from tests.reliability import tally


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not (tally.CASES or tally.FAULTS or tally.ACTIONS_CHECKED):
        return
    terminalreporter.section("reliability and security")
    for line in tally.summary_lines():
        terminalreporter.write_line(line)
