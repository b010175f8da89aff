"""The state machine definition file and what the stack substitutes into it.

The ASL file in statemachine/ is the one definition, written by statemachine/build.py: the
stack, the tests and the sandbox load the file and fill the same `${…}` placeholders.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from statemachine.build import DEFINITION_FILE

PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


@dataclass(frozen=True)
class Function:
    """One Lambda: its placeholder stem in the ASL file, its handler, what it does."""

    name: str
    handler: str
    description: str
    timeout_seconds: int = 60

    @property
    def placeholder(self) -> str:
        return f"{self.name}FunctionArn"


FUNCTIONS: tuple[Function, ...] = (
    Function(
        "Resolve",
        "resolve.handler",
        "Parse an event into a drain request; find the instance; claim a lifecycle/rebalance drain",
    ),
    Function(
        "StartDrain",
        "start_drain.handler",
        "Set the container instance to DRAINING; then claim a Spot drain",
    ),
    Function("PollTasks", "poll_tasks.handler", "Count tasks still alive; decide the next step"),
    Function("RecordHeartbeat", "record_heartbeat.handler", "Record a lifecycle heartbeat"),
    Function("StopTasks", "stop_tasks.handler", "Stop standalone tasks or stragglers"),
    Function("CompleteAction", "complete_action.handler", "Complete the lifecycle action"),
    Function(
        "ReplaceInstance", "replace_instance.handler", "Ask Auto Scaling to replace an instance"
    ),
    Function("ReportOutcome", "report_outcome.handler", "Publish the outcome: metrics, SNS"),
)


def definition_text() -> str:
    return DEFINITION_FILE.read_text()


def placeholders(text: str | None = None) -> set[str]:
    return set(PLACEHOLDER.findall(text if text is not None else definition_text()))


def substitutions(function_arns: dict[str, str]) -> dict[str, str]:
    """Placeholder → value, from function name → ARN."""
    return {function.placeholder: function_arns[function.name] for function in FUNCTIONS}


def render(values: dict[str, str]) -> dict[str, Any]:
    """The definition with every placeholder filled, as Step Functions receives it."""
    text = definition_text()
    missing = placeholders(text) - values.keys()
    if missing:
        raise KeyError(f"no value for placeholders {sorted(missing)} in {DEFINITION_FILE.name}")
    return json.loads(PLACEHOLDER.sub(lambda match: values[match.group(1)], text))


# Not part of the state machine: EventBridge invokes it when a drain execution itself fails.
RESCUE_FUNCTION = Function(
    "RescueExecution",
    "rescue_execution.handler",
    "Complete the lifecycle action of a drain execution that failed, timed out or was aborted",
    # It may wait up to rescue_grace_seconds (at most 300) before completing, as the state
    # machine's rescue path does, then complete and report: 2 minutes to spare.
    timeout_seconds=420,
)

# Not part of the state machine: EventBridge invokes it when a container instance of a configured
# cluster is connected and DRAINING; it sets a Spot instance the drainer parked ACTIVE again.
REACTIVATE_FUNCTION = Function(
    "ReactivateInstance",
    "reactivate_instance.handler",
    "Set a Spot instance drained for a stop/hibernate interruption ACTIVE when it comes back",
)
