"""Lambda: stop tasks that draining does not stop: standalone tasks after their grace period,
or every task left when the ceiling is reached (straggler policy)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from drainer import log
from drainer.clock import parse_iso, utcnow
from drainer.ecs import InstanceGone
from drainer.request import DrainRequest
from drainer.schedule import grace_wait
from drainer.settings import Settings, settings
from drainer.tasks import alive_before, snapshot, stop_tasks

if TYPE_CHECKING:  # type hints only: no cold start compiles these
    from drainer.state import Progress, Target

STANDALONE = "standalone"
STRAGGLERS = "stragglers"


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> Progress:
    request = DrainRequest.from_state(event["request"])
    return stop(request, event["target"], event["progress"], event["scope"], settings(), utcnow())


def stop(
    request: DrainRequest,
    target: Target,
    current: Progress,
    scope: str,
    config: Settings,
    now: datetime,
) -> Progress:
    if scope == STRAGGLERS and config.straggler_policy == "leave-running":
        log.warning(
            "ceiling reached; tasks left running per straggler_policy", tasks=current["tasks"]
        )
        return {**current, "nextWaitSeconds": 0}
    try:
        tasks, _, _ = snapshot(
            dict(target),
            set(current["daemonServices"]),
            set(current["knownServices"]),
            alive_before(dict(current)),
        )
    except InstanceGone:
        return {**current, "nextWaitSeconds": 0}
    if scope == STANDALONE:
        victims, reason = tasks.standalone, "ecs-drainer: standalone task grace period over"
    else:
        victims = tasks.service + tasks.daemon + tasks.standalone
        reason = "ecs-drainer: drain ceiling reached"
    stopped = stop_tasks(target["cluster"], victims, reason, request.dry_run)
    wait = current["nextWaitSeconds"]
    if scope == STRAGGLERS and stopped:
        # No heartbeat comes before the completion: the grace fits in the heartbeat budget.
        wait = grace_wait(
            config.straggler_stop_wait_seconds,
            since_heartbeat=(now - parse_iso(current["lastHeartbeatAt"])).total_seconds(),
            heartbeat_timeout_seconds=config.heartbeat_timeout_seconds,
        )
    return {
        **current,
        "tasksStopped": current["tasksStopped"] + len(stopped),
        "nextWaitSeconds": wait,
    }
