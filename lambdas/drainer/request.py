"""The one drain request every event kind is turned into.

Every key is always present (None where it does not apply): the state machine's Choice rules and
JSONPaths can rely on the shape whatever the event was.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

LIFECYCLE = "lifecycle"
SPOT = "spot"
REBALANCE = "rebalance"
INVALID = "invalid"

# Routes the state machine branches on ("Route by event kind").
ROUTE_LIFECYCLE = "drain-lifecycle"
ROUTE_SPOT = "drain-spot"
ROUTE_REBALANCE_DRAIN = "drain-rebalance"
ROUTE_REBALANCE_REPLACE = "replace"
ROUTE_COMPLETE_ONLY = "complete-only"  # a lifecycle action to close, nothing to drain
ROUTE_IGNORE = "ignore"  # a rebalance recommendation the configured policy ignores
ROUTE_FINISH = "finish"  # nothing to do: not ours, or an unusable event
# Nothing to do either, for a reason the outcome names ("Route by event kind": otherwise).
ROUTE_ALREADY_ENDED = "already-ended"  # the lifecycle action named has ended: redelivered, late
ROUTE_TEST_EVENT_REFUSED = "test-event-refused"  # a test event for an instance not opted in


class EventError(ValueError):
    """An event the drainer cannot act on. The message names the field and the fix."""

    def __init__(self, field: str, problem: str, fix: str):
        self.field = field
        super().__init__(f"{field}: {problem}. {fix}")


@dataclass
class DrainRequest:
    """An event, whatever its kind, as the drain sees it (its docstring spares dataclass() the
    signature it would render into one on every cold start)."""

    kind: str
    instance_id: str | None
    reason: str
    event_id: str | None
    event_time: str
    source: str | None
    detail_type: str | None
    deadline: str | None = None
    auto_scaling_group_name: str | None = None
    lifecycle_hook_name: str | None = None
    lifecycle_action_token: str | None = None
    origin: str | None = None
    destination: str | None = None
    spot_action: str | None = None
    route: str = ROUTE_FINISH
    problem: str | None = None
    dry_run: bool = False
    # A lifecycle drain's group's other terminate hooks (drainer/other_hooks.py); None: not known.
    other_terminate_hooks: list[str] | None = None

    @property
    def has_lifecycle_action(self) -> bool:
        """Enough to complete an action: group, hook, and a token or an instance id."""
        return bool(
            self.auto_scaling_group_name
            and self.lifecycle_hook_name
            and (self.lifecycle_action_token or self.instance_id)
        )

    def to_state(self) -> dict[str, Any]:
        return {_camel(key): value for key, value in asdict(self).items()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DrainRequest:
        known = {_camel(name): name for name in cls.__dataclass_fields__}
        return cls(**{known[key]: value for key, value in state.items() if key in known})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
