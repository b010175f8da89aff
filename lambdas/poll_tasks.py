"""Lambda: count the tasks still alive on the instance and say what the loop does next."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from drainer import log, progress
from drainer.aws import Throttled
from drainer.clock import utcnow
from drainer.ecs import InstanceGone, snapshot
from drainer.request import DrainRequest
from drainer.settings import Settings, settings


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    state = event["state"]
    return {**state, "progress": poll(state, settings(), utcnow(), event.get("executionArn"))}


def poll(
    state: dict[str, Any], config: Settings, now: datetime, execution_arn: str | None = None
) -> dict[str, Any]:
    request = DrainRequest.from_state(state["request"])
    current = state["progress"]
    try:
        tasks, daemons, known = snapshot(
            state["target"], set(current["daemonServices"]), set(current["knownServices"])
        )
        current = {**current, "daemonServices": sorted(daemons), "knownServices": sorted(known)}
    except InstanceGone as gone:
        log.warning("container instance gone", detail=str(gone), instanceId=request.instance_id)
        tasks = None
    except Throttled as throttled:
        log.warning(
            "poll throttled; polling again later",
            detail=str(throttled),
            instanceId=request.instance_id,
            executionArn=execution_arn,
        )
        return progress.after_throttling(request, current, config, now, random.random())
    result = progress.decide(request, current, tasks, config, now)
    log.info(
        "polled",
        executionArn=execution_arn,
        instanceId=request.instance_id,
        verdict=result["verdict"],
        tasks=result["tasks"],
        nextWaitSeconds=result["nextWaitSeconds"],
    )
    return result
