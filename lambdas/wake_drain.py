"""Lambda: one "ECS Task State Change" event (lastStatus STOPPED) of a configured cluster.

The rule invokes it for every task that stops there, draining or not. It records the stop in the
container instance's watch item (drainer/watch.py): one DynamoDB write, which fails its
condition when the instance is not draining, and then nothing else happens. When the stop is the
last the drain's armed wait waits for, it sends the wait's task token back (SendTaskSuccess) and
the drain polls at once. A refusal saying the execution moved on is logged and ignored; anything
else raises, so Lambda retries and then keeps the event in the dead-letter queue. Events without
a container instance (Fargate tasks) are ignored before any call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from drainer import log, watch
from drainer.clock import utcnow
from drainer.settings import settings

IGNORED = "ignored"


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    return wake(event, lambda: settings().claims_table, utcnow())


def wake(event: dict[str, Any], table: Any, now: datetime) -> dict[str, Any]:
    """`table`: the claims table's name, asked for only when the event is worth a call."""
    detail = event.get("detail") or {}
    instance, task = detail.get("containerInstanceArn"), detail.get("taskArn")
    if not instance or not task or detail.get("lastStatus") != "STOPPED":
        return {"result": IGNORED}
    stopped_at = detail.get("stoppedAt")
    return {"result": watch.record_stop(table(), instance, task, now, stopped_at)}
