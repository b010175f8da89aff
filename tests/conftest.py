"""Shared fixtures. No test reaches AWS: fake credentials, one region, moto or the world."""

from __future__ import annotations

import os
import sys

import pytest

from tools.offline import ROOT, prepare_process

prepare_process()

from drainer import aws, settings  # noqa: E402
from stacks.config import DrainerConfig, load_config  # noqa: E402


@pytest.fixture
def config() -> DrainerConfig:
    return load_config(ROOT / "drainer.toml")


def install_settings(
    config: DrainerConfig,
    table: str = "claims",
    topic_arn: str = "arn:aws:sns:us-east-1:123456789012:outcomes",
) -> settings.Settings:
    """Give the Lambdas the settings the stack would give them; fresh clients for a new mock."""
    os.environ["DRAINER_SETTINGS"] = config.lambda_settings(table, topic_arn)
    settings.settings.cache_clear()
    aws.client.cache_clear()
    return settings.settings()


@pytest.fixture(autouse=True)
def _fresh_clients():
    aws.client.cache_clear()
    settings.settings.cache_clear()
    yield
    aws.client.cache_clear()
    settings.settings.cache_clear()


def pytest_terminal_summary(terminalreporter) -> None:
    """Print what each drain scenario measured (every scenario records its costs)."""
    scenarios = sys.modules.get("tests.state_machine.test_scenarios")
    records = getattr(scenarios, "RECORDS", {})
    if not records:
        return
    terminalreporter.section("drain scenarios (virtual time)")
    for name, record in records.items():
        terminalreporter.write_line(f"[{name}]")
        for line in str(record).splitlines():
            terminalreporter.write_line(f"  {line}")
