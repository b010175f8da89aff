"""Lambda: arm an event-woken wait (the state machine's "Await task stops" callback Task).

Stores the Task's token and the tasks the last poll found alive in the instance's watch item
(drainer/watch.py); the wake function sends the token back when the last of them stops. If they
all stopped between that poll and now, it sends the token back itself at once. Otherwise the
Task ends at its timeout (the fallback poll), like a timer wait.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from drainer import log, watch
from drainer.clock import utcnow
from drainer.settings import settings


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    return await_stops(event, settings().claims_table, utcnow())


def await_stops(event: dict[str, Any], table: str, now: datetime) -> dict[str, Any]:
    awaited = event["progress"]["awaitedTasks"]
    woke = watch.arm(
        table,
        event["target"]["containerInstanceArn"],
        execution_arn=event["executionArn"],
        token=event["taskToken"],
        alive=awaited,
        expires_at=watch.expires_at(event["request"].get("deadline"), now),
        now=now,
    )
    log.info("awaiting task stops", tasks=len(awaited), woke=woke)
    return {"armed": True, "woke": woke}
