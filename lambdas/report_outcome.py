"""Lambda: publish the drain's outcome: metrics (embedded metric format), SNS, claim release."""

from __future__ import annotations

from typing import Any

from drainer import log
from drainer.clock import utcnow
from drainer.reporting import report
from drainer.settings import settings


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    state = event["state"]
    return {**state, "outcome": report(state, event.get("executionArn"), settings(), utcnow())}
