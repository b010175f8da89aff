"""The events ECS sends to EventBridge, shaped as the ECS developer guide prints them.

- "ECS Task State Change", one per change of a task's `version` (the guide: "Each time a
  resource changes state, this version is incremented … Duplicate events have the same
  version"), https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_task_events.html
  Samples: tests/fixtures/aws-sample-events/ecs-task-state-change*.json.
- "ECS Container Instance State Change", one per change of a container instance's `version`,
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_container_instance_events.html

The `detail` of each resembles what DescribeTasks / DescribeContainerInstances return, with ISO
strings for timestamps (the task events page says so of `createdAt`, `startedAt`, `updatedAt`).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from simulated_aws.ecs.resources import (
    RUNNING,
    SLOT_CPU,
    SLOT_MEMORY,
    STOPPED,
    VERSION_INFO,
    ContainerInstance,
    Task,
    resources,
)

if TYPE_CHECKING:
    from simulated_aws.world import World

TASK_STATE_CHANGE = "ECS Task State Change"
INSTANCE_STATE_CHANGE = "ECS Container Instance State Change"
SOURCE = "aws.ecs"


def iso(when: datetime) -> str:
    """`2016-12-06T16:41:06.975Z`: milliseconds, as the samples write them."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def task_state_change(world: World, task: Task) -> dict[str, Any]:
    """The task's event as of now: an EC2 task of one container named after its family."""
    container_status = task.last_status if task.last_status in (RUNNING, STOPPED) else None
    container: dict[str, Any] = {
        "containerArn": _container_arn(world, task),
        # A container is PENDING, RUNNING or STOPPED; it keeps RUNNING while its task is
        # DEACTIVATING or STOPPING (the agent stops it last).
        "lastStatus": container_status or ("PENDING" if task.started_at is None else RUNNING),
        "name": task.family,
        "taskArn": task.arn,
    }
    if task.last_status == STOPPED and not task.killed:
        container["exitCode"] = 0  # a vanished host reports no exit code
    detail: dict[str, Any] = {
        "availabilityZone": f"{world.region}a",
        "clusterArn": task.cluster.arn,
        "containerInstanceArn": task.instance.arn,
        "containers": [container],
        "cpu": str(SLOT_CPU),
        "memory": str(SLOT_MEMORY),
        "createdAt": iso(task.created_at),
        "desiredStatus": task.desired_status,
        "group": task.group,
        "lastStatus": task.last_status,
        "launchType": "EC2",
        "overrides": {"containerOverrides": [{"name": task.family}]},
        "updatedAt": iso(world.clock.now()),
        "taskArn": task.arn,
        "taskDefinitionArn": f"arn:aws:ecs:{world.region}:{world.account}:"
        f"task-definition/{task.family}:1",
        "version": task.version,
    }
    optional = {
        "startedBy": task.started_by,
        "startedAt": task.started_at and iso(task.started_at),
        "stoppingAt": task.stopping_at and iso(task.stopping_at),
        "stoppedAt": task.stopped_at and iso(task.stopped_at),
        "executionStoppedAt": task.stopped_at and iso(task.stopped_at),
        "stopCode": task.stop_code,
        "stoppedReason": task.stopped_reason,
    }
    detail.update({key: value for key, value in optional.items() if value is not None})
    return detail


def container_instance_state_change(world: World, ci: ContainerInstance) -> dict[str, Any]:
    """The container instance's event as of now (the sample's fields, plus the task counts
    that DescribeContainerInstances returns: tasks told to stop are in neither)."""
    return {
        "agentConnected": ci.agent_connected,
        "attributes": [],
        "clusterArn": ci.cluster.arn,
        "containerInstanceArn": ci.arn,
        "ec2InstanceId": ci.ec2_instance_id,
        "pendingTasksCount": ci.pending_tasks_count,
        "registeredResources": resources(ci.max_tasks),
        "remainingResources": resources(ci.max_tasks - ci.replica_load),
        "runningTasksCount": ci.running_tasks_count,
        "status": ci.status,
        "version": ci.version,
        "versionInfo": VERSION_INFO,
        "updatedAt": iso(world.clock.now()),
    }


def _container_arn(world: World, task: Task) -> str:
    # Derived from the task id, so that the world's random ids stay as they were.
    digest = hashlib.md5(task.id.encode(), usedforsecurity=False).hexdigest()
    uid = f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
    return f"arn:aws:ecs:{world.region}:{world.account}:container/{uid}"
