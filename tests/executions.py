"""Reading what a drain execution did, as a user would: the states it entered, the JSON lines
its functions logged, and the status-change event EventBridge sends when it ends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sandbox.harness import Harness


def names_of_states(history: list[dict]) -> list[str]:
    return [
        event["stateEnteredEventDetails"]["name"]
        for event in history
        if "stateEnteredEventDetails" in event
    ]


def log_lines(text: str) -> Iterator[dict[str, Any]]:
    """The structured (JSON object) lines of captured output; anything else is skipped."""
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


def status_change(harness: Harness, arn: str) -> dict:
    """The "Step Functions Execution Status Change" event EventBridge sends the rescue rule
    (https://docs.aws.amazon.com/step-functions/latest/dg/eventbridge-integration.html:
    startDate and stopDate in milliseconds since the epoch)."""
    described = harness.sfn.describe_execution(executionArn=arn)
    stopped = described.get("stopDate")
    return {
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": {
            "executionArn": arn,
            "stateMachineArn": harness.state_machine_arn,
            "status": described["status"],
            "startDate": int(described["startDate"].timestamp() * 1000),
            "stopDate": int(stopped.timestamp() * 1000) if stopped else None,
            "input": described["input"],
        },
    }
