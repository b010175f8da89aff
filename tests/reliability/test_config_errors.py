"""Bad configuration: every invalid field stops synthesis with a message naming the field, the
value and the allowed range; so does a value of the wrong type (never coerced), every cross-field
rule, and `cdk synth` itself, which also refuses settings given as CDK context."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stacks.config import ConfigError, DrainerConfig, validate
from tests.conftest import ROOT
from tests.reliability import tally

# field -> (an invalid value, what the message must say about the allowed values)
INVALID: dict[str, tuple[Any, str]] = {
    "stack_name": ("1-starts-with-a-digit", "^[A-Za-z][A-Za-z0-9-]{0,63}$"),
    "cluster_names": (["prod", "bad name!"], "^[A-Za-z0-9_-]{1,255}$"),
    "auto_scaling_group_names": (["asg:with-colon"], "{1,255}$"),
    "manage_lifecycle_hooks": ("sometimes", "valid boolean"),
    "lifecycle_hook_name": ("hook name with spaces", "^[A-Za-z0-9\\-_/]{1,255}$"),
    "heartbeat_timeout_seconds": (29, "allowed: 30 to 7200"),
    "max_drain_seconds": (59, "allowed: 60 to 172800"),
    "poll_interval_seconds": (4, "allowed: 5 to 300"),
    "max_poll_interval_seconds": (901, "allowed: 5 to 900"),
    "backoff_after_seconds": (-1, "allowed: 0 to 172800"),
    "backoff_rate": (3.5, "allowed: 1.0 to 3.0"),
    "spot_poll_interval_seconds": (31, "allowed: 1 to 30"),
    "rebalance_policy": ("panic", "'ignore', 'drain' or 'replace'"),
    "standalone_task_policy": ("kill", "'wait' or 'stop'"),
    "standalone_task_grace_seconds": (172_801, "allowed: 0 to 172800"),
    "daemon_task_grace_seconds": (3601, "allowed: 0 to 3600"),
    "straggler_policy": ("sigkill", "'stop-tasks' or 'leave-running'"),
    "straggler_stop_wait_seconds": (121, "allowed: 0 to 120"),
    "rescue_grace_seconds": (301, "allowed: 0 to 300"),
    "dry_run": ("perhaps", "valid boolean"),
    "test_event_source": ("aws.autoscaling", "must not start with 'aws.'"),
    "log_retention_days": (2, "1, 3, 5, 7, 14, 30"),
    "notification_emails": (["ops@example.com", "not-an-address"], "@"),
    "notify_outcomes": (["failed", "drainned"], "'drainned' is neither an outcome"),
    "lambda_architecture": ("sparc", "'arm64' or 'x86_64'"),
    "lambda_memory_mb": (127, "allowed: 128 to 3008"),
    "metrics_namespace": ("bad\nnamespace", "{1,255}$"),
}

# field -> a value of the wrong type, as a TOML file can give it; strict validation refuses it.
WRONG_TYPE: dict[str, Any] = {
    "stack_name": 42,
    "cluster_names": "prod",
    "auto_scaling_group_names": "prod-asg",
    "manage_lifecycle_hooks": "true",
    "lifecycle_hook_name": 7,
    "heartbeat_timeout_seconds": "900",
    "max_drain_seconds": 3600.0,
    "poll_interval_seconds": "30",
    "max_poll_interval_seconds": 300.5,
    "backoff_after_seconds": True,
    "backoff_rate": "1.5",
    "spot_poll_interval_seconds": "5",
    "rebalance_policy": 1,
    "standalone_task_policy": True,
    "standalone_task_grace_seconds": "600",
    "daemon_task_grace_seconds": "120",
    "straggler_policy": 0,
    "straggler_stop_wait_seconds": "30",
    "rescue_grace_seconds": "180",
    "dry_run": "yes",
    "test_event_source": 1,
    "log_retention_days": "30",
    "notification_emails": "ops@example.com",
    "notify_outcomes": "failed",
    "lambda_architecture": 64,
    "lambda_memory_mb": "256",
    "metrics_namespace": 3,
}

# Cross-field rules: changes, then what the message must name.
CROSS_FIELD: dict[str, tuple[dict[str, Any], list[str]]] = {
    "ceiling beyond the hook's global timeout": (
        {"heartbeat_timeout_seconds": 600},
        ["max_drain_seconds=172800", "heartbeat_timeout_seconds=600", "60000", "≥ 1728"],
    ),
    "first poll interval above the back-off ceiling": (
        {"poll_interval_seconds": 300, "max_poll_interval_seconds": 120},
        ["poll_interval_seconds=300", "max_poll_interval_seconds=120", "≤ the maximum"],
    ),
    "polls too far apart for the heartbeats": (
        {"heartbeat_timeout_seconds": 1800, "max_poll_interval_seconds": 700},
        ["max_poll_interval_seconds=700", "heartbeat_timeout_seconds", "≤ 600"],
    ),
    "standalone grace as long as the ceiling": (
        {
            "standalone_task_policy": "stop",
            "standalone_task_grace_seconds": 3600,
            "max_drain_seconds": 3600,
        },
        ["standalone_task_grace_seconds=3600", "max_drain_seconds=3600", "never end", "below 3600"],
    ),
    "daemon grace beyond the ceiling": (
        {"daemon_task_grace_seconds": 600, "max_drain_seconds": 300},
        ["daemon_task_grace_seconds=600", "max_drain_seconds=300", "below 300"],
    ),
    "settings beyond Lambda's 4 KB of environment variables": (
        {
            "cluster_names": [f"cluster-{index:02d}".ljust(150, "x") for index in range(20)],
            "auto_scaling_group_names": [f"group-{index:02d}" for index in range(20)],
        },
        ["4 KB (4096 bytes)", "cluster_names and auto_scaling_group_names (40 names", "shorten"],
    ),
    "drain history beyond the quota": (
        {"poll_interval_seconds": 5, "backoff_after_seconds": 172_800},
        ["max_drain_seconds=172800", "history events", "budget 20000"],
    ),
}


@pytest.fixture(scope="module")
def valid() -> dict[str, Any]:
    from stacks.config import load_config

    return load_config(ROOT / "drainer.toml").model_dump()


def test_every_field_has_an_invalid_case() -> None:
    """A new setting without a case here fails this test: the table stays complete."""
    assert set(INVALID) == set(DrainerConfig.model_fields)
    assert set(WRONG_TYPE) == set(DrainerConfig.model_fields)


@pytest.mark.parametrize("field", sorted(DrainerConfig.model_fields))
def test_a_wrong_type_is_refused_not_coerced(valid: dict[str, Any], field: str) -> None:
    value = WRONG_TYPE[field]
    with pytest.raises(ConfigError) as raised:
        validate({**valid, field: value}, "bad.toml")
    message = str(raised.value)
    tally.case("invalid configurations")
    (problem,) = message.splitlines()[1:]
    assert problem.lstrip(" -").startswith(f"{field} = {value!r}: "), problem
    assert "Input should be" in problem, problem


@pytest.mark.parametrize("field", sorted(DrainerConfig.model_fields))
def test_invalid_field_names_field_value_and_range(valid: dict[str, Any], field: str) -> None:
    value, allowed = INVALID[field]
    with pytest.raises(ConfigError) as raised:
        validate({**valid, field: value}, "bad.toml")
    message = str(raised.value)
    tally.case("invalid configurations")
    assert message.startswith("bad.toml: invalid configuration (1 problem(s)):")
    (problem,) = message.splitlines()[1:]
    assert problem.lstrip(" -").startswith(field), problem
    shown = value[-1] if isinstance(value, list) else value
    assert repr(shown) in problem, problem
    assert allowed in problem, problem


@pytest.mark.parametrize("rule", sorted(CROSS_FIELD))
def test_cross_field_rule_names_fields_values_and_bound(valid: dict[str, Any], rule: str) -> None:
    changes, expected = CROSS_FIELD[rule]
    with pytest.raises(ConfigError) as raised:
        validate({**valid, **changes}, "bad.toml")
    message = str(raised.value)
    tally.case("invalid configurations")
    for fragment in expected:
        assert fragment in message, (fragment, message)


def test_every_problem_of_a_bad_file_is_named_at_once(valid: dict[str, Any]) -> None:
    bad = {**valid, **{field: INVALID[field][0] for field in ("poll_interval_seconds", "dry_run")}}
    with pytest.raises(ConfigError) as raised:
        validate({**bad, "poll_intervall_seconds": 30}, "bad.toml")
    message = str(raised.value)
    assert "(3 problem(s))" in message
    for field in ("poll_interval_seconds = 4", "dry_run = 'perhaps'", "poll_intervall_seconds"):
        assert field in message


def run_app(tmp_path: Path, context: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """What `cdk synth -c key=value …` runs: the CLI hands context to the app through the
    CDK_CONTEXT_JSON environment variable, which aws-cdk's App reads."""
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps(context),
        "CDK_OUTDIR": str(tmp_path / "cdk.out"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cdk_app_refuses_a_bad_config_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[drainer]\ncluster_names = ["demo"]\nauto_scaling_group_names = ["demo-asg"]\n'
        "heartbeat_timeout_seconds = 10\n"
    )
    done = run_app(tmp_path, {"config": str(bad)})
    tally.case("invalid configurations")
    assert done.returncode != 0
    assert f"ecs-drainer: {bad}: invalid configuration" in done.stderr
    assert "heartbeat_timeout_seconds = 10" in done.stderr
    assert "allowed: 30 to 7200" in done.stderr
    written = list((tmp_path / "cdk.out").glob("*.template.json"))
    assert written == [], "nothing may be synthesized from a bad file"


def test_cdk_app_refuses_settings_given_as_context(tmp_path: Path) -> None:
    """`cdk deploy -c dry_run=true -c cluster_names=a,b`: refused, naming each key and the fix."""
    done = run_app(tmp_path, {"dry_run": "true", "cluster_names": "a,b"})
    tally.case("invalid configurations")
    assert done.returncode != 0
    assert "ecs-drainer: CDK context: refused (2 problem(s)):" in done.stderr
    assert "-c dry_run=true: settings are not read from CDK context" in done.stderr
    assert "write dry_run = … below [drainer] in drainer.toml" in done.stderr
    assert "-c cluster_names=a,b" in done.stderr
    assert list((tmp_path / "cdk.out").glob("*.template.json")) == []
