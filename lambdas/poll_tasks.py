"""Lambda: count the tasks still alive on the instance and say what the loop does next."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from drainer import log, progress
from drainer.aws import Throttled
from drainer.clock import utcnow
from drainer.ecs import InstanceGone, alive_before, snapshot
from drainer.request import DrainRequest
from drainer.services import classifier
from drainer.settings import Settings, settings
from drainer.state import Progress, Target


@log.per_invocation
def handler(event: dict[str, Any], _context: Any) -> Progress:
    request = DrainRequest.from_state(event["request"])
    return poll(request, event["target"], event["progress"], settings(), utcnow())


def poll(
    request: DrainRequest, target: Target, current: Progress, config: Settings, now: datetime
) -> Progress:
    try:
        tasks, daemons, known = snapshot(
            dict(target),
            set(current["daemonServices"]),
            set(current["knownServices"]),
            alive_before(dict(current)),
            classifier(config.claims_table, now),
        )
        current = {**current, "daemonServices": sorted(daemons), "knownServices": sorted(known)}
        if current.get("tasksAtStart") is None:  # located by a list, without counts
            current["tasksAtStart"] = tasks.alive
    except InstanceGone as gone:
        log.warning("container instance gone", detail=str(gone))
        tasks = None
    except Throttled as throttled:
        log.warning("poll throttled; polling again later", detail=str(throttled))
        return progress.after_throttling(request, current, config, now, random.random())
    result = progress.decide(request, current, tasks, config, now)
    log.info(
        "polled",
        verdict=result["verdict"],
        ending=result["ending"],
        tasks=result["tasks"],
        nextWaitSeconds=result["nextWaitSeconds"],
    )
    return result
