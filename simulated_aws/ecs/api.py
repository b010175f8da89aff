"""The ECS API's wire format over the model: requests parsed and checked, answers shaped as
botocore's ecs output shapes (botocore/data/ecs/2014-11-13/service-2.json). Only the calls the
drainer, the sandbox, the benchmark or the tests make are simulated; any other is answered as
not implemented.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from dateutil.tz import tzutc

from simulated_aws.ecs.model import EcsModel
from simulated_aws.ecs.resources import (
    ACTIVE,
    DRAINING,
    INACTIVE,
    PENDING,
    RUNNING,
    VERSION_INFO,
    Cluster,
    ContainerInstance,
    Service,
    Task,
    resources,
)
from simulated_aws.faults import ApiError, not_implemented

MAX_DESCRIBE = 100  # DescribeContainerInstances / DescribeTasks: "up to 100" (API reference)
MAX_UPDATE_STATE = 10  # UpdateContainerInstancesState: "up to 10" (API reference)
MAX_DESCRIBE_SERVICES = 10  # DescribeServices: "up to 10" (API reference)


def _ts(when: datetime | None) -> datetime | None:
    # botocore parses ECS timestamps into aware datetimes in tzutc.
    return None if when is None else when.astimezone(tzutc())


def _short(identifier: str) -> str:
    """Name or id from a name/id or a full ARN (`…:cluster/name`, `…/cluster/id`)."""
    return identifier.rsplit("/", 1)[-1] if identifier.startswith("arn:") else identifier


class EcsApi:
    """The ECS calls answered from `model`, one `api_<Operation>` method each."""

    def __init__(self, model: EcsModel) -> None:
        self.model = model

    def dispatch(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        handler: Callable[[dict[str, Any]], dict[str, Any]] | None = getattr(
            self, f"api_{operation}", None
        )
        if handler is None:
            raise not_implemented("ecs", operation)
        self.model.throttle.check(operation)
        return handler(params)

    def _api_cluster(self, params: dict[str, Any]) -> Cluster:
        cluster = self.model.clusters.get(_short(params.get("cluster") or "default"))
        if cluster is None or cluster.status != ACTIVE:
            raise ApiError("ClusterNotFoundException", "Cluster not found.")
        return cluster

    def _find_instance(self, cluster: Cluster, ref: str) -> ContainerInstance | None:
        wanted = _short(ref)
        for ci in cluster.instances:
            if ci.id == wanted or ci.arn == ref:
                return ci
        return None

    def _find_task(self, cluster: Cluster, ref: str) -> Task | None:
        wanted = _short(ref)
        for task in cluster.tasks:
            if task.id == wanted or task.arn == ref:
                return task
        return None

    def api_ListContainerInstances(self, params: dict[str, Any]) -> dict[str, Any]:
        cluster = self._api_cluster(params)
        # "If you don't specify [status] … all states other than INACTIVE" (API reference).
        instances = [ci for ci in cluster.instances if ci.status != INACTIVE]
        status = params.get("status")
        if status:
            instances = [ci for ci in instances if ci.status == status]
        expression = params.get("filter")
        if expression:
            predicate = _parse_filter(expression)
            instances = [ci for ci in instances if predicate(ci)]
        page, token = _paginate(instances, params, "nextToken", "maxResults", 100)
        return _with_token({"containerInstanceArns": [ci.arn for ci in page]}, "nextToken", token)

    def api_DescribeContainerInstances(self, params: dict[str, Any]) -> dict[str, Any]:
        cluster = self._api_cluster(params)
        refs = params.get("containerInstances") or []
        if not refs:
            raise ApiError("InvalidParameterException", "Container instances cannot be empty.")
        if len(refs) > MAX_DESCRIBE:
            # Limit from the API reference; the message wording is the world's own.
            raise ApiError(
                "InvalidParameterException",
                f"containerInstances can have at most {MAX_DESCRIBE} items.",
            )
        found: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for ref in refs:
            ci = self._find_instance(cluster, ref)
            if ci is None:
                failures.append(self._missing("container-instance", cluster, ref))
            else:
                found.append(self._describe_instance(ci))
        return {"containerInstances": found, "failures": failures}

    def _missing(self, kind: str, cluster: Cluster, ref: str) -> dict[str, str]:
        """The failure a Describe/Update call lists for `ref`, named by its ARN."""
        arn = ref if ref.startswith("arn:") else self.model.arn(f"{kind}/{cluster.name}/{ref}")
        return {"arn": arn, "reason": "MISSING"}

    def _describe_instance(self, ci: ContainerInstance) -> dict[str, Any]:
        return {
            "containerInstanceArn": ci.arn,
            "ec2InstanceId": ci.ec2_instance_id,
            "version": ci.version,
            "versionInfo": dict(VERSION_INFO),
            "remainingResources": resources(ci.max_tasks - ci.replica_load),
            "registeredResources": resources(ci.max_tasks),
            "status": ci.status,
            "agentConnected": ci.agent_connected,
            "runningTasksCount": ci.running_tasks_count,
            "pendingTasksCount": ci.pending_tasks_count,
            "attributes": [{"name": "ecs.instance-type", "value": "m5.large"}],
            "registeredAt": _ts(ci.registered_at),
            "attachments": [],
            "tags": [],
        }

    def api_UpdateContainerInstancesState(self, params: dict[str, Any]) -> dict[str, Any]:
        cluster = self._api_cluster(params)
        refs = params.get("containerInstances") or []
        status = params.get("status")
        if len(refs) > MAX_UPDATE_STATE:
            # Limit from the API reference; the message wording is the world's own.
            raise ApiError(
                "InvalidParameterException",
                f"containerInstances can have at most {MAX_UPDATE_STATE} items.",
            )
        if status not in (ACTIVE, DRAINING):
            # "The only valid values for this action are ACTIVE and DRAINING."
            raise ApiError(
                "InvalidParameterException",
                "Container instance status can only be updated to ACTIVE or DRAINING.",
            )
        updated: list[ContainerInstance] = []
        failures: list[dict[str, Any]] = []
        for ref in refs:
            ci = self._find_instance(cluster, ref)
            if ci is None or ci.status == INACTIVE:
                failures.append(self._missing("container-instance", cluster, ref))
                continue
            # DRAINING only from ACTIVE; ACTIVE/DRAINING are the only live states modelled,
            # so repeating DRAINING on a DRAINING instance is a no-op success.
            self.model._set_status(ci, status)
            updated.append(ci)
        self.model.reconcile()
        return {
            "containerInstances": [self._describe_instance(ci) for ci in updated],
            "failures": failures,
        }

    def api_ListTasks(self, params: dict[str, Any]) -> dict[str, Any]:
        cluster = self._api_cluster(params)
        tasks = list(cluster.tasks)
        ref = params.get("containerInstance")
        if ref:
            ci = self._find_instance(cluster, ref)
            if ci is None:
                # Assumption (no AWS text found): an unknown container instance is an
                # InvalidParameterException rather than an empty list.
                raise ApiError(
                    "InvalidParameterException", "The referenced container instance was not found."
                )
            tasks = [t for t in tasks if t.instance is ci]
        desired = params.get("desiredStatus") or RUNNING  # default RUNNING (API reference)
        tasks = [t for t in tasks if t.desired_status == desired]
        service_name = params.get("serviceName")
        if service_name:
            service = cluster.services.get(_short(service_name))
            if service is None:
                raise ApiError("ServiceNotFoundException", "Service not found.")
            tasks = [t for t in tasks if t.service is service]
        if params.get("family"):
            tasks = [t for t in tasks if t.family == params["family"]]
        if params.get("startedBy"):
            tasks = [t for t in tasks if t.started_by == params["startedBy"]]
        if params.get("launchType") not in (None, "EC2"):
            tasks = []
        page, token = _paginate(tasks, params, "nextToken", "maxResults", 100)
        return _with_token({"taskArns": [t.arn for t in page]}, "nextToken", token)

    def api_DescribeTasks(self, params: dict[str, Any]) -> dict[str, Any]:
        cluster = self._api_cluster(params)
        refs = params.get("tasks") or []
        if not refs:
            raise ApiError("InvalidParameterException", "Tasks cannot be empty.")
        if len(refs) > MAX_DESCRIBE:
            raise ApiError(
                "InvalidParameterException", f"tasks can have at most {MAX_DESCRIBE} items."
            )
        found: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for ref in refs:
            task = self._find_task(cluster, ref)
            if task is None:
                failures.append(self._missing("task", cluster, ref))
            else:
                found.append(self._describe_task(task))
        return {"tasks": found, "failures": failures}

    def _describe_task(self, task: Task) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attachments": [],
            "attributes": [],
            "availabilityZone": f"{self.model.world.region}a",
            "clusterArn": task.cluster.arn,
            "containerInstanceArn": task.instance.arn,
            "containers": [],
            "createdAt": _ts(task.created_at),
            "desiredStatus": task.desired_status,
            "group": task.group,
            "lastStatus": task.last_status,
            "launchType": "EC2",
            "taskArn": task.arn,
            "taskDefinitionArn": self.model.arn(f"task-definition/{task.family}:1"),
            "version": task.version,
            "tags": [],
        }
        optional = {
            "startedBy": task.started_by,
            "startedAt": _ts(task.started_at),
            "stoppingAt": _ts(task.stopping_at),
            "stoppedAt": _ts(task.stopped_at),
            "executionStoppedAt": _ts(task.stopped_at),
            "stopCode": task.stop_code,
            "stoppedReason": task.stopped_reason,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out

    def api_DescribeServices(self, params: dict[str, Any]) -> dict[str, Any]:
        cluster = self._api_cluster(params)
        refs = params.get("services") or []
        if len(refs) > MAX_DESCRIBE_SERVICES:
            raise ApiError(
                "InvalidParameterException",
                f"services can have at most {MAX_DESCRIBE_SERVICES} items.",
            )
        found: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for ref in refs:
            service = cluster.services.get(_short(ref))
            if service is None:
                failures.append(self._missing("service", cluster, ref))
            else:
                found.append(self._describe_service(service))
        return {"services": found, "failures": failures}

    def _describe_service(self, service: Service) -> dict[str, Any]:
        wanted = [t for t in service.tasks if t.desired_status == RUNNING]
        running = sum(1 for t in wanted if t.last_status == RUNNING)
        pending = sum(1 for t in wanted if t.last_status == PENDING)
        desired = (
            sum(1 for ci in service.cluster.instances if ci.placeable)
            if service.daemon
            else service.desired
        )
        created = _ts(service.created_at)
        load_balancers = []
        if service.deregistration_delay_seconds > 0:
            load_balancers.append(
                {
                    "targetGroupArn": f"arn:aws:elasticloadbalancing:{self.model.world.region}:"
                    f"{self.model.world.account}:targetgroup/{service.name}/0123456789abcdef",
                    "containerName": service.name,
                    "containerPort": 80,
                }
            )
        task_definition = self.model.arn(f"task-definition/{service.family}:1")
        return {
            "serviceArn": service.arn,
            "serviceName": service.name,
            "clusterArn": service.cluster.arn,
            "loadBalancers": load_balancers,
            "serviceRegistries": [],
            "status": "ACTIVE",
            "desiredCount": desired,
            "runningCount": running,
            "pendingCount": pending,
            "launchType": "EC2",
            "taskDefinition": task_definition,
            "deploymentConfiguration": {
                "deploymentCircuitBreaker": {"enable": False, "rollback": False},
                "maximumPercent": 100 if service.daemon else service.max_percent,
                "minimumHealthyPercent": 0 if service.daemon else service.min_healthy,
            },
            "deployments": [
                {
                    "id": service.deployment_id,
                    "status": "PRIMARY",
                    "taskDefinition": task_definition,
                    "desiredCount": desired,
                    "pendingCount": pending,
                    "runningCount": running,
                    "failedTasks": 0,
                    "createdAt": created,
                    "updatedAt": created,
                    "launchType": "EC2",
                    "rolloutState": "COMPLETED",
                }
            ],
            "events": [{**e, "createdAt": _ts(e["createdAt"])} for e in service.events],
            "createdAt": created,
            "placementConstraints": [],
            "placementStrategy": [],
            "schedulingStrategy": "DAEMON" if service.daemon else "REPLICA",
            "deploymentController": {"type": "ECS"},
            "enableECSManagedTags": False,
            "propagateTags": "NONE",
            "enableExecuteCommand": False,
        }

    def api_StopTask(self, params: dict[str, Any]) -> dict[str, Any]:
        cluster = self._api_cluster(params)
        task = self._find_task(cluster, params.get("task") or "")
        if task is None:
            raise ApiError("InvalidParameterException", "The referenced task was not found.")
        self.model.stop_task(task, "UserInitiated", params.get("reason") or "Task stopped by user")
        return {"task": self._describe_task(task)}


def _paginate(
    items: list[Any], params: dict[str, Any], token_key: str, max_key: str, limit: int
) -> tuple[list[Any], str | None]:
    """Pages ordered by creation; the token is the creation seq of the last item returned,
    so items added or removed between pages do not shift the next page."""
    max_results = params.get(max_key)
    if max_results is None:
        max_results = limit
    if not 1 <= max_results <= limit:
        raise ApiError("InvalidParameterException", f"{max_key} must be between 1 and {limit}.")
    items = sorted(items, key=lambda item: item.seq)
    token = params.get(token_key)
    if token:
        try:
            after = int(base64.b64decode(token).decode().removeprefix("world:"))
        except ValueError as error:
            raise ApiError("InvalidParameterException", "Invalid nextToken.") from error
        items = [item for item in items if item.seq > after]
    page = items[:max_results]
    if len(items) > max_results:
        return page, base64.b64encode(f"world:{page[-1].seq}".encode()).decode()
    return page, None


def _with_token(body: dict[str, Any], key: str, token: str | None) -> dict[str, Any]:
    if token:
        body[key] = token
    return body


_CLAUSE = re.compile(
    r"^\s*(?P<subject>[A-Za-z][\w.:-]*)\s*(?P<op>==|!=|>=|<=|>|<|\bin\b|\bnot_in\b)\s*"
    r"(?P<value>\[[^\]]*\]|\([^)]*\)|\S+)\s*$"
)
_SUBJECTS: dict[str, Callable[[ContainerInstance], Any]] = {
    "ec2InstanceId": lambda ci: ci.ec2_instance_id,
    "agentConnected": lambda ci: str(ci.agent_connected).lower(),
    "runningTasksCount": lambda ci: ci.running_tasks_count,
    "pendingTasksCount": lambda ci: ci.pending_tasks_count,
}


def _parse_filter(expression: str) -> Callable[[ContainerInstance], bool]:
    """A subset of the cluster query language: `subject op value` clauses joined by `and`."""
    clauses: list[Callable[[ContainerInstance], bool]] = []
    for text in re.split(r"\s+and\s+", expression.strip()):
        match = _CLAUSE.match(text)
        subject = match["subject"] if match else None
        if match is None or subject not in _SUBJECTS:
            raise not_implemented("ecs", "ListContainerInstances", f"filter {expression!r}")
        clauses.append(_clause(_SUBJECTS[subject], match["op"], match["value"]))
    return lambda ci: all(clause(ci) for clause in clauses)


def _clause(
    get: Callable[[ContainerInstance], Any], op: str, raw: str
) -> Callable[[ContainerInstance], bool]:
    def literal(text: str) -> Any:
        text = text.strip().strip("'\"")
        return int(text) if text.lstrip("-").isdigit() else text

    if op in ("in", "not_in"):
        values = {literal(v) for v in raw.strip("[]()").split(",") if v.strip()}
        return (lambda ci: get(ci) in values) if op == "in" else (lambda ci: get(ci) not in values)
    value = literal(raw)
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
    }
    return lambda ci: compare[op](get(ci), value)
