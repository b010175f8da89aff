"""The one configuration model. Every tunable lives here, with its default and its limits.

Loaded from drainer.toml (or the file named by `cdk deploy -c config=FILE`), validated at synth:
an invalid value stops synth with a message naming the field, the value and the allowed range.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drainer.schedule import (
    HISTORY_EVENT_BUDGET,
    MAX_LIFECYCLE_SECONDS,
    PollSchedule,
    drain_cost,
    global_timeout_seconds,
)
from stacks import ROOT

DEFAULT_CONFIG_FILE = ROOT / "drainer.toml"
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)  # CloudWatch Logs RetentionInDays values
CLUSTER_NAME = r"^[A-Za-z0-9_-]{1,255}$"  # ECS CreateCluster: letters, numbers, - and _
GROUP_NAME = r"^[^\x00-\x1f:]{1,255}$"  # Auto Scaling group names: 1–255, no ':' (ARN separator)
HOOK_NAME = r"^[A-Za-z0-9\-_/]{1,255}$"  # PutLifecycleHook LifecycleHookName pattern
EVENT_SOURCE = r"^[A-Za-z0-9._\-/]{1,256}$"  # PutEvents Source
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

ClusterName = Annotated[str, Field(pattern=CLUSTER_NAME)]
GroupName = Annotated[str, Field(pattern=GROUP_NAME)]


class ConfigError(ValueError):
    """Invalid configuration; str() is the message to show the user."""


class DrainerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stack_name: str = Field(
        "EcsDrainer",
        pattern=r"^[A-Za-z][A-Za-z0-9-]{0,63}$",
        description="CloudFormation stack name",
    )
    cluster_names: list[ClusterName] = Field(
        min_length=1, max_length=20, description="ECS clusters whose instances are drained"
    )
    auto_scaling_group_names: list[GroupName] = Field(
        min_length=1,
        max_length=20,
        description="Auto Scaling groups whose terminations are drained",
    )
    manage_lifecycle_hooks: bool = Field(
        True, description="Create the terminate lifecycle hook on each group (else bring your own)"
    )
    lifecycle_hook_name: str = Field("ecs-drainer", pattern=HOOK_NAME)
    heartbeat_timeout_seconds: int = Field(
        1800, ge=30, le=7200, description="Hook HeartbeatTimeout; ≥ 1728 allows the full 48 h"
    )
    max_drain_seconds: int = Field(
        MAX_LIFECYCLE_SECONDS,
        ge=60,
        le=MAX_LIFECYCLE_SECONDS,
        description="Ceiling of a lifecycle drain; capped by the hook's global timeout",
    )
    poll_interval_seconds: int = Field(30, ge=5, le=300)
    max_poll_interval_seconds: int = Field(300, ge=5, le=900)
    backoff_after_seconds: int = Field(3600, ge=0, le=MAX_LIFECYCLE_SECONDS)
    backoff_rate: float = Field(1.5, ge=1.0, le=3.0)
    spot_poll_interval_seconds: int = Field(5, ge=1, le=30)
    rebalance_policy: Literal["ignore", "drain", "replace"] = "ignore"
    standalone_task_policy: Literal["wait", "stop"] = "wait"
    standalone_task_grace_seconds: int = Field(600, ge=0, le=MAX_LIFECYCLE_SECONDS)
    daemon_task_grace_seconds: int = Field(120, ge=0, le=3600)
    straggler_policy: Literal["stop-tasks", "leave-running"] = "stop-tasks"
    straggler_stop_wait_seconds: int = Field(30, ge=0, le=120)
    rescue_grace_seconds: int = Field(
        180,
        ge=0,
        le=300,
        description="After a step fails mid-drain, time ECS gets to move tasks before completion",
    )
    dry_run: bool = False
    # Off by default: while a test source is on, anyone allowed events:PutEvents on the default
    # bus can start drains (README, "Fire test events").
    test_event_source: str | None = Field(None, pattern=EVENT_SOURCE + "|^$")
    log_retention_days: int = 30
    notification_emails: list[Annotated[str, Field(pattern=EMAIL)]] = Field(
        default_factory=list, max_length=10
    )
    lambda_architecture: Literal["arm64", "x86_64"] = "arm64"
    lambda_memory_mb: int = Field(256, ge=128, le=3008)
    metrics_namespace: str = Field("EcsDrainer", pattern=r"^[A-Za-z0-9._/#:\- ]{1,255}$")

    @field_validator("test_event_source")
    @classmethod
    def _not_aws(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("aws."):
            raise ValueError("must not start with 'aws.': AWS refuses such sources in PutEvents")
        return value or None

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"must be one of CloudWatch Logs' values {LOG_RETENTION_DAYS}")
        return value

    @field_validator("cluster_names", "auto_scaling_group_names")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("must not repeat a name")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DrainerConfig:
        limit = global_timeout_seconds(self.heartbeat_timeout_seconds)
        if self.max_drain_seconds > limit:
            raise ValueError(
                f"max_drain_seconds={self.max_drain_seconds} exceeds the lifecycle hook's global "
                "timeout min(172800, 100 × heartbeat_timeout_seconds="
                f"{self.heartbeat_timeout_seconds})"
                f" = {limit} s: lower max_drain_seconds to ≤ {limit} or raise "
                f"heartbeat_timeout_seconds to ≥ {-(-self.max_drain_seconds // 100)}"
            )
        if self.poll_interval_seconds > self.max_poll_interval_seconds:
            raise ValueError(
                f"poll_interval_seconds={self.poll_interval_seconds} is above "
                f"max_poll_interval_seconds={self.max_poll_interval_seconds}: make it ≤ the maximum"
            )
        heartbeat_every = self.heartbeat_timeout_seconds // 3
        if self.max_poll_interval_seconds > heartbeat_every:
            raise ValueError(
                f"max_poll_interval_seconds={self.max_poll_interval_seconds} is above a third of "
                f"heartbeat_timeout_seconds ({heartbeat_every} s): heartbeats could come too late; "
                f"lower it to ≤ {heartbeat_every} or raise heartbeat_timeout_seconds"
            )
        cost = drain_cost(
            self.poll_schedule, self.max_drain_seconds, heartbeat_every, to_ceiling=True
        )
        if cost.history_events > HISTORY_EVENT_BUDGET:
            raise ValueError(
                f"a drain to max_drain_seconds={self.max_drain_seconds} would write "
                f"{cost.history_events} history events (budget {HISTORY_EVENT_BUDGET} of the "
                "25,000 "
                "quota): raise poll_interval_seconds / max_poll_interval_seconds / backoff_rate, "
                "or lower backoff_after_seconds or max_drain_seconds"
            )
        return self

    @property
    def poll_schedule(self) -> PollSchedule:
        return PollSchedule(
            self.poll_interval_seconds,
            self.max_poll_interval_seconds,
            self.backoff_after_seconds,
            self.backoff_rate,
        )

    def lambda_settings(self, claims_table: str, outcome_topic_arn: str) -> str:
        """The DRAINER_SETTINGS value the Lambdas read (lambdas/drainer/settings.py)."""
        keys = (
            "cluster_names",
            "auto_scaling_group_names",
            "lifecycle_hook_name",
            "heartbeat_timeout_seconds",
            "max_drain_seconds",
            "poll_interval_seconds",
            "max_poll_interval_seconds",
            "backoff_after_seconds",
            "backoff_rate",
            "spot_poll_interval_seconds",
            "rebalance_policy",
            "standalone_task_policy",
            "standalone_task_grace_seconds",
            "daemon_task_grace_seconds",
            "straggler_policy",
            "straggler_stop_wait_seconds",
            "rescue_grace_seconds",
            "dry_run",
            "test_event_source",
            "metrics_namespace",
        )
        values = {key: getattr(self, key) for key in keys}
        values.update(claims_table=claims_table, outcome_topic_arn=outcome_topic_arn)
        return json.dumps(values, separators=(",", ":"), sort_keys=True)


def load_config(
    path: Path | str | None = None, overrides: dict[str, Any] | None = None
) -> DrainerConfig:
    """Read and validate the configuration file; raise ConfigError with a readable message."""
    path = Path(path) if path else DEFAULT_CONFIG_FILE
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found. Copy drainer.toml and edit it.") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    values = {**raw.get("drainer", raw), **(overrides or {})}
    return validate(values, str(path))


def validate(values: dict[str, Any], origin: str = "configuration") -> DrainerConfig:
    try:
        return DrainerConfig(**values)
    except ValidationError as error:
        raise ConfigError(explain(error, values, origin)) from None


def explain(error: ValidationError, values: dict[str, Any], origin: str) -> str:
    lines = [f"{origin}: invalid configuration ({error.error_count()} problem(s)):"]
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "(whole configuration)"
        value = problem.get("input")
        if problem["type"] == "extra_forbidden":
            allowed = ", ".join(sorted(DrainerConfig.model_fields))
            lines.append(f"  - {field}: unknown setting. Allowed settings: {allowed}")
            continue
        message = re.sub(r"^Value error, ", "", problem["msg"])
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        limits = _limits(str(problem["loc"][0])) if problem["loc"] else ""
        lines.append(f"  - {field}{shown}: {message}{limits}")
    return "\n".join(lines)


def _limits(name: str) -> str:
    info = DrainerConfig.model_fields.get(name)
    if info is None:
        return ""
    bounds = {type(item).__name__: item for item in info.metadata}
    low = getattr(bounds.get("Ge"), "ge", None)
    high = getattr(bounds.get("Le"), "le", None)
    if low is None and high is None:
        return ""
    return f" (allowed: {low if low is not None else '…'} to {high if high is not None else '…'})"
