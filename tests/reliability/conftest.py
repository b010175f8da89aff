"""The reliability scenarios run in both ways a drain can learn its tasks stopped; what they
measured (tally.py) is printed at the end of the pytest run."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.config import DrainerConfig, load_config
from tests.reliability import tally
from tests.worlds import with_settings
from tools.offline import ROOT


@pytest.fixture(params=["events", "poll"])
def config(request: pytest.FixtureRequest) -> DrainerConfig:
    """drainer.toml with drain_end_detection = events (its own value), then poll."""
    return with_settings(load_config(ROOT / "drainer.toml"), drain_end_detection=request.param)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not (tally.CASES or tally.FAULTS or tally.ACTIONS_CHECKED):
        return
    terminalreporter.section("reliability and security")
    for line in tally.summary_lines():
        terminalreporter.write_line(line)
