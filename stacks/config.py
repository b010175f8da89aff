"""The one configuration model. Every tunable lives here, with its default and its limits.

Loaded from drainer.toml (or the file named by `cdk deploy -c config=FILE`), validated at synth:
an invalid value stops synth with a message naming the field, the value and the fix. Nothing is
coerced or dropped: a quoted number, a key outside `[drainer]` or an unknown table is refused.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from drainer.history import HISTORY_EVENT_BUDGET, awaited_drain_cost, drain_cost, heartbeat_gaps
from drainer.notices import DEFAULT_NOTIFY, STARTED, notify_problems
from drainer.notices import EVENT_SOURCE as DRAIN_EVENT_SOURCE
from drainer.schedule import (
    HEARTBEAT_MARGIN_SECONDS,
    MAX_LIFECYCLE_SECONDS,
    PollSchedule,
    ceiling_seconds,
    global_timeout_seconds,
    heartbeat_budget_seconds,
    heartbeat_interval_seconds,
)
from drainer.settings import EVENTS, Settings
from stacks import ROOT
from stacks.config_messages import TABLE, explain, layout_problems

DEFAULT_CONFIG_FILE = ROOT / "drainer.toml"
# CloudWatch Logs RetentionInDays values
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827)
LOG_RETENTION_DAYS += (2192, 2557, 2922, 3288, 3653)
CLUSTER_NAME = r"^[A-Za-z0-9_-]{1,255}$"  # ECS CreateCluster: letters, numbers, - and _
GROUP_NAME = r"^[^\x00-\x1f:]{1,255}$"  # Auto Scaling group names: 1–255, no ':' (ARN separator)
HOOK_NAME = r"^[A-Za-z0-9\-_/]{1,255}$"  # PutLifecycleHook LifecycleHookName pattern
# Terminate hooks another party puts on a group under a fixed name. One hook cannot serve two
# drainers: each completes the one lifecycle action when its own drain ends, so the first to end
# lets the instance go while the other still drains. ECS managed instance draining's hook name:
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/enable-managed-instance-draining.html
TAKEN_HOOK_NAMES = {
    "ecs-managed-draining-termination-hook": "ECS managed instance draining puts a terminate "
    "hook of this name on the Auto Scaling group of every capacity provider with managedDraining "
    "ENABLED (the default for a new capacity provider)",
}
EVENT_SOURCE = r"^[A-Za-z0-9._\-/]{1,256}$"  # PutEvents Source
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

MAX_NAMES = 20  # clusters, and groups, one stack drains

# Lambda: "the total size of all environment variables doesn't exceed 4 KB" per function
# (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html). Lambda measures the
# variables as one JSON object, escapes included ("String measured: {…}" in its refusal, e.g.
# https://github.com/github-aws-runners/terraform-aws-github-runner/issues/3594).
LAMBDA_ENVIRONMENT_LIMIT_BYTES = 4096
SETTINGS_VARIABLE = "DRAINER_SETTINGS"  # the stack's only variable (stacks/drainer_stack.py)
# CloudFormation names the claims table and the topic at deploy: at synth they are tokens, so the
# measurement uses the longest they can be. DynamoDB table names: up to 255 characters; SNS topic
# names: up to 256; partition and Region get generous room (16 and 32), the account 12 digits.
LONGEST_TABLE_NAME = "t" * 255
LONGEST_TOPIC_ARN = f"arn:{'p' * 16}:sns:{'r' * 32}:{'0' * 12}:{'t' * 256}"

DEPLOYED = ("claims_table", "outcome_topic_arn")  # Settings named by the stack at deploy
ARN_NAME = re.compile(r"^arn:[^:]*:(?P<service>ecs|autoscaling):.*/(?P<name>[^/]+)$")


def _no_arn(kind: str, example: str) -> Callable[[Any], Any]:
    """A name field given an ARN: say which part of it to write."""

    def check(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("arn:"):
            found = ARN_NAME.match(value)
            name = found.group("name") if found else example
            raise ValueError(f"give the {kind} name, e.g. {name!r}, not its ARN")
        return value

    return check


ClusterName = Annotated[
    str, BeforeValidator(_no_arn("cluster", "prod")), Field(pattern=CLUSTER_NAME)
]
GroupName = Annotated[
    str, BeforeValidator(_no_arn("Auto Scaling group", "prod-asg")), Field(pattern=GROUP_NAME)
]
HEARTBEAT_TIMEOUT_LIMIT = 7200  # PutLifecycleHook HeartbeatTimeout: 30 to 7200 seconds


class ConfigError(ValueError):
    """Invalid configuration; str() is the message to show the user."""


class DrainerConfig(BaseModel):
    # strict: a quoted number or a "yes" is refused, never coerced (an int for a float is fine).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    stack_name: str = Field(
        "EcsDrainer",
        pattern=r"^[A-Za-z][A-Za-z0-9-]{0,63}$",
        description="CloudFormation stack name",
    )
    cluster_names: list[ClusterName] = Field(
        min_length=1, max_length=MAX_NAMES, description="ECS clusters whose instances are drained"
    )
    auto_scaling_group_names: list[GroupName] = Field(
        min_length=1,
        max_length=MAX_NAMES,
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
        description="Ceiling of a lifecycle drain; at most the hook's global timeout",
    )
    poll_interval_seconds: int = Field(30, ge=5, le=300)
    max_poll_interval_seconds: int = Field(300, ge=5, le=900)
    backoff_after_seconds: int = Field(3600, ge=0, le=MAX_LIFECYCLE_SECONDS)
    backoff_rate: float = Field(1.5, ge=1.0, le=3.0)
    spot_poll_interval_seconds: int = Field(5, ge=1, le=30)
    # Lifecycle drains start at most this many per second (Spot drains never wait): a mass
    # refresh's first ECS calls stay within ECS's token buckets (drainer/pacing.py). A start
    # slot never waits past the first heartbeat or the ceiling.
    drain_start_rate_per_second: float = Field(8.0, ge=1.0, le=100.0)
    # Poll mode: lifecycle drains make at most this many poll calls to ECS per second between
    # them, however many are in flight (poll slots, drainer/pacing.py; Spot drains never
    # wait). ECS throttles each account and Region as a whole, the customer's own calls
    # included, with token buckets whose refill rate is the sustained rate ("Request
    # throttling for the Amazon ECS API",
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/request-throttling.html):
    # 10 leaves half of a 20-per-second refill (the benchmark's buckets) to everyone else.
    # Events mode polls seldom (woken, or every fallback_poll_seconds) and takes no slots.
    poll_rate_per_second: float = Field(10.0, ge=1.0, le=100.0)
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
    # How a drain learns its tasks stopped (README, "How a drain ends"): "events" ends a
    # lifecycle drain's waits on ECS task events and polls every fallback_poll_seconds in case
    # one is lost; "poll" waits on the poll schedule above alone.
    drain_end_detection: Literal["events", "poll"] = EVENTS
    fallback_poll_seconds: int = Field(
        900, ge=60, le=3600, description="events mode: the longest wait; an event ends it sooner"
    )
    dry_run: bool = False
    # Off by default: while a test source is on, anyone allowed events:PutEvents on the default
    # bus can start drains (README, "Fire test events").
    test_event_source: str | None = Field(None, pattern=EVENT_SOURCE + "|^$")
    log_retention_days: int = 30
    # The log groups' and claims table's RemovalPolicy, in CDK's words (an enum, as the other
    # policies: a bool's false would not say what happens). "destroy" (default): uninstalling
    # leaves nothing to bill or clean up; "retain" keeps each drain's logs (still expiring) and
    # the table (TTL empties it); neither has a fixed name to collide on redeploy. README, Deploy.
    removal_policy: Literal["destroy", "retain"] = "destroy"
    notification_emails: list[Annotated[str, Field(pattern=EMAIL)]] = Field(
        default_factory=list, max_length=10
    )
    # Which outcomes reach the topic (outcome names, tasks-cut-short, all, drain-started);
    # the alarms always do. Every outcome is an EventBridge event whatever this says.
    notify_outcomes: list[str] = Field(default_factory=lambda: list(DEFAULT_NOTIFY))
    lambda_architecture: Literal["arm64", "x86_64"] = "arm64"
    lambda_memory_mb: int = Field(256, ge=128, le=3008)
    metrics_namespace: str = Field("EcsDrainer", pattern=r"^[A-Za-z0-9._/#:\- ]{1,255}$")

    @field_validator("test_event_source")
    @classmethod
    def _not_aws(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("aws."):
            raise ValueError("must not start with 'aws.': AWS refuses such sources in PutEvents")
        if value == DRAIN_EVENT_SOURCE:
            raise ValueError(
                f"{DRAIN_EVENT_SOURCE!r} is the source of the drainer's own drain events: choose "
                "another, e.g. 'ecs-drainer.test'"
            )
        return value or None

    @field_validator("lifecycle_hook_name")
    @classmethod
    def _not_taken(cls, value: str) -> str:
        owner = TAKEN_HOOK_NAMES.get(value.lower())  # refused in any case, to be safe
        if owner:
            raise ValueError(
                f"{owner}; with one hook shared, whichever drain ends first completes the one "
                "lifecycle action and lets the instance go while the other still drains: choose "
                "a name of your own, e.g. 'ecs-drainer' (both hooks then run side by side, "
                'README "Alongside other drainers")'
            )
        return value

    @field_validator("notify_outcomes")
    @classmethod
    def _notifiable(cls, value: list[str]) -> list[str]:
        problems = notify_problems(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"must be one of CloudWatch Logs' values {LOG_RETENTION_DAYS}")
        return value

    @field_validator("metrics_namespace")
    @classmethod
    def _not_aws_namespace(cls, value: str) -> str:
        # PutMetricData: namespaces beginning with "AWS/" are reserved for AWS services
        # (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html).
        if value.startswith("AWS/"):
            raise ValueError(
                "must not start with 'AWS/' (reserved for AWS services), e.g. 'EcsDrainer'"
            )
        return value

    @field_validator("cluster_names", "auto_scaling_group_names", mode="before")
    @classmethod
    def _names_given(cls, value: Any, info: Any) -> Any:
        if isinstance(value, list) and not value:
            what, example = (
                ("ECS cluster whose container instances", '["prod"]')
                if info.field_name == "cluster_names"
                else ("Auto Scaling group whose terminations", '["prod-asg"]')
            )
            raise ValueError(
                f"name at least one {what} the drainer should drain, "
                f"e.g. {info.field_name} = {example}"
            )
        if isinstance(value, list) and len(value) > MAX_NAMES:
            raise ValueError(
                f"{len(value)} names; at most {MAX_NAMES}: split them over two stacks, "
                "each with its own stack_name"
            )
        return value

    @field_validator("cluster_names", "auto_scaling_group_names", "notification_emails")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        repeated = sorted({item for item in value if value.count(item) > 1})
        if repeated:
            raise ValueError(f"must not repeat an entry: remove the second {repeated[0]!r}")
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
        heartbeat_every = heartbeat_interval_seconds(self.heartbeat_timeout_seconds)
        if self.max_poll_interval_seconds > heartbeat_every:
            raise ValueError(
                f"max_poll_interval_seconds={self.max_poll_interval_seconds} is above a third of "
                f"heartbeat_timeout_seconds ({heartbeat_every} s): heartbeats could come too late; "
                f"lower it to ≤ {heartbeat_every} or raise heartbeat_timeout_seconds"
            )
        self._heartbeats_on_time()
        cost = drain_cost(
            self.poll_schedule,
            self.max_drain_seconds,
            heartbeat_every,
            to_ceiling=True,
            paced=not self.ends_drains_on_events,  # poll mode: rounds waiting for poll slots
        )
        if self.ends_drains_on_events:
            awaited = awaited_drain_cost(
                self.fallback_poll_seconds, self.max_drain_seconds, heartbeat_every
            )
            cost = max(cost, awaited, key=lambda c: c.history_events)
        if cost.history_events > HISTORY_EVENT_BUDGET:
            raise ValueError(
                f"a drain to max_drain_seconds={self.max_drain_seconds} would write "
                f"{cost.history_events} history events (budget {HISTORY_EVENT_BUDGET} of the "
                "25,000 quota): raise poll_interval_seconds / max_poll_interval_seconds / "
                "backoff_rate / fallback_poll_seconds, or lower backoff_after_seconds or "
                "max_drain_seconds"
                + (
                    "; in poll mode each poll may also wait a round for its poll slot "
                    "(drain_end_detection = events has no such rounds)"
                    if not self.ends_drains_on_events
                    else ""
                )
            )
        return self

    @model_validator(mode="after")
    def _grace_periods_end(self) -> DrainerConfig:
        """A grace period as long as the drain ceiling never ends: the ceiling comes first."""
        ceiling = ceiling_seconds(self.max_drain_seconds, self.heartbeat_timeout_seconds)
        why = f"the drain ceiling ({ceiling} s, from max_drain_seconds={self.max_drain_seconds})"
        if self.standalone_task_policy == "stop" and self.standalone_task_grace_seconds >= ceiling:
            raise ValueError(
                f"standalone_task_grace_seconds={self.standalone_task_grace_seconds} is not "
                f"shorter than {why}: the grace would never end, so standalone_task_policy = "
                f'"stop" would never apply; lower standalone_task_grace_seconds below {ceiling} '
                "or raise max_drain_seconds"
            )
        if self.daemon_task_grace_seconds >= ceiling:
            raise ValueError(
                f"daemon_task_grace_seconds={self.daemon_task_grace_seconds} is not shorter than "
                f"{why}: a drain left with daemon tasks would always end at the ceiling; lower "
                f"daemon_task_grace_seconds below {ceiling} or raise max_drain_seconds"
            )
        return self

    @model_validator(mode="after")
    def _fits_lambda_environment(self) -> DrainerConfig:
        size = self.lambda_environment_bytes
        if size > LAMBDA_ENVIRONMENT_LIMIT_BYTES:
            names = [*self.cluster_names, *self.auto_scaling_group_names]
            raise ValueError(
                f"these settings need {size} bytes of Lambda environment variables, but Lambda "
                f"allows 4 KB ({LAMBDA_ENVIRONMENT_LIMIT_BYTES} bytes) per function (measured "
                "with the longest table name and topic ARN CloudFormation can give): "
                f"cluster_names and auto_scaling_group_names ({len(names)} names, "
                f"{sum(map(len, names))} characters) take the most; shorten them by "
                f"{size - LAMBDA_ENVIRONMENT_LIMIT_BYTES} characters in all, or split the "
                "clusters and groups over two stacks, each with its own stack_name"
            )
        return self

    def _gap_fits(self, heartbeat_timeout_seconds: int) -> bool:
        gaps = heartbeat_gaps(
            self.poll_schedule,
            heartbeat_timeout_seconds,
            self.straggler_stop_wait_seconds,
            self.rescue_grace_seconds,
            self.awaited_wait_seconds,
        )
        return max(gaps.values()) < heartbeat_budget_seconds(heartbeat_timeout_seconds)

    def _heartbeats_on_time(self) -> None:
        """Refuse a schedule whose longest heartbeat gap leaves less than the margin for Lambda
        time and Retry back-off before the hook's heartbeat timeout (drainer/schedule.py)."""
        timeout = self.heartbeat_timeout_seconds
        if self._gap_fits(timeout):
            return
        gaps = heartbeat_gaps(
            self.poll_schedule,
            timeout,
            self.straggler_stop_wait_seconds,
            self.rescue_grace_seconds,
            self.awaited_wait_seconds,
        )
        budget = heartbeat_budget_seconds(timeout)
        # The gaps grow by a third of the timeout, the budget by all of it: the first fit is
        # found by bisection.
        low, high = timeout, HEARTBEAT_TIMEOUT_LIMIT
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if self._gap_fits(middle) else (middle + 1, high)
        raise_timeout = (
            f"raise heartbeat_timeout_seconds to ≥ {low}"
            if self._gap_fits(low)
            else "raise heartbeat_timeout_seconds"
        )
        kept = (
            f"plus {HEARTBEAT_MARGIN_SECONDS} s kept for Lambda time and Retry back-off must stay "
            f"below heartbeat_timeout_seconds={timeout}"
        )
        if gaps["poll loop"] >= budget:
            raise ValueError(
                f"heartbeat_timeout_seconds={timeout} is too short: a heartbeat falls due every "
                f"{heartbeat_interval_seconds(timeout)} s (a third of it), and the longest gap "
                f"the poll loop allows ({gaps['poll loop']:.0f} s) {kept}: {raise_timeout}"
            )
        longest = max(0, math.ceil(budget - gaps["poll loop"]) - 1)
        raise ValueError(
            f"straggler_stop_wait_seconds={self.straggler_stop_wait_seconds} is too long: a "
            f"ceiling reached as a heartbeat falls due ({gaps['poll loop']:.0f} s after the "
            f"last one), then this wait, makes a {gaps['ceiling']:.0f} s gap, which {kept}: "
            f"lower straggler_stop_wait_seconds to ≤ {longest} or {raise_timeout}"
        )

    @property
    def notifies_drain_started(self) -> bool:
        """The functions that set a drain going publish its started notice to the topic."""
        return STARTED in self.notify_outcomes

    @property
    def ends_drains_on_events(self) -> bool:
        """The task-stopped rule, its function's grants and the watch's (stacks/functions.py)."""
        return self.drain_end_detection == EVENTS

    @property
    def awaited_wait_seconds(self) -> int:
        """The longest wait events may end (0: poll mode, no such wait)."""
        return self.fallback_poll_seconds if self.ends_drains_on_events else 0

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
        # Every runtime setting but the two deploy-time names (drainer/settings.py).
        keys = [key for key in fields(Settings) if key.name not in DEPLOYED]
        values = {key.name: getattr(self, key.name) for key in keys}
        values.update(claims_table=claims_table, outcome_topic_arn=outcome_topic_arn)
        return json.dumps(values, separators=(",", ":"), sort_keys=True)

    def lambda_environment(self, claims_table: str, outcome_topic_arn: str) -> dict[str, str]:
        """Every Lambda's environment variables."""
        return {SETTINGS_VARIABLE: self.lambda_settings(claims_table, outcome_topic_arn)}

    @property
    def lambda_environment_bytes(self) -> int:
        """The environment's size as Lambda measures it, at the longest values deploy can give."""
        return environment_bytes(self.lambda_environment(LONGEST_TABLE_NAME, LONGEST_TOPIC_ARN))


def environment_bytes(variables: dict[str, str]) -> int:
    return len(json.dumps(variables, separators=(",", ":")).encode())


def load_config(path: Path | str | None = None) -> DrainerConfig:
    """Read and validate the configuration file; raise ConfigError with a readable message."""
    path = Path(path) if path else DEFAULT_CONFIG_FILE
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found. Copy drainer.toml and edit it.") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    layout = layout_problems(raw, DrainerConfig.model_fields)
    table = raw.get(TABLE)
    return _checked(table if isinstance(table, dict) else {}, str(path), layout)


def validate(values: dict[str, Any], origin: str = "configuration") -> DrainerConfig:
    return _checked(values, origin, [])


def _checked(values: dict[str, Any], origin: str, problems: list[str]) -> DrainerConfig:
    """The validated configuration, or ConfigError naming every problem at once."""
    problems = list(problems)
    try:
        config = DrainerConfig(**values)
    except ValidationError as error:
        problems += explain(error, DrainerConfig.model_fields)
    if problems:
        lines = [f"{origin}: invalid configuration ({len(problems)} problem(s)):"]
        lines += [f"  - {problem}" for problem in problems]
        raise ConfigError("\n".join(lines))
    return config


def check_context(lookup: Callable[[str], Any]) -> None:
    """Refuse settings given as CDK context (`cdk deploy -c dry_run=true`).

    The configuration file is the one source: `-c` values arrive as untyped strings, leave no
    trace in the repository, and a later deploy without them would silently undo them.
    """
    given = {name: lookup(name) for name in (TABLE, *DrainerConfig.model_fields)}
    problems = [
        f"  - -c {name}={value}: settings are not read from CDK context; write "
        f"{name} = … below [{TABLE}] in drainer.toml (or in your copy, deployed with "
        "-c config=FILE)"
        for name, value in given.items()
        if value is not None
    ]
    if problems:
        header = f"CDK context: refused ({len(problems)} problem(s)):"
        raise ConfigError("\n".join([header, *problems]))
