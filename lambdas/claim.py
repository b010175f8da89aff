"""Lambda: claim a Spot drain (after DRAINING) so that a duplicate warning ends as a duplicate.

Lifecycle and rebalance drains are claimed by Resolve (lambdas/resolve.py).
"""

from __future__ import annotations

from typing import Any

from drainer import log
from drainer.claims import claim
from drainer.clock import utcnow
from drainer.request import DrainRequest
from drainer.settings import settings


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    state = event["state"]
    request = DrainRequest.from_state(state["request"])
    return {
        **state,
        "claim": claim(settings().claims_table, request, event["executionArn"], utcnow()),
    }
