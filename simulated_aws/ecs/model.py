"""ECS on EC2 as the drain orchestrator sees it: the control plane and its service scheduler.

Semantics come from the ECS developer guide, "Container instance draining"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/container-instance-draining.html),
and the ECS API reference / developer guide pages cited inline. The API's requests and answers
are api.py's.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from simulated_aws.ecs import events
from simulated_aws.ecs.resources import (
    ACTIVE,
    DEACTIVATING,
    INACTIVE,
    PENDING,
    RUNNING,
    STOPPED,
    STOPPING,
    Cluster,
    ContainerInstance,
    Service,
    Task,
)
from simulated_aws.faults import Throttle

if TYPE_CHECKING:
    from simulated_aws.world import World


class EcsModel:
    """The ECS control plane plus its service scheduler."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.clusters: dict[str, Cluster] = {}
        self.throttle = Throttle(world.clock, "ThrottlingException")
        self.emit_state_change_events = True  # both kinds: container instance and task
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

    def arn(self, resource: str) -> str:
        return f"arn:aws:ecs:{self.world.region}:{self.world.account}:{resource}"

    def _hex_id(self) -> str:
        return f"{self.world.rng.getrandbits(128):032x}"

    # ---- builders (called through World) ---------------------------------------------------
    def add_cluster(self, name: str) -> Cluster:
        if name in self.clusters and self.clusters[name].status == ACTIVE:
            raise ValueError(f"cluster {name} exists")
        cluster = Cluster(name, self.arn(f"cluster/{name}"), self._next_seq())
        self.clusters[name] = cluster
        return cluster

    def register_instance(self, cluster_name: str, ec2_instance_id: str, max_tasks: int) -> str:
        cluster = self._cluster_by_name(cluster_name)
        ci_id = self._hex_id()
        ci = ContainerInstance(
            id=ci_id,
            arn=self.arn(f"container-instance/{cluster.name}/{ci_id}"),
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
            arn=self.arn(f"service/{cluster.name}/{name}"),
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
            self._task_changed(task)
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
            arn=self.arn(f"task/{cluster.name}/{task_id}"),
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
        self._task_event(task)  # PENDING, version 1
        self._resources_changed(ci)
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
        self._task_changed(task)
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
        if task.last_status == PENDING:
            # "Service tasks … in the PENDING state are stopped immediately" (draining guide).
            task.last_status = STOPPED
            task.stopping_at = task.stopped_at = now
            self._task_changed(task)
        else:
            task.stopping_at = now
            # Task lifecycle (ECS developer guide): DEACTIVATING covers the load balancer
            # target deregistration, STOPPING the container stop (SIGTERM … SIGKILL).
            if task.deregistration_delay_seconds > 0:
                task.last_status = DEACTIVATING
                self._task_changed(task)  # desiredStatus STOPPED and DEACTIVATING: one change
                task.timer = self.world.call_later(
                    task.deregistration_delay_seconds,
                    lambda: self._task_stopping(task),
                    f"deregistered {task.id}",
                )
            else:
                # desiredStatus STOPPED, then STOPPING at once: two changes, two events
                self._task_changed(task)
                self._task_stopping(task, reconcile=False)
        self.reconcile()

    def _task_stopping(self, task: Task, reconcile: bool = True) -> None:
        task.timer = None
        if not task.live:
            return
        task.last_status = STOPPING
        self._task_changed(task)
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
        self._task_changed(task)
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
        # Spread: the ACTIVE instance with the most free slots, then the oldest. One pass, each
        # instance's load counted once (a refresh places thousands of tasks on thousands).
        best: tuple[tuple[int, int], ContainerInstance] | None = None
        for ci in cluster.instances:
            if not ci.placeable:
                continue
            load = ci.replica_load
            if load < ci.max_tasks and (best is None or (load - ci.max_tasks, ci.seq) < best[0]):
                best = ((load - ci.max_tasks, ci.seq), ci)
        return None if best is None else best[1]

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
                "createdAt": self.world.clock.now(),
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
        if self.emit_state_change_events:
            detail = events.container_instance_state_change(self.world, ci)
            self.world.emit(events.INSTANCE_STATE_CHANGE, events.SOURCE, [ci.arn], detail)

    # ---- task state ------------------------------------------------------------------------
    def _task_changed(self, task: Task) -> None:
        """A task's state changed: a new version, and its event."""
        task.version += 1
        self._task_event(task)
        if task.last_status == STOPPED and not task.killed:
            self._resources_changed(task.instance)

    def _resources_changed(self, ci: ContainerInstance) -> None:
        # "Placing or stopping tasks on a container instance modifies the available resources
        # on the container instance" and sends its event (ECS developer guide, container
        # instance state change events); a host's end sends its own status events.
        ci.version += 1
        self._state_change_event(ci)

    def _task_event(self, task: Task) -> None:
        if self.emit_state_change_events:
            detail = events.task_state_change(self.world, task)
            self.world.emit(events.TASK_STATE_CHANGE, events.SOURCE, [task.arn], detail)
