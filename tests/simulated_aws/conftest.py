"""Fixtures for the world's own tests: fake credentials, moto, an installed world."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from simulated_aws import World


@pytest.fixture(autouse=True)
def _fake_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing here may reach real AWS: fake credentials and a fixed region.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    with mock_aws(), w.install():
        yield w
