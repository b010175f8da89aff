"""Lambda: complete the lifecycle action with CONTINUE so the termination goes ahead.

Also the rescue path's first step: it then receives the whole document and, when the failure
came before the request was resolved, reads the execution's input again, so even such a drain
ends with its action completed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drainer import log, outcome
from drainer.clock import utcnow
from drainer.lifecycle_action import complete_if_ours, left_to
from drainer.request import DrainRequest
from drainer.settings import Settings, settings

if TYPE_CHECKING:  # type hints only: no cold start compiles these
    from drainer.state import Claim, Completion


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> Completion:
    config = settings()
    if "state" in event:  # the rescue path
        from drainer.parsers import request_of  # the rescue path only: no drain compiles it

        document = event["state"]
        request = request_of(
            document, event.get("executionInput"), config.test_event_source, utcnow()
        )
        claim = (document.get("progress") or {}).get("claim") or {}
    else:
        request = DrainRequest.from_state(event["request"])
        claim = event["progress"]["claim"]
    return complete(request, claim, config, event.get("executionArn"))


def complete(
    request: DrainRequest,
    claim: Claim | dict[str, Any],
    config: Settings,
    execution_arn: str | None,
) -> Completion:
    if claim.get("duplicate"):
        # Only a rescue gets here with a duplicate: the owning execution is draining and
        # completes the action; completing it now would cut that drain's tasks short.
        log.info("duplicate: the owning execution completes the action", owner=claim.get("owner"))
        return {**left_to(claim.get("owner")), "ending": None}
    completion = complete_if_ours(
        request, config.auto_scaling_group_names, config.lifecycle_hook_name, execution_arn
    )
    return {
        "completed": completion["completed"],
        "alreadyEnded": completion["alreadyEnded"],
        "result": completion["result"],
        "leftTo": None,
        "ending": outcome.after_completion(request, completion),
    }
