"""Every state-machine scenario runs in both ways a drain can learn its tasks stopped."""

from __future__ import annotations

import pytest

from stacks.config import DrainerConfig, load_config
from tests.worlds import with_settings
from tools.offline import ROOT


@pytest.fixture(params=["events", "poll"])
def config(request: pytest.FixtureRequest) -> DrainerConfig:
    """drainer.toml with drain_end_detection = events (its own value), then poll."""
    return with_settings(load_config(ROOT / "drainer.toml"), drain_end_detection=request.param)
