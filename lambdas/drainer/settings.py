"""Runtime settings, read once from the DRAINER_SETTINGS environment variable.

The stack serialises the validated configuration (stacks/config.py) into that variable, so the
Lambdas never re-validate it and never import pydantic.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache

from drainer import schedule

# The dispatch function's one value beyond the settings: the state machine it starts. Its own
# variable, as the state machine's ARN cannot be in settings the state machine's functions hold.
STATE_MACHINE_VARIABLE = "DRAINER_STATE_MACHINE_ARN"
# drain_end_detection: task events end a drain's waits (drainer/watch.py), or timers alone do.
EVENTS, POLL = "events", "poll"


@dataclass(frozen=True)
class Settings:
    """The validated configuration (stacks/config.py); its docstring spares dataclass() the
    signature it would render into one on every cold start."""

    cluster_names: tuple[str, ...]
    auto_scaling_group_names: tuple[str, ...]
    lifecycle_hook_name: str
    heartbeat_timeout_seconds: int
    max_drain_seconds: int
    poll_interval_seconds: int
    max_poll_interval_seconds: int
    backoff_after_seconds: int
    backoff_rate: float
    spot_poll_interval_seconds: int
    drain_start_rate_per_second: float
    poll_rate_per_second: float  # poll mode: ECS calls per second of all polls (poll slots)
    rebalance_policy: str
    standalone_task_policy: str
    standalone_task_grace_seconds: int
    daemon_task_grace_seconds: int
    straggler_policy: str
    straggler_stop_wait_seconds: int
    rescue_grace_seconds: int
    dry_run: bool
    test_event_source: str | None
    claims_table: str
    outcome_topic_arn: str
    metrics_namespace: str
    notify_outcomes: tuple[str, ...]
    drain_end_detection: str  # EVENTS or POLL
    fallback_poll_seconds: int

    @property
    def heartbeat_interval_seconds(self) -> int:
        return schedule.heartbeat_interval_seconds(self.heartbeat_timeout_seconds)

    @property
    def rescue_wait_seconds(self) -> int:
        """The rescue grace, capped so the hook's heartbeat timeout cannot run out during it."""
        return schedule.rescue_wait_seconds(
            self.rescue_grace_seconds, self.heartbeat_timeout_seconds
        )

    @classmethod
    def from_json(cls, text: str) -> Settings:
        raw = json.loads(text)
        for key in ("cluster_names", "auto_scaling_group_names", "notify_outcomes"):
            raw[key] = tuple(raw[key])
        return cls(**raw)


@cache
def settings() -> Settings:
    try:
        text = os.environ["DRAINER_SETTINGS"]
    except KeyError:
        raise RuntimeError(
            "DRAINER_SETTINGS is not set: deploy the function with the stack (stacks/), "
            "which writes it from drainer.toml"
        ) from None
    return Settings.from_json(text)
