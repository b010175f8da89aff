"""Lambda: the ECS events of the configured clusters that a draining instance's watch records
(drainer/watch.py), one parser per event kind:

- "ECS Task State Change", lastStatus STOPPED: the rule invokes it for every task that stops
  there, draining or not. It records the stop in the container instance's watch item: one
  DynamoDB write, which fails its condition when the instance is not draining, and then nothing
  else happens. When the stop is the last the drain's armed wait waits for, it sends the wait's
  task token back (SendTaskSuccess) and the drain polls at once. Events without a container
  instance (Fargate tasks) are ignored before any call.
- "ECS Container Instance State Change", status DRAINING: the moment ECS set DRAINING, by its
  own clock (`updatedAt`); one conditional write, nothing else.

A refusal saying the execution moved on is logged and ignored; anything else raises, so Lambda
retries and then keeps the event in the dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from drainer import log, watch
from drainer.clock import parse_iso, utcnow
from drainer.settings import settings

IGNORED = "ignored"


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    return wake(event, lambda: settings().claims_table, utcnow())


def wake(event: dict[str, Any], table: Callable[[], str], now: datetime) -> dict[str, Any]:
    """`table`: the claims table's name, asked for only when the event is worth a call."""
    kind, detail = event.get("detail-type"), event.get("detail")
    parse = PARSERS.get(kind) if isinstance(kind, str) and isinstance(detail, dict) else None
    return parse(detail, table, now) if parse else {"result": IGNORED}


def _task_stopped(
    detail: dict[str, Any], table: Callable[[], str], now: datetime
) -> dict[str, Any]:
    instance, task = detail.get("containerInstanceArn"), detail.get("taskArn")
    if not (_named(instance) and _named(task)) or detail.get("lastStatus") != "STOPPED":
        return {"result": IGNORED}
    stopped_at = detail.get("stoppedAt") if isinstance(detail.get("stoppedAt"), str) else None
    return {"result": watch.record_stop(table(), instance, task, now, stopped_at)}


def _instance_draining(
    detail: dict[str, Any], table: Callable[[], str], _now: datetime
) -> dict[str, Any]:
    instance, updated_at = detail.get("containerInstanceArn"), detail.get("updatedAt")
    if not _named(instance) or detail.get("status") != "DRAINING":
        return {"result": IGNORED}
    try:
        moment = parse_iso(updated_at) if isinstance(updated_at, str) else None
    except ValueError:
        moment = None
    if moment is None:
        # Nothing to record: the first poll counts by the clock, as without the event.
        log.warning("DRAINING event without a readable updatedAt; ignored", updatedAt=updated_at)
        return {"result": IGNORED}
    return {"result": watch.record_draining(table(), instance, moment)}


def _named(arn: Any) -> bool:
    """An ARN the watch can be keyed by; anything else is not an event ECS sent."""
    return isinstance(arn, str) and arn != ""


PARSERS = {watch.TASK_STATE_CHANGE: _task_stopped, watch.INSTANCE_STATE_CHANGE: _instance_draining}
