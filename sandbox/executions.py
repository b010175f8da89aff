"""A drain execution as a user sees it through the Step Functions API.

Only list_executions, describe_execution and get_execution_history: what `aws stepfunctions`
shows in AWS, read here from the local endpoint by the demo's view and the server's log lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from drainer.parsers import lifecycle, rebalance, spot

KINDS = {
    lifecycle.DETAIL_TYPE: "lifecycle",
    spot.DETAIL_TYPE: "spot",
    rebalance.DETAIL_TYPE: "rebalance",
}
RECENT_EVENTS = 25  # history events read for the current state of a running execution


@dataclass(frozen=True)
class DrainView:
    arn: str
    name: str
    status: str
    kind: str
    instance: str
    state: str  # the state it is in, or its last one
    started: datetime
    latest: datetime  # its last history event (virtual time)
    tasks_left: int | None
    heartbeats: int
    outcome: str | None

    @property
    def elapsed(self) -> timedelta:
        return self.latest - self.started


def list_executions(sfn: Any, state_machine_arn: str) -> list[dict[str, Any]]:
    """Oldest first."""
    items: list[dict[str, Any]] = []
    token = None
    while True:
        page = sfn.list_executions(
            stateMachineArn=state_machine_arn,
            maxResults=100,
            **({"nextToken": token} if token else {}),
        )
        items.extend(page["executions"])
        token = page.get("nextToken")
        if not token:
            return sorted(items, key=lambda item: item["startDate"])


def read(sfn: Any, arn: str) -> DrainView:
    described = sfn.describe_execution(executionArn=arn)
    event = _json(described.get("input")) or {}
    detail = event.get("detail") or {}
    history = sfn.get_execution_history(
        executionArn=arn, reverseOrder=True, maxResults=RECENT_EVENTS
    )["events"]
    # Newest first, whether or not the endpoint honours reverseOrder (moto does not).
    recent = sorted(history, key=lambda item: item["id"], reverse=True)[:RECENT_EVENTS]
    state = next(
        (e["stateEnteredEventDetails"]["name"] for e in recent if "stateEnteredEventDetails" in e),
        "",
    )
    latest_state = _latest_state(recent, described)
    progress = latest_state.get("progress") or {}
    outcome = latest_state.get("outcome") if isinstance(latest_state.get("outcome"), dict) else {}
    tasks = progress.get("tasks") or {}
    return DrainView(
        arn=arn,
        name=described["name"],
        status=described["status"],
        kind=KINDS.get(event.get("detail-type", ""), event.get("detail-type", "?")),
        instance=detail.get("EC2InstanceId") or detail.get("instance-id") or "?",
        state=state,
        started=described["startDate"],
        latest=described.get("stopDate")
        or (recent[0]["timestamp"] if recent else described["startDate"]),
        tasks_left=outcome.get("tasksLeft", tasks.get("alive")),
        heartbeats=int(outcome.get("heartbeats", progress.get("heartbeats")) or 0),
        outcome=outcome.get("outcome"),
    )


def _latest_state(recent: list[dict[str, Any]], described: dict[str, Any]) -> dict[str, Any]:
    """The drain's state document as of the newest history event that carries one."""
    output = _json(described.get("output"))
    if isinstance(output, dict):
        return output
    for event in recent:
        for key, field in (
            ("stateExitedEventDetails", "output"),
            ("stateEnteredEventDetails", "input"),
        ):
            document = _json((event.get(key) or {}).get(field))
            if isinstance(document, dict) and ("progress" in document or "request" in document):
                return document
    return {}


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def duration(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    return (
        f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"
    )
