"""Lambda: ask Auto Scaling to replace an instance (rebalance policy "replace").

The policy, and what replacing does, are in drainer/rebalance.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drainer import log, rebalance
from drainer.settings import settings

if TYPE_CHECKING:  # type hints only: no cold start compiles these
    from drainer.state import Replacement


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> Replacement:
    request = event["request"]
    return rebalance.replace(request["instanceId"], settings(), request["dryRun"])
