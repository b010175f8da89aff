"""ECS reads and writes of one container instance: find it, set it DRAINING.

Source for the semantics: ECS API reference and developer guide, "Container instance draining"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/container-instance-draining.html).
Every call goes through drainer.aws.call so that throttling
reaches the state machine's jittered Retry. The tasks on the instance: drainer/tasks.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from drainer import log
from drainer.aws import call, error_code

# The instance or its cluster no longer exists: during Terminating:Wait an instance can drop out
# of ECS (aws-cdk issue 6867). Treated as "gone", never as a reason to keep the action open.
GONE_CODES = frozenset({"ClusterNotFoundException", "InvalidParameterException"})


class InstanceGone(Exception):
    """The container instance or its cluster is gone from ECS."""


def locate(instance_id: str, clusters: Iterable[str]) -> dict[str, Any] | None:
    """Find the container instance of an EC2 instance across the configured clusters.

    One ListContainerInstances per cluster with `status` ACTIVE and the ec2InstanceId filter
    answers both questions a drain asks, where the instance is and whether DRAINING may be set
    (only from ACTIVE), in one call: the usual case. Only an instance that is not ACTIVE
    (already draining, registering) or in no cluster costs today's list and describe. A
    cluster-wide inventory cached between drains was not chosen: it is stale exactly when
    instances come and go, during a refresh, and would still need a call to learn the status.
    """
    clusters = list(clusters)
    for cluster in clusters:
        arns = _list_container_instances(cluster, instance_id, status="ACTIVE")
        if arns:
            # No counts from a list: the first snapshot records tasksAtStart (drainer/progress.py).
            return {
                "cluster": cluster,
                "containerInstanceArn": arns[0],
                "status": "ACTIVE",
                "runningTasksCount": None,
                "pendingTasksCount": None,
            }
    for cluster in clusters:
        arns = _list_container_instances(cluster, instance_id, status=None)
        for described in describe_container_instances(cluster, arns):
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


def _list_container_instances(cluster: str, instance_id: str, status: str | None) -> list[str]:
    params: dict[str, Any] = {"cluster": cluster, "filter": f"ec2InstanceId == {instance_id}"}
    if status:
        params["status"] = status
    try:
        return list(call("ecs", "list_container_instances", **params)["containerInstanceArns"])
    except ClientError as error:
        if error_code(error) == "ClusterNotFoundException":
            log.warning("configured cluster not found; skipped", cluster=cluster)
            return []
        raise


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
    # What ECS counted on the instance as it set DRAINING: tasks desired RUNNING
    # (runningTasksCount, ContainerInstance in the ECS API reference,
    # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerInstance.html),
    # plus pendingTasksCount, an upper bound whichever way it is read. A first listing that
    # finds as many has seen every task the drain must wait for (see snapshot).
    counted = [
        instance.get("runningTasksCount", 0) + instance.get("pendingTasksCount", 0)
        for instance in answer.get("containerInstances", [])
        if instance.get("containerInstanceArn") == target["containerInstanceArn"]
    ]
    return {
        "changed": True,
        "previousStatus": status,
        "tasksCounted": counted[0] if counted else None,
    }


def _ids(target: dict[str, Any]) -> dict[str, Any]:
    return {
        "cluster": target.get("cluster"),
        "containerInstanceArn": target.get("containerInstanceArn"),
    }
