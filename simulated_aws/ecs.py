"""ECS on EC2 as the drain orchestrator sees it: clusters, container instances, services, tasks.

Semantics come from the ECS developer guide, "Container instance draining"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/container-instance-draining.html),
and the ECS API reference / developer guide pages cited inline. Answers follow botocore's ecs
output shapes (botocore/data/ecs/2014-11-13/service-2.json).
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dateutil.tz import tzutc

from simulated_aws.clock import Timer
from simulated_aws.faults import ApiError, Throttle, not_implemented

if TYPE_CHECKING:
    from simulated_aws.world import World

ACTIVE, DRAINING, INACTIVE = "ACTIVE", "DRAINING", "INACTIVE"
PENDING, RUNNING, DEACTIVATING, STOPPING, STOPPED = (
    "PENDING",
    "RUNNING",
    "DEACTIVATING",
    "STOPPING",
    "STOPPED",
)
MAX_DESCRIBE = 100  # DescribeContainerInstances / DescribeTasks: "up to 100" (API reference)
MAX_UPDATE_STATE = 10  # UpdateContainerInstancesState: "up to 10" (API reference)
MAX_DESCRIBE_SERVICES = 10  # DescribeServices: "up to 10" (API reference)


def _ts(when: datetime | None) -> datetime | None:
    # botocore parses ECS timestamps into aware datetimes in tzutc.
    return None if when is None else when.astimezone(tzutc())


def _short(identifier: str) -> str:
    """Name or id from a name/id or a full ARN (`…:cluster/name`, `…/cluster/id`)."""
    return identifier.rsplit("/", 1)[-1] if identifier.startswith("arn:") else identifier


@dataclass(eq=False)
class Cluster:
    name: str
    arn: str
    seq: int
    status: str = ACTIVE
    instances: list[ContainerInstance] = field(default_factory=list)
    services: dict[str, Service] = field(default_factory=dict)
    tasks: list[Task] = field(default_factory=list)


@dataclass(eq=False)
class ContainerInstance:
    id: str
    arn: str
    cluster: Cluster
    ec2_instance_id: str
    max_tasks: int
    registered_at: datetime
    seq: int
    status: str = ACTIVE
    agent_connected: bool = True
    version: int = 1
    tasks: list[Task] = field(default_factory=list)

    @property
    def placeable(self) -> bool:
        return self.status == ACTIVE and self.agent_connected

    @property
    def running_tasks_count(self) -> int:
        # API reference: "tasks … that have a desired status (desiredStatus) of RUNNING";
        # a task already told to stop is not counted although it still runs (aws/aws-cdk#13506).
        return sum(
            1 for t in self.tasks if t.desired_status == RUNNING and t.last_status == RUNNING
        )

    @property
    def pending_tasks_count(self) -> int:
        return sum(
            1 for t in self.tasks if t.desired_status == RUNNING and t.last_status == PENDING
        )

    @property
    def replica_load(self) -> int:
        # Capacity model: every live non-daemon task uses one of `max_tasks` slots.
        return sum(1 for t in self.tasks if t.live and not t.is_daemon)


@dataclass(eq=False)
class Service:
    cluster: Cluster
    name: str
    arn: str
    desired: int
    min_healthy: int
    max_percent: int
    start_seconds: float
    stop_seconds: float
    deregistration_delay_seconds: float
    daemon: bool
    deployment_id: str
    created_at: datetime
    tasks: list[Task] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def family(self) -> str:
        return self.name


@dataclass(eq=False)
class Task:
    id: str
    arn: str
    cluster: Cluster
    instance: ContainerInstance
    service: Service | None
    family: str
    group: str
    started_by: str | None
    created_at: datetime
    seq: int
    start_seconds: float
    stop_seconds: float
    deregistration_delay_seconds: float
    runs_for_seconds: float | None = None
    last_status: str = PENDING
    desired_status: str = RUNNING
    started_at: datetime | None = None
    stopping_at: datetime | None = None
    stopped_at: datetime | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    version: int = 1
    killed: bool = False
    timer: Timer | None = None

    @property
    def live(self) -> bool:
        return self.last_status != STOPPED

    @property
    def is_daemon(self) -> bool:
        return self.service is not None and self.service.daemon


class EcsModel:
    """The ECS control plane plus its service scheduler."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.clusters: dict[str, Cluster] = {}
        self.throttle = Throttle(world.clock, "ThrottlingException")
        self.emit_state_change_events = True
        self._seq = 0
        self._reconciling = False
        self._again = False

    # ---- configuration ---------------------------------------------------------------------
    def set_throttle(
        self, rate_per_s: float | None, burst: float = 0, *, per_operation: bool = True
    ) -> None:
        """Token bucket per operation (ECS throttles per action); None switches it off."""
        with self.world.op():
            self.throttle.configure(rate_per_s, burst, per_operation)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _arn(self, resource: str) -> str:
        return f"arn:aws:ecs:{self.world.region}:{self.world.account}:{resource}"

    def _hex_id(self) -> str:
        return f"{self.world.rng.getrandbits(128):032x}"

    # ---- builders (called through World) ---------------------------------------------------
    def add_cluster(self, name: str) -> Cluster:
        if name in self.clusters and self.clusters[name].status == ACTIVE:
            raise ValueError(f"cluster {name} exists")
        cluster = Cluster(name, self._arn(f"cluster/{name}"), self._next_seq())
        self.clusters[name] = cluster
        return cluster

    def register_instance(self, cluster_name: str, ec2_instance_id: str, max_tasks: int) -> str:
        cluster = self._cluster_by_name(cluster_name)
        ci_id = self._hex_id()
        ci = ContainerInstance(
            id=ci_id,
            arn=self._arn(f"container-instance/{cluster.name}/{ci_id}"),
            cluster=cluster,
            ec2_instance_id=ec2_instance_id,
            max_tasks=max_tasks,
            registered_at=self.world.clock.now(),
            seq=self._next_seq(),
        )
        cluster.instances.append(ci)
        self._state_change_event(ci)
        self.reconcile()
        return ci.arn

    def add_service(
        self,
        cluster_name: str,
        name: str,
        desired: int,
        *,
        min_healthy: int,
        max_percent: int,
        start_seconds: float,
        stop_seconds: float,
        deregistration_delay_seconds: float,
        daemon: bool,
    ) -> Service:
        cluster = self._cluster_by_name(cluster_name)
        if name in cluster.services:
            raise ValueError(f"service {name} exists in {cluster_name}")
        service = Service(
            cluster=cluster,
            name=name,
            arn=self._arn(f"service/{cluster.name}/{name}"),
            desired=desired,
            min_healthy=min_healthy,
            max_percent=max_percent,
            start_seconds=start_seconds,
            stop_seconds=stop_seconds,
            deregistration_delay_seconds=deregistration_delay_seconds,
            daemon=daemon,
            # Service tasks carry startedBy = the deployment id, `ecs-svc/<19 digits>`.
            deployment_id=f"ecs-svc/{self.world.rng.randrange(10**18, 10**19)}",
            created_at=self.world.clock.now(),
        )
        # The builder starts from a steady state: initial tasks are RUNNING at once. The
        # scheduler only sees the service once they are all placed.
        if daemon:
            for ci in cluster.instances:
                if ci.placeable:
                    self._start_task(service, ci, immediately=True)
        else:
            for _ in range(desired):
                ci = self._pick_instance(cluster)
                if ci is None:
                    break
                self._start_task(service, ci, immediately=True)
        cluster.services[name] = service
        self.reconcile()
        return service

    def run_task(
        self,
        cluster_name: str,
        ec2_instance_id: str,
        family: str,
        runs_for_seconds: float | None,
        stop_seconds: float,
    ) -> Task:
        cluster = self._cluster_by_name(cluster_name)
        ci = self._instance_by_ec2_id(cluster, ec2_instance_id)
        task = self._new_task(
            cluster,
            ci,
            None,
            family=family,
            group=f"family:{family}",
            started_by=None,
            start_seconds=0,
            stop_seconds=stop_seconds,
            deregistration_delay_seconds=0,
        )
        task.runs_for_seconds = runs_for_seconds
        self._task_running(task)
        return task

    def deregister(self, ec2_instance_id: str) -> None:
        """Drop the container instance out of ListContainerInstances (aws-cdk issue 6867).

        Its tasks stay where they are (orphaned, still running on the host) until the host
        terminates; the service scheduler replaces the service tasks elsewhere.
        """
        with self.world.op():
            for ci in self._instances_for(ec2_instance_id):
                ci.agent_connected = False
                self._set_status(ci, INACTIVE)
            self.reconcile()

    def delete_cluster(self, name: str) -> None:
        """The cluster disappears mid-drain: every later call on it is ClusterNotFound."""
        with self.world.op():
            self._cluster_by_name(name).status = INACTIVE

    def terminate_instance(self, ec2_instance_id: str) -> list[tuple[str, str]]:
        """The EC2 host is gone: kill every task not STOPPED; return (taskArn, lastStatus)."""
        killed: list[tuple[str, str]] = []
        for ci in self._instances_for(ec2_instance_id, include_inactive=True):
            killed += self._kill_tasks(ci, "terminated")
            ci.agent_connected = False
            if ci.status != INACTIVE:
                self._set_status(ci, INACTIVE)
        self.reconcile()
        return killed

    def stop_instance(self, ec2_instance_id: str) -> list[tuple[str, str]]:
        """The EC2 instance stopped (a Spot `stop`/`hibernate` interruption): its tasks die and
        its agent disconnects, but the container instance stays registered with its status —
        a DRAINING instance is still DRAINING when it comes back (ECS developer guide,
        "Amazon ECS container instance state change events": stopping an instance stops its
        tasks; the agent's connection changes `agentConnected`)."""
        killed: list[tuple[str, str]] = []
        for ci in self._instances_for(ec2_instance_id):
            killed += self._kill_tasks(ci, "stopped")
            self._set_agent_connected(ci, False)
        self.reconcile()
        return killed

    def start_instance(self, ec2_instance_id: str) -> None:
        """The stopped EC2 instance runs again: its agent reconnects the same container
        instance, whose status is what it was when the instance stopped."""
        for ci in self._instances_for(ec2_instance_id):
            self._set_agent_connected(ci, True)
        self.reconcile()

    def _kill_tasks(self, ci: ContainerInstance, how: str) -> list[tuple[str, str]]:
        killed: list[tuple[str, str]] = []
        now = self.world.clock.now()
        for task in ci.tasks:
            if not task.live:
                continue
            killed.append((task.arn, task.last_status))
            if task.timer is not None:
                task.timer.cancel()
            task.killed = True
            task.desired_status = STOPPED
            task.last_status = STOPPED
            task.stopping_at = task.stopping_at or now
            task.stopped_at = now
            # stopCode left as it was: AWS's code for a vanished host is not documented.
            task.stopped_reason = f"Host EC2 (instance {ci.ec2_instance_id}) {how}."
            task.version += 1
        return killed

    # ---- lookups ---------------------------------------------------------------------------
    def _cluster_by_name(self, name: str) -> Cluster:
        cluster = self.clusters.get(name)
        if cluster is None or cluster.status != ACTIVE:
            raise ValueError(f"no active cluster {name}")
        return cluster

    def _instance_by_ec2_id(self, cluster: Cluster, ec2_instance_id: str) -> ContainerInstance:
        for ci in cluster.instances:
            if ci.ec2_instance_id == ec2_instance_id and ci.status != INACTIVE:
                return ci
        raise ValueError(f"{ec2_instance_id} is not registered in {cluster.name}")

    def _instances_for(
        self, ec2_instance_id: str, include_inactive: bool = False
    ) -> list[ContainerInstance]:
        return [
            ci
            for cluster in self.clusters.values()
            for ci in cluster.instances
            if ci.ec2_instance_id == ec2_instance_id and (include_inactive or ci.status != INACTIVE)
        ]

    def tasks_on(self, ec2_instance_id: str) -> list[Task]:
        return [
            t
            for ci in self._instances_for(ec2_instance_id, include_inactive=True)
            for t in ci.tasks
        ]

    def container_instance(self, ec2_instance_id: str) -> ContainerInstance | None:
        found = self._instances_for(ec2_instance_id, include_inactive=True)
        return found[-1] if found else None

    # ---- task lifecycle --------------------------------------------------------------------
    def _new_task(
        self,
        cluster: Cluster,
        ci: ContainerInstance,
        service: Service | None,
        *,
        family: str,
        group: str,
        started_by: str | None,
        start_seconds: float,
        stop_seconds: float,
        deregistration_delay_seconds: float,
    ) -> Task:
        task_id = self._hex_id()
        task = Task(
            id=task_id,
            arn=self._arn(f"task/{cluster.name}/{task_id}"),
            cluster=cluster,
            instance=ci,
            service=service,
            family=family,
            group=group,
            started_by=started_by,
            created_at=self.world.clock.now(),
            seq=self._next_seq(),
            start_seconds=start_seconds,
            stop_seconds=stop_seconds,
            deregistration_delay_seconds=deregistration_delay_seconds,
        )
        cluster.tasks.append(task)
        ci.tasks.append(task)
        if service is not None:
            service.tasks.append(task)
        return task

    def _start_task(self, service: Service, ci: ContainerInstance, immediately: bool) -> Task:
        task = self._new_task(
            service.cluster,
            ci,
            service,
            family=service.family,
            group=f"service:{service.name}",
            started_by=service.deployment_id,
            start_seconds=service.start_seconds,
            stop_seconds=service.stop_seconds,
            deregistration_delay_seconds=service.deregistration_delay_seconds,
        )
        if immediately or service.start_seconds <= 0:
            self._task_running(task)
        else:
            # `start_seconds` stands for PENDING → RUNNING and healthy behind the LB.
            task.timer = self.world.call_later(
                service.start_seconds, lambda: self._task_running(task), f"start {task.id}"
            )
        return task

    def _task_running(self, task: Task) -> None:
        task.timer = None
        if task.desired_status != RUNNING or task.last_status != PENDING:
            return
        task.last_status = RUNNING
        task.started_at = self.world.clock.now()
        task.version += 1
        if task.runs_for_seconds is not None:
            task.timer = self.world.call_later(
                task.runs_for_seconds,
                lambda: self.stop_task(
                    task, "EssentialContainerExited", "Essential container exited"
                ),
                f"exit {task.id}",
            )
        self.reconcile()

    def stop_task(self, task: Task, stop_code: str, reason: str) -> None:
        """desiredStatus STOPPED, then DEACTIVATING (LB deregistration) → STOPPING → STOPPED."""
        if task.desired_status == STOPPED:
            return
        now = self.world.clock.now()
        if task.timer is not None:
            task.timer.cancel()
            task.timer = None
        task.desired_status = STOPPED
        task.stop_code = stop_code
        task.stopped_reason = reason
        task.version += 1
        if task.last_status == PENDING:
            # "Service tasks … in the PENDING state are stopped immediately" (draining guide).
            task.last_status = STOPPED
            task.stopping_at = task.stopped_at = now
        else:
            task.stopping_at = now
            # Task lifecycle (ECS developer guide): DEACTIVATING covers the load balancer
            # target deregistration, STOPPING the container stop (SIGTERM … SIGKILL).
            if task.deregistration_delay_seconds > 0:
                task.last_status = DEACTIVATING
                task.timer = self.world.call_later(
                    task.deregistration_delay_seconds,
                    lambda: self._task_stopping(task),
                    f"deregistered {task.id}",
                )
            else:
                self._task_stopping(task, reconcile=False)
        self.reconcile()

    def _task_stopping(self, task: Task, reconcile: bool = True) -> None:
        task.timer = None
        if not task.live:
            return
        task.last_status = STOPPING
        task.version += 1
        if task.stop_seconds > 0:
            task.timer = self.world.call_later(
                task.stop_seconds, lambda: self._task_stopped(task), f"stopped {task.id}"
            )
        else:
            self._task_stopped(task, reconcile=False)
        if reconcile:
            self.reconcile()

    def _task_stopped(self, task: Task, reconcile: bool = True) -> None:
        task.timer = None
        if not task.live:
            return
        task.last_status = STOPPED
        task.stopped_at = self.world.clock.now()
        task.version += 1
        if reconcile:
            self.reconcile()

    # ---- the service scheduler -------------------------------------------------------------
    def reconcile(self) -> None:
        """Re-evaluate every service until stable; called after every change of state.

        A change made while reconciling (stop_task calls back in) only asks for another pass,
        so no pass ever works on lists that a nested pass already changed.
        """
        if self._reconciling:
            self._again = True
            return
        self._reconciling = True
        try:
            for _ in range(1000):
                self._again = False
                for cluster in list(self.clusters.values()):
                    if cluster.status != ACTIVE:
                        continue
                    for service in list(cluster.services.values()):
                        if service.daemon:
                            self._reconcile_daemon(service)
                        else:
                            self._reconcile_replica(service)
                if not self._again:
                    return
            raise RuntimeError("ECS scheduler did not settle after 1000 passes")
        finally:
            self._reconciling = False

    def _pick_instance(self, cluster: Cluster) -> ContainerInstance | None:
        # Spread: the ACTIVE instance with the most free slots, then the oldest.
        candidates = [
            ci for ci in cluster.instances if ci.placeable and ci.replica_load < ci.max_tasks
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda ci: (ci.replica_load - ci.max_tasks, ci.seq))

    def _reconcile_replica(self, service: Service) -> None:
        # UpdateContainerInstancesState (API reference): replacements within
        # minimumHealthyPercent (rounded up) and maximumPercent (rounded down).
        desired = service.desired
        min_healthy = math.ceil(desired * service.min_healthy / 100)
        max_total = math.floor(desired * service.max_percent / 100)
        wanted = [t for t in service.tasks if t.desired_status == RUNNING]
        for task in [t for t in wanted if not t.instance.placeable and t.last_status == PENDING]:
            self.stop_task(task, "ServiceSchedulerInitiated", "Container instance is draining")
        wanted = [t for t in service.tasks if t.desired_status == RUNNING]
        healthy = sum(1 for t in wanted if t.last_status == RUNNING)
        for task in [t for t in wanted if not t.instance.placeable]:
            if task.last_status == RUNNING and healthy - 1 >= min_healthy:
                healthy -= 1
                self.stop_task(task, "ServiceSchedulerInitiated", "Container instance is draining")
        wanted = [t for t in service.tasks if t.desired_status == RUNNING]
        on_active = [t for t in wanted if t.instance.placeable]
        starts = min(desired - len(on_active), max_total - len(wanted))
        for _ in range(max(starts, 0)):
            ci = self._pick_instance(service.cluster)
            if ci is None:
                self._service_event(
                    service,
                    f"(service {service.name}) was unable to place a task because no container "
                    "instance met all of its requirements.",
                )
                break
            self._start_task(service, ci, immediately=False)
        # Too many on ACTIVE instances (e.g. an instance went back to ACTIVE): trim the newest.
        wanted = [t for t in service.tasks if t.desired_status == RUNNING]
        surplus = len(wanted) - desired
        draining_left = any(not t.instance.placeable for t in wanted)
        if surplus > 0 and not draining_left:
            for task in sorted(wanted, key=lambda t: (t.last_status == RUNNING, -t.seq))[:surplus]:
                self.stop_task(task, "ServiceSchedulerInitiated", "Service scale-in")

    def _reconcile_daemon(self, service: Service) -> None:
        for ci in service.cluster.instances:
            mine = [t for t in ci.tasks if t.service is service and t.desired_status == RUNNING]
            if ci.placeable:
                if not mine:
                    self._start_task(service, ci, immediately=False)
                continue
            # Daemon tasks stop last: only once every other task on the instance has STOPPED.
            others = [t for t in ci.tasks if t.live and not t.is_daemon]
            if not others:
                for task in mine:
                    self.stop_task(
                        task, "ServiceSchedulerInitiated", "Container instance is draining"
                    )

    def _service_event(self, service: Service, message: str) -> None:
        if service.events and service.events[0]["message"] == message:
            return
        service.events.insert(
            0,
            {
                "id": f"{self.world.rng.getrandbits(128):032x}",
                "createdAt": _ts(self.world.clock.now()),
                "message": message,
            },
        )
        del service.events[100:]

    # ---- container instance state ----------------------------------------------------------
    def _set_status(self, ci: ContainerInstance, status: str) -> None:
        if ci.status == status:
            return
        ci.status = status
        ci.version += 1
        self._state_change_event(ci)

    def _set_agent_connected(self, ci: ContainerInstance, connected: bool) -> None:
        if ci.agent_connected == connected:
            return
        ci.agent_connected = connected
        ci.version += 1
        self._state_change_event(ci)

    def _state_change_event(self, ci: ContainerInstance) -> None:
        if not self.emit_state_change_events:
            return
        # Shape of aws-sample-events/ecs-container-instance-state-change.json (no task counts).
        now = self.world.clock.now()
        self.world.emit(
            "ECS Container Instance State Change",
            "aws.ecs",
            [ci.arn],
            {
                "agentConnected": ci.agent_connected,
                "attributes": [],
                "clusterArn": ci.cluster.arn,
                "containerInstanceArn": ci.arn,
                "ec2InstanceId": ci.ec2_instance_id,
                "registeredResources": _resources(ci.max_tasks),
                "remainingResources": _resources(ci.max_tasks - ci.replica_load),
                "status": ci.status,
                "version": ci.version,
                "versionInfo": _VERSION_INFO,
                "updatedAt": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            },
        )

    # ---- API -------------------------------------------------------------------------------
    def dispatch(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        handler: Callable[[dict[str, Any]], dict[str, Any]] | None = getattr(
            self, f"api_{operation}", None
        )
        if handler is None:
            raise not_implemented("ecs", operation)
        self.throttle.check(operation)
        return handler(params)

    def _api_cluster(self, params: dict[str, Any]) -> Cluster:
        cluster = self.clusters.get(_short(params.get("cluster") or "default"))
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

    def api_ListClusters(self, params: dict[str, Any]) -> dict[str, Any]:
        clusters = sorted(
            (c for c in self.clusters.values() if c.status == ACTIVE), key=lambda c: c.seq
        )
        page, token = _paginate(clusters, params, "nextToken", "maxResults", 100)
        return _with_token({"clusterArns": [c.arn for c in page]}, "nextToken", token)

    def api_DescribeClusters(self, params: dict[str, Any]) -> dict[str, Any]:
        out: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for ref in params.get("clusters") or ["default"]:
            cluster = self.clusters.get(_short(ref))
            if cluster is None:
                failures.append(
                    {
                        "arn": ref if ref.startswith("arn:") else self._arn(f"cluster/{ref}"),
                        "reason": "MISSING",
                    }
                )
                continue
            listed = [ci for ci in cluster.instances if ci.status != INACTIVE]
            out.append(
                {
                    "clusterArn": cluster.arn,
                    "clusterName": cluster.name,
                    "status": cluster.status,
                    "registeredContainerInstancesCount": len(listed),
                    "runningTasksCount": sum(ci.running_tasks_count for ci in listed),
                    "pendingTasksCount": sum(ci.pending_tasks_count for ci in listed),
                    "activeServicesCount": len(cluster.services),
                    "statistics": [],
                    "tags": [],
                    "settings": [],
                    "capacityProviders": [],
                    "defaultCapacityProviderStrategy": [],
                }
            )
        return {"clusters": out, "failures": failures}

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
                failures.append({"arn": self._ci_arn(cluster, ref), "reason": "MISSING"})
            else:
                found.append(self._describe_instance(ci))
        return {"containerInstances": found, "failures": failures}

    def _ci_arn(self, cluster: Cluster, ref: str) -> str:
        return (
            ref if ref.startswith("arn:") else self._arn(f"container-instance/{cluster.name}/{ref}")
        )

    def _describe_instance(self, ci: ContainerInstance) -> dict[str, Any]:
        return {
            "containerInstanceArn": ci.arn,
            "ec2InstanceId": ci.ec2_instance_id,
            "version": ci.version,
            "versionInfo": dict(_VERSION_INFO),
            "remainingResources": _resources(ci.max_tasks - ci.replica_load),
            "registeredResources": _resources(ci.max_tasks),
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
                failures.append({"arn": self._ci_arn(cluster, ref), "reason": "MISSING"})
                continue
            # DRAINING only from ACTIVE; ACTIVE/DRAINING are the only live states modelled,
            # so repeating DRAINING on a DRAINING instance is a no-op success.
            self._set_status(ci, status)
            updated.append(ci)
        self.reconcile()
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
                arn = ref if ref.startswith("arn:") else self._arn(f"task/{cluster.name}/{ref}")
                failures.append({"arn": arn, "reason": "MISSING"})
            else:
                found.append(self._describe_task(task))
        return {"tasks": found, "failures": failures}

    def _describe_task(self, task: Task) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attachments": [],
            "attributes": [],
            "availabilityZone": f"{self.world.region}a",
            "clusterArn": task.cluster.arn,
            "containerInstanceArn": task.instance.arn,
            "containers": [],
            "createdAt": _ts(task.created_at),
            "desiredStatus": task.desired_status,
            "group": task.group,
            "lastStatus": task.last_status,
            "launchType": "EC2",
            "taskArn": task.arn,
            "taskDefinitionArn": self._arn(f"task-definition/{task.family}:1"),
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
                arn = ref if ref.startswith("arn:") else self._arn(f"service/{cluster.name}/{ref}")
                failures.append({"arn": arn, "reason": "MISSING"})
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
                    "targetGroupArn": f"arn:aws:elasticloadbalancing:{self.world.region}:"
                    f"{self.world.account}:targetgroup/{service.name}/0123456789abcdef",
                    "containerName": service.name,
                    "containerPort": 80,
                }
            )
        task_definition = self._arn(f"task-definition/{service.family}:1")
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
            "events": [dict(e) for e in service.events],
            "createdAt": created,
            "placementConstraints": [],
            "placementStrategy": [],
            "schedulingStrategy": "DAEMON" if service.daemon else "REPLICA",
            "deploymentController": {"type": "ECS"},
            "enableECSManagedTags": False,
            "propagateTags": "NONE",
            "enableExecuteCommand": False,
        }

    def api_ListServices(self, params: dict[str, Any]) -> dict[str, Any]:
        cluster = self._api_cluster(params)
        services = sorted(cluster.services.values(), key=lambda s: s.created_at)
        strategy = params.get("schedulingStrategy")
        if strategy:
            services = [
                s
                for s in services
                if (s.daemon and strategy == "DAEMON") or (not s.daemon and strategy == "REPLICA")
            ]
        # ListServices pages default to 10 (API reference); creation order stands in for seq.
        indexed = [_Indexed(i + 1, s) for i, s in enumerate(services)]
        limit = params.get("maxResults") or 10
        page, token = _paginate(
            indexed, {**params, "maxResults": limit}, "nextToken", "maxResults", 100
        )
        return _with_token({"serviceArns": [i.item.arn for i in page]}, "nextToken", token)

    def api_StopTask(self, params: dict[str, Any]) -> dict[str, Any]:
        cluster = self._api_cluster(params)
        task = self._find_task(cluster, params.get("task") or "")
        if task is None:
            raise ApiError("InvalidParameterException", "The referenced task was not found.")
        self.stop_task(task, "UserInitiated", params.get("reason") or "Task stopped by user")
        return {"task": self._describe_task(task)}


_VERSION_INFO = {"agentVersion": "1.89.0", "agentHash": "0a1b2c3d", "dockerVersion": "25.0.8"}


def _resources(slots: int) -> list[dict[str, Any]]:
    # Tasks are modelled as slots; CPU/MEMORY scale with them only to look plausible.
    return [
        {"name": "CPU", "type": "INTEGER", "integerValue": 256 * slots},
        {"name": "MEMORY", "type": "INTEGER", "integerValue": 512 * slots},
    ]


@dataclass
class _Indexed:
    seq: int
    item: Any


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
