"""ECS reads and writes of the tasks on one container instance: what is still alive, and
stopping them.

Source for the semantics: ECS API reference and developer guide, "Container instance draining"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/container-instance-draining.html).
Every call goes through drainer.aws.call so that throttling reaches the state machine's jittered
Retry. Split from drainer/ecs.py so that the functions that only find and drain the instance
(resolve, start_drain) do not compile this on a cold start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from drainer import log
from drainer.aws import call, error_code
from drainer.ecs import GONE_CODES, InstanceGone

DESCRIBE_TASKS_MAX = 100  # DescribeTasks takes at most 100 tasks
DESCRIBE_SERVICES_MAX = 10  # DescribeServices takes at most 10 services


@dataclass
class TaskSnapshot:
    """The tasks still alive on one instance, by what draining does to them."""

    service: list[str] = field(default_factory=list)  # replica service tasks, desired RUNNING
    daemon: list[str] = field(default_factory=list)  # daemon service tasks, desired RUNNING
    standalone: list[str] = field(default_factory=list)  # RunTask tasks, desired RUNNING
    stopping: list[str] = field(default_factory=list)  # told to stop, not STOPPED yet
    listed_running: int | None = None  # a first snapshot's count of tasks listed desired RUNNING

    @property
    def alive(self) -> int:
        return len(self.service) + len(self.daemon) + len(self.standalone) + len(self.stopping)

    def arns(self) -> list[str]:
        return sorted([*self.service, *self.daemon, *self.standalone, *self.stopping])

    def counts(self) -> dict[str, int]:
        return {
            "service": len(self.service),
            "daemon": len(self.daemon),
            "standalone": len(self.standalone),
            "stopping": len(self.stopping),
            "alive": self.alive,
        }


# What tells daemon services from the others (drainer/services.py caches the answers per
# cluster); given the cluster and the names it has not seen, it returns the daemon ones.
Classifier = Callable[[str, list[str]], set[str]]


def snapshot(
    target: dict[str, Any],
    daemon_services: set[str],
    known_services: set[str],
    alive_before: list[str] | None = None,
    classify: Classifier | None = None,
    listed_all: bool = False,
    counted_at: datetime | None = None,
) -> tuple[TaskSnapshot, set[str], set[str]]:
    """Every task on the instance that has not reached STOPPED.

    `runningTasksCount` alone is wrong: a task being stopped (load-balancer deregistration,
    DEACTIVATING, STOPPING) is not counted although it still serves requests (aws-cdk #13506).
    So the first snapshot (`alive_before` None) lists both desired states and reads each task's
    lastStatus. Later ones describe only the tasks the last one found alive: a DRAINING instance
    gets no new tasks ("Amazon ECS prevents new tasks from being scheduled for placement on the
    container instance", container-instance-draining.html above), and a task never goes back
    from STOPPED. Once all of those are STOPPED, one ListTasks (desiredStatus RUNNING, the tasks
    ECS still wants running: ListTasks in the ECS API reference,
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListTasks.html) confirms
    nothing new came before the drain may end; a task told to stop was already alive before.
    That one is skipped when `listed_all`: the first listing found at least the tasks ECS
    counted as it set DRAINING (at `counted_at`), so it missed none; the first snapshot's
    `listed_running` counts those it found: desired RUNNING now, or told to stop since then.
    Returns the snapshot and the updated daemon / known service-name sets (cached in the state).
    """
    cluster, instance = target["cluster"], target["containerInstanceArn"]
    try:
        listed_running = None
        if alive_before is None:
            running = list(_list_tasks(cluster, instance, "RUNNING"))
            described = _described(cluster, [*running, *_list_tasks(cluster, instance, "STOPPED")])
            alive = [task for task in described if task.get("lastStatus") != "STOPPED"]
            listed_running = sum(1 for task in described if _counted(task, counted_at))
        else:
            alive = _alive(cluster, alive_before)
            if not alive and not listed_all:
                described = set(alive_before)
                new = [a for a in _list_tasks(cluster, instance, "RUNNING") if a not in described]
                alive = _alive(cluster, new)
    except ClientError as error:
        if error_code(error) in GONE_CODES:
            raise InstanceGone(f"{error_code(error)}: {error}") from error
        raise
    unknown = {_service_name(task) for task in alive} - known_services - {None}
    if unknown:
        lookup = classify or describe_daemon_services
        daemon_services = daemon_services | lookup(cluster, sorted(unknown))
        known_services = known_services | unknown
    result = TaskSnapshot(listed_running=listed_running)
    for task in alive:
        arn = task["taskArn"]
        service = _service_name(task)
        if task.get("desiredStatus") == "STOPPED":
            result.stopping.append(arn)
        elif service is None:
            result.standalone.append(arn)
        elif service in daemon_services:
            result.daemon.append(arn)
        else:
            result.service.append(arn)
    return result, daemon_services, known_services


def _alive(cluster: str, arns: list[str]) -> list[dict[str, Any]]:
    """The tasks among `arns` not STOPPED. A task ECS no longer knows (a failure MISSING:
    stopped long ago) is not alive."""
    return [task for task in _described(cluster, arns) if task.get("lastStatus") != "STOPPED"]


def _described(cluster: str, arns: list[str]) -> list[dict[str, Any]]:
    """DescribeTasks, in batches of DESCRIBE_TASKS_MAX."""
    return [
        task
        for batch in _chunks(arns, DESCRIBE_TASKS_MAX)
        for task in call("ecs", "describe_tasks", cluster=cluster, tasks=batch)["tasks"]
    ]


def _counted(task: dict[str, Any], counted_at: datetime | None) -> bool:
    """Whether ECS counted the task as it set DRAINING: desired RUNNING then, i.e. still, or
    told to stop (stoppingAt) since."""
    if task.get("desiredStatus") == "RUNNING":
        return True
    stopping = task.get("stoppingAt")
    return counted_at is not None and isinstance(stopping, datetime) and stopping >= counted_at


def stop_tasks(cluster: str, task_arns: list[str], reason: str, dry_run: bool) -> list[str]:
    """StopTask each task (SIGTERM, then SIGKILL after the task's stopTimeout)."""
    stopped = []
    for arn in task_arns:
        if dry_run:
            log.info("DRY RUN: would stop task", taskArn=arn, reason=reason)
            continue
        try:
            call("ecs", "stop_task", cluster=cluster, task=arn, reason=reason[:255])
        except ClientError as error:
            if error_code(error) in GONE_CODES:
                continue  # already gone with its instance
            raise
        stopped.append(arn)
    log.info("stopped tasks", count=len(stopped), reason=reason, cluster=cluster)
    return stopped


def _list_tasks(cluster: str, instance: str, desired: str) -> Iterator[str]:
    params: dict[str, Any] = {
        "cluster": cluster,
        "containerInstance": instance,
        "desiredStatus": desired,
    }
    while True:
        answer = call("ecs", "list_tasks", **params)
        yield from answer.get("taskArns", [])
        if not answer.get("nextToken"):
            return
        params["nextToken"] = answer["nextToken"]


def describe_daemon_services(cluster: str, names: list[str]) -> set[str]:
    """DescribeServices: which of these services are daemon services."""
    daemons = set()
    for batch in _chunks(names, DESCRIBE_SERVICES_MAX):
        for service in call("ecs", "describe_services", cluster=cluster, services=batch)[
            "services"
        ]:
            if service.get("schedulingStrategy") == "DAEMON":
                daemons.add(service["serviceName"])
    return daemons


def _service_name(task: dict[str, Any]) -> str | None:
    # Service tasks carry group "service:<name>"; RunTask tasks "family:<name>" or a custom group.
    group = task.get("group") or ""
    return group.removeprefix("service:") if group.startswith("service:") else None


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def alive_before(progress: dict[str, Any]) -> list[str] | None:
    """What the next snapshot describes: the tasks the last one found alive; None before the
    first snapshot (and for executions whose state predates aliveTasks), which lists them."""
    if progress.get("tasks") is None or "aliveTasks" not in progress:
        return None
    return list(progress["aliveTasks"])


def expected_calls(progress: dict[str, Any]) -> int:
    """The ECS calls the next snapshot of this drain is expected to make (its poll slots,
    drainer/pacing.py): the first lists both desired states and describes what ECS counted as
    it set DRAINING; a later one describes the tasks alive at the last, and lists once more
    unless the first listing saw them all (the confirming listing: counted whenever it may be
    made: whether it will depends on the answer, and counting it always keeps the drainer
    under its rate, at the price of a slot unused in a poll that finds tasks still alive).
    Further pages of a listing and the daemon-service lookup are not counted: rare, and within
    the buckets' burst."""
    before = alive_before(progress)
    if before is None:
        counted = progress.get("tasksAtStart") or 0
        return 2 + max(1, -(-counted // DESCRIBE_TASKS_MAX))
    describes = -(-len(before) // DESCRIBE_TASKS_MAX)
    return max(1, describes + (0 if progress.get("listedAll") else 1))
