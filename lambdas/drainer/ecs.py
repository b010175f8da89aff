"""ECS reads and writes for one container instance.

Source for the semantics: ECS API reference and developer guide, "Container instance draining"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/container-instance-draining.html).
Every call goes through drainer.aws.call so that throttling
reaches the state machine's jittered Retry.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from drainer import log
from drainer.aws import call, error_code

DESCRIBE_TASKS_MAX = 100  # DescribeTasks takes at most 100 tasks
DESCRIBE_SERVICES_MAX = 10  # DescribeServices takes at most 10 services
# The instance or its cluster no longer exists: during Terminating:Wait an instance can drop out
# of ECS (aws-cdk issue 6867). Treated as "gone", never as a reason to keep the action open.
GONE_CODES = frozenset({"ClusterNotFoundException", "InvalidParameterException"})


class InstanceGone(Exception):
    """The container instance or its cluster is gone from ECS."""


def locate(instance_id: str, clusters: Iterable[str]) -> dict[str, Any] | None:
    """Find the container instance of an EC2 instance across the configured clusters."""
    for cluster in clusters:
        try:
            listed = call(
                "ecs",
                "list_container_instances",
                cluster=cluster,
                filter=f"ec2InstanceId == {instance_id}",
            )
        except ClientError as error:
            if error_code(error) == "ClusterNotFoundException":
                log.warning("configured cluster not found; skipped", cluster=cluster)
                continue
            raise
        for described in describe_container_instances(cluster, listed["containerInstanceArns"]):
            # The filter is a query language AWS evaluates; check the answer anyway.
            if described.get("ec2InstanceId") == instance_id:
                return {
                    "cluster": cluster,
                    "containerInstanceArn": described["containerInstanceArn"],
                    "status": described.get("status"),
                    "runningTasksCount": described.get("runningTasksCount", 0),
                    "pendingTasksCount": described.get("pendingTasksCount", 0),
                }
    return None


def describe_container_instances(cluster: str, arns: list[str]) -> list[dict[str, Any]]:
    if not arns:
        return []
    answer = call("ecs", "describe_container_instances", cluster=cluster, containerInstances=arns)
    return list(answer.get("containerInstances", []))


def set_draining(target: dict[str, Any], dry_run: bool) -> dict[str, Any]:
    """Set DRAINING unless the instance already drains; ECS accepts DRAINING only from ACTIVE."""
    status = target.get("status")
    if status != "ACTIVE":
        log.info("not set to DRAINING", reason=f"status is {status}", **_ids(target))
        return {"changed": False, "previousStatus": status}
    if dry_run:
        log.info("DRY RUN: would set DRAINING", **_ids(target))
        return {"changed": False, "previousStatus": status, "dryRun": True}
    answer = call(
        "ecs",
        "update_container_instances_state",
        cluster=target["cluster"],
        containerInstances=[target["containerInstanceArn"]],
        status="DRAINING",
    )
    failures = answer.get("failures", [])
    if failures:
        reason = failures[0].get("reason", "unknown")
        if reason == "MISSING":
            raise InstanceGone(f"container instance missing: {target['containerInstanceArn']}")
        log.warning("ECS refused DRAINING", reason=reason, **_ids(target))
        return {"changed": False, "previousStatus": status, "failure": reason}
    log.info("set DRAINING", **_ids(target))
    return {"changed": True, "previousStatus": status}


@dataclass
class TaskSnapshot:
    """The tasks still alive on one instance, by what draining does to them."""

    service: list[str] = field(default_factory=list)  # replica service tasks, desired RUNNING
    daemon: list[str] = field(default_factory=list)  # daemon service tasks, desired RUNNING
    standalone: list[str] = field(default_factory=list)  # RunTask tasks, desired RUNNING
    stopping: list[str] = field(default_factory=list)  # told to stop, not STOPPED yet

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


def snapshot(
    target: dict[str, Any], daemon_services: set[str], known_services: set[str]
) -> tuple[TaskSnapshot, set[str], set[str]]:
    """Every task on the instance that has not reached STOPPED.

    `runningTasksCount` alone is wrong: a task being stopped (load-balancer deregistration,
    DEACTIVATING, STOPPING) is not counted although it still serves requests (aws-cdk #13506).
    So both desired states are listed and each task's lastStatus is read.
    Returns the snapshot and the updated daemon / known service-name sets (cached in the state).
    """
    cluster, instance = target["cluster"], target["containerInstanceArn"]
    try:
        arns = [
            *_list_tasks(cluster, instance, "RUNNING"),
            *_list_tasks(cluster, instance, "STOPPED"),
        ]
        tasks = [
            task
            for batch in _chunks(arns, DESCRIBE_TASKS_MAX)
            for task in call("ecs", "describe_tasks", cluster=cluster, tasks=batch)["tasks"]
        ]
    except ClientError as error:
        if error_code(error) in GONE_CODES:
            raise InstanceGone(f"{error_code(error)}: {error}") from error
        raise
    alive = [task for task in tasks if task.get("lastStatus") != "STOPPED"]
    unknown = {_service_name(task) for task in alive} - known_services - {None}
    if unknown:
        daemon_services = daemon_services | _daemon_services(cluster, sorted(unknown))
        known_services = known_services | unknown
    result = TaskSnapshot()
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


def _daemon_services(cluster: str, names: list[str]) -> set[str]:
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


def _ids(target: dict[str, Any]) -> dict[str, Any]:
    return {
        "cluster": target.get("cluster"),
        "containerInstanceArn": target.get("containerInstanceArn"),
    }
