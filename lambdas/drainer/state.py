"""The shape of the state document an execution carries, and who writes each part.

Each Task of the state machine (statemachine/build.py) passes its Lambda only the parts it
needs and places the Lambda's answer at one path with ResultPath: a Lambda returns its own part
and nothing else. Resolve is the exception: it builds the first document from the raw event;
so is start_drain, which returns the whole document (it finds a lifecycle drain's target, and
may change its route).
Step Functions cannot place a Lambda's whole answer at a path (ResultSelector builds an object
key by key), so the builder lists each part's keys from the shapes below: every key of a part
that a Task places is always present in the Lambda's answer.

| Part          | Written by                                                              |
|---------------|-------------------------------------------------------------------------|
| `request`     | resolve                                                                 |
| `target`      | resolve; for a lifecycle drain start_drain (after its start slot)       |
| `progress`    | resolve (first), start_drain, poll_tasks, record_heartbeat, stop_tasks  |
| `completion`  | complete_action                                                         |
| `replacement` | replace_instance                                                        |
| `outcome`     | report_outcome                                                          |
| `wake`        | Step Functions: what ended an event-woken wait (drainer/watch.py's      |
|               | answer, or the callback's timeout), read by nobody but the history      |
| `error`       | Step Functions (a step's Catch), read by the rescue path                |
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class Request(TypedDict):
    """DrainRequest.to_state(): every key always present (None where it does not apply)."""

    kind: str
    instanceId: str | None
    reason: str
    eventId: str | None
    eventTime: str
    source: str | None
    detailType: str | None
    deadline: str | None
    autoScalingGroupName: str | None
    lifecycleHookName: str | None
    lifecycleActionToken: str | None
    origin: str | None
    destination: str | None
    spotAction: str | None
    route: str
    problem: str | None
    dryRun: bool
    otherTerminateHooks: list[str] | None


class Target(TypedDict):
    """The container instance Resolve found (None in the document when it found none)."""

    cluster: str
    containerInstanceArn: str
    status: str | None
    # None when ListContainerInstances found it ACTIVE (drainer/ecs.py locate): no counts then
    runningTasksCount: int | None
    pendingTasksCount: int | None


class Parked(TypedDict):
    key: str
    interruptionAt: str
    until: str


class Claim(TypedDict):
    """One drain per event (drainer/claims.py). Key and owner are None when nothing was claimed."""

    duplicate: bool
    key: str | None
    owner: str | None
    parked: NotRequired[Parked]  # a Spot stop/hibernate interruption (drainer/parking.py)


class DrainStarted(TypedDict):
    """What UpdateContainerInstancesState did (drainer/ecs.py set_draining)."""

    changed: bool
    previousStatus: NotRequired[str | None]
    dryRun: NotRequired[bool]
    failure: NotRequired[str]  # ECS refused DRAINING
    gone: NotRequired[str]  # the container instance had left ECS
    tasksCounted: NotRequired[int | None]  # tasks desired RUNNING as ECS set DRAINING
    countedAt: NotRequired[str]  # when (start_drain's clock)


class TaskCounts(TypedDict):
    service: int
    daemon: int
    standalone: int
    stopping: int
    alive: int


class Progress(TypedDict):
    """Where the drain stands. `verdict` is what the loop does next ("Check drain progress"
    branches on it); `ending` is the outcome word, recorded by the step that decides it."""

    # resolve
    startedAt: str
    rescueWaitSeconds: int  # read by "Rescue: was the instance draining?"
    tasksAtStart: int | None
    claim: Claim  # resolve claims lifecycle and rebalance drains; start_drain Spot drains
    # every writer
    verdict: str  # drainer/progress.py VERDICTS
    ending: str | None  # drainer/outcome.py OUTCOMES; None while the drain goes on
    # start_drain
    drain: DrainStarted | None
    # resolve: when a lifecycle drain's start slot comes (drainer/pacing.py; to the
    # millisecond); None for other drains. Before it, start_drain makes no ECS call and
    # record_heartbeat keeps the action alive.
    startSlotAt: str | None
    # poll_tasks, poll mode: the slot a lifecycle drain's next poll reserved and waits for
    # (drainer/pacing.py); None once used, and in events mode.
    pollSlotAt: str | None
    # poll_tasks (the wait also: stop_tasks)
    polls: int
    nextWaitSeconds: int
    pollIntervalSeconds: int | None  # the back-off's own interval
    tasks: TaskCounts | None
    # ARNs of the tasks the last poll found alive: what the next poll describes and what the
    # event-woken wait arms with (drainer/tasks.py, drainer/watch.py)
    aliveTasks: list[str]
    # the first snapshot listed at least tasksCounted tasks desired RUNNING: it saw them all,
    # so no later poll lists again (drainer/tasks.py snapshot)
    listedAll: bool
    # Of those, the ones an event-woken wait waits for: all but daemon tasks, which ECS stops
    # last (drainer/progress.py AWAIT)
    awaitedTasks: list[str]
    workloadDrainedAt: str | None
    daemonServices: list[str]
    knownServices: list[str]
    tasksCutShort: int
    throttledPolls: int
    # record_heartbeat
    heartbeats: int
    lastHeartbeatAt: str
    # stop_tasks
    tasksStopped: int


class Completion(TypedDict):
    completed: bool
    alreadyEnded: bool  # the action had ended elsewhere
    result: str | None
    leftTo: str | None  # a rescue left the action to the execution owning the drain
    ending: str | None  # set when the completion decides the outcome (already ended)


class Replacement(TypedDict):
    replaced: bool
    problem: str | None
    ending: str


class Outcome(TypedDict):
    """The summary published to SNS (drainer/outcome.py summarise)."""

    outcome: str
    meaning: str
    instanceId: str | None
    kind: str | None
    reason: str | None
    autoScalingGroupName: str | None
    cluster: str | None
    durationSeconds: int
    polls: int
    heartbeats: int
    tasksAtStart: int | None
    tasksLeft: int | None
    tasksStopped: int
    tasksCutShort: int
    actionCompleted: bool
    actionAlreadyEnded: bool
    actionLeftTo: str | None
    dryRun: bool
    problem: str | None
    error: dict[str, Any] | None
    executionArn: str | None
    otherTerminateHooks: list[str]


def keys(shape: type) -> tuple[str, ...]:
    """A part's keys, in declaration order (what the state machine's ResultSelector lists)."""
    return tuple(shape.__annotations__)


class StateDocument(TypedDict):
    request: Request
    target: Target | None
    progress: Progress
    completion: NotRequired[Completion]
    replacement: NotRequired[Replacement]
    outcome: NotRequired[Outcome]
    wake: NotRequired[dict[str, Any]]
    error: NotRequired[dict[str, Any]]
    rescueError: NotRequired[dict[str, Any]]
    reportError: NotRequired[dict[str, Any]]
