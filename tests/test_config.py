"""Configuration: defaults valid, every kind of bad value named with its field and range."""

from __future__ import annotations

import pytest

from drainer.schedule import HISTORY_EVENT_QUOTA, drain_cost
from stacks.config import ConfigError, DrainerConfig, load_config, validate


def test_shipped_file_is_valid_and_fits_the_history_quota(config: DrainerConfig):
    cost = drain_cost(
        config.poll_schedule,
        config.max_drain_seconds,
        config.heartbeat_timeout_seconds // 3,
        to_ceiling=True,
    )
    assert cost.history_events < HISTORY_EVENT_QUOTA / 2
    assert config.rebalance_policy == "ignore"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"heartbeat_timeout_seconds": 10}, ["heartbeat_timeout_seconds = 10", "30 to 7200"]),
        ({"poll_interval_seconds": 1000}, ["poll_interval_seconds = 1000", "5 to 300"]),
        ({"heartbeat_timeout_seconds": 600}, ["max_drain_seconds=172800", "60000", "≥ 1728"]),
        ({"cluster_names": []}, ["cluster_names"]),
        ({"cluster_names": ["bad name!"]}, ["cluster_names.0"]),
        ({"rebalance_policy": "panic"}, ["rebalance_policy", "'ignore'", "'drain'", "'replace'"]),
        ({"test_event_source": "aws.autoscaling"}, ["test_event_source", "aws."]),
        ({"log_retention_days": 2}, ["log_retention_days = 2"]),
        ({"poll_intervall_seconds": 30}, ["poll_intervall_seconds: unknown setting"]),
        (
            {"poll_interval_seconds": 5, "backoff_after_seconds": 172800},
            ["history events", "budget"],
        ),
        ({"max_poll_interval_seconds": 900}, ["max_poll_interval_seconds=900", "a third"]),
    ],
)
def test_invalid_values_name_field_value_and_range(config, override, expected):
    with pytest.raises(ConfigError) as raised:
        validate({**config.model_dump(), **override}, "drainer.toml")
    message = str(raised.value)
    assert message.startswith("drainer.toml: invalid configuration")
    for fragment in expected:
        assert fragment in message


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[drainer\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_empty_test_source_switches_test_events_off(config):
    assert validate({**config.model_dump(), "test_event_source": ""}).test_event_source is None
