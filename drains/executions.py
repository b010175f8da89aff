"""A drain execution as a user sees it through the Step Functions API.

Only list_executions, describe_execution and get_execution_history: what `aws stepfunctions`
shows. Read by the `drains` command, and by the sandbox's view and server log lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from drainer.parsers import lifecycle, rebalance, spot

KINDS = {
    lifecycle.DETAIL_TYPE: "lifecycle",
    spot.DETAIL_TYPE: "spot",
    rebalance.DETAIL_TYPE: "rebalance",
}
RECENT_EVENTS = 25  # history events read for the current state of a running execution
PAGE_SIZE = 1000  # list_executions' largest page


@dataclass(frozen=True)
class DrainView:
    arn: str
    name: str
    status: str
    kind: str
    instance: str
    state: str  # the state it is in, or its last one ("" when its history was not read)
    started: datetime
    latest: datetime  # its stop, or its last history event (virtual time in the sandbox)
    tasks_left: int | None
    heartbeats: int
    outcome: str | None
    tasks_cut_short: int | None = None
    error: str | None = None  # "Error: cause" of a drain that failed

    @property
    def elapsed(self) -> timedelta:
        return self.latest - self.started


@dataclass(frozen=True)
class Listing:
    executions: list[dict[str, Any]]  # list_executions items, oldest first
    now: datetime  # the API's clock (its Date header), which a window is measured on


def list_executions(sfn: Any, state_machine_arn: str) -> list[dict[str, Any]]:
    """Every execution, oldest first."""
    return list_window(sfn, state_machine_arn, since=None).executions


def list_window(sfn: Any, state_machine_arn: str, since: datetime | timedelta | None) -> Listing:
    """The executions started since a moment, or within a duration before the API's now.

    Step Functions lists the newest first, so paging stops at the first page that reaches
    past the window: a day's drains cost one call per thousand, not the whole 90-day history.
    """
    items: list[dict[str, Any]] = []
    token, now, cutoff = None, None, None
    while True:
        page = sfn.list_executions(
            stateMachineArn=state_machine_arn,
            maxResults=PAGE_SIZE,
            **({"nextToken": token} if token else {}),
        )
        if now is None:
            now = api_time(page)
            cutoff = now - since if isinstance(since, timedelta) else since
        fresh = [e for e in page["executions"] if cutoff is None or e["startDate"] >= cutoff]
        items.extend(fresh)
        token = page.get("nextToken")
        if not token or len(fresh) < len(page["executions"]):
            return Listing(sorted(items, key=lambda item: item["startDate"]), now)


def api_time(response: dict[str, Any]) -> datetime:
    """The time the API answered (the sandbox's virtual time); this machine's clock without it."""
    date = (response.get("ResponseMetadata") or {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(date).astimezone(UTC) if date else datetime.now(UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)


def read(sfn: Any, arn: str, state_of_succeeded: bool = True) -> DrainView:
    """One describe_execution, plus its newest history events for the state it is (or ended)
    in. `state_of_succeeded=False` spares a succeeded drain that call: its output holds the
    outcome; a running or failed one always needs it (no output yet, or none at all)."""
    described = sfn.describe_execution(executionArn=arn)
    event = parse_json(described.get("input")) or {}
    recent: list[dict[str, Any]] = []
    if state_of_succeeded or described["status"] != "SUCCEEDED":
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
        kind=kind_of(event),
        instance=instance_of(event),
        state=state,
        started=described["startDate"],
        latest=described.get("stopDate")
        or (recent[0]["timestamp"] if recent else described["startDate"]),
        tasks_left=outcome.get("tasksLeft", tasks.get("alive")),
        heartbeats=int(outcome.get("heartbeats", progress.get("heartbeats")) or 0),
        outcome=outcome.get("outcome"),
        tasks_cut_short=outcome.get("tasksCutShort", progress.get("tasksCutShort")),
        error=_error(latest_state, described),
    )


def kind_of(event: dict[str, Any]) -> str:
    """lifecycle, spot or rebalance, from the raw EventBridge event the execution started with."""
    detail_type = event.get("detail-type", "")
    return KINDS.get(detail_type, detail_type or "?")


def instance_of(event: dict[str, Any]) -> str:
    """The instance a raw event names: `EC2InstanceId` (Auto Scaling), `instance-id` (EC2)."""
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    return str(detail.get("EC2InstanceId") or detail.get("instance-id") or "?")


def _latest_state(recent: list[dict[str, Any]], described: dict[str, Any]) -> dict[str, Any]:
    """The drain's state document as of the newest history event that carries one."""
    output = parse_json(described.get("output"))
    if isinstance(output, dict):
        return output
    for event in recent:
        for key, field in (
            ("stateExitedEventDetails", "output"),
            ("stateEnteredEventDetails", "input"),
        ):
            document = parse_json((event.get(key) or {}).get(field))
            if isinstance(document, dict) and ("progress" in document or "request" in document):
                return document
    return {}


def _error(state: dict[str, Any], described: dict[str, Any]) -> str | None:
    """The error the rescue path recorded, else the execution's own (aborted, timed out)."""
    error = state.get("error") if isinstance(state.get("error"), dict) else {}
    name = error.get("Error") or described.get("error")
    cause = error.get("Cause") or described.get("cause")
    if described["status"] in ("SUCCEEDED", "RUNNING") and not error:
        return None
    return ": ".join(str(part) for part in (name, cause) if part) or None


def parse_json(text: str | None) -> Any:
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
