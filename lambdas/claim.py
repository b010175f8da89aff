"""Lambda: claim a Spot drain (after DRAINING) so that a duplicate warning ends as a duplicate.

For a `stop` or `hibernate` interruption the instance is also noted as parked, so that it is set
ACTIVE again when it comes back (drainer/parking.py, lambdas/reactivate_instance.py).
Lifecycle and rebalance drains are claimed by Resolve (lambdas/resolve.py).
"""

from __future__ import annotations

from typing import Any

from drainer import log
from drainer.claims import claim
from drainer.clock import utcnow
from drainer.parking import park, should_park
from drainer.reporting import drain_started
from drainer.request import DrainRequest
from drainer.settings import settings


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    state = event["state"]
    request = DrainRequest.from_state(state["request"])
    table, execution_arn = settings().claims_table, event["executionArn"]
    claimed = claim(table, request, execution_arn, utcnow())
    drain = (state.get("progress") or {}).get("drain")
    if not claimed["duplicate"] and should_park(request, drain):
        claimed["parked"] = park(table, request, state["target"], execution_arn)
    if not claimed["duplicate"]:  # the Spot drain's start, after DRAINING (start_drain.py)
        drain_started(state, execution_arn, settings(), utcnow())
    return {**state, "claim": claimed}
