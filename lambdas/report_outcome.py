"""Lambda: publish the drain's outcome: metrics (embedded metric format), SNS, claim release."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drainer import log
from drainer.clock import utcnow
from drainer.reporting import report
from drainer.settings import settings

if TYPE_CHECKING:  # type hints only: no cold start compiles these
    from drainer.state import Outcome


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> Outcome:
    config, now = settings(), utcnow()
    document = event["state"]
    if "executionInput" in event and not isinstance(document.get("request"), dict):
        # The rescue path, after a failure before Resolve: the raw event names the instance.
        from drainer.parsers import request_of  # only here: no drain compiles the parsers

        request = request_of(document, event["executionInput"], config.test_event_source, now)
        document = {**document, "request": request.to_state()}
    return report(document, event.get("executionArn"), config, now)
