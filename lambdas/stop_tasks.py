"""Lambda: stop tasks that draining does not stop: standalone tasks after their grace period,
or every task left when the ceiling is reached (straggler policy)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from drainer import ecs, log
from drainer.clock import parse_iso, utcnow
from drainer.ecs import InstanceGone
from drainer.schedule import grace_wait
from drainer.settings import Settings, settings

STANDALONE = "standalone"
STRAGGLERS = "stragglers"


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    state = event["state"]
    return {**state, "progress": stop(state, event["scope"], settings(), utcnow())}


def stop(state: dict[str, Any], scope: str, config: Settings, now: datetime) -> dict[str, Any]:
    current = state["progress"]
    target = state["target"]
    dry_run = state["request"]["dryRun"]
    if scope == STRAGGLERS and config.straggler_policy == "leave-running":
        log.warning(
            "ceiling reached; tasks left running per straggler_policy",
            tasks=current.get("tasks"),
            instanceId=state["request"]["instanceId"],
        )
        return {**current, "nextWaitSeconds": 0}
    try:
        tasks, _, _ = ecs.snapshot(
            target, set(current["daemonServices"]), set(current["knownServices"])
        )
    except InstanceGone:
        return {**current, "nextWaitSeconds": 0}
    if scope == STANDALONE:
        victims, reason = tasks.standalone, "ecs-drainer: standalone task grace period over"
    else:
        victims = tasks.service + tasks.daemon + tasks.standalone
        reason = "ecs-drainer: drain ceiling reached"
    stopped = ecs.stop_tasks(target["cluster"], victims, reason, dry_run)
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
