from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from simulated_aws import World


def _ci_arn(ecs: Any, instance_id: str, cluster: str = "demo") -> str:
    arns = ecs.list_container_instances(cluster=cluster, filter=f"ec2InstanceId == {instance_id}")
    (arn,) = arns["containerInstanceArns"]
    return arn


def _describe_ci(ecs: Any, arn: str) -> dict[str, Any]:
    return ecs.describe_container_instances(cluster="demo", containerInstances=[arn])[
        "containerInstances"
    ][0]


def _statuses(world: World, instance_id: str) -> list[tuple[str, str]]:
    return [(t.last_status, t.desired_status) for t in world.tasks_on(instance_id)]


def test_drain_moves_service_tasks_and_count_hits_zero_before_tasks_stop(world: World) -> None:
    world.add_cluster("demo")
    world.add_group("demo-asg")
    old = world.add_instance(cluster="demo", group="demo-asg")
    world.add_service("demo", "web", desired=2, min_healthy=100, max_percent=200)
    new = world.add_instance(cluster="demo", group="demo-asg")
    assert _statuses(world, old) == [("RUNNING", "RUNNING")] * 2

    ecs = boto3.client("ecs")
    arn = _ci_arn(ecs, old)
    out = ecs.update_container_instances_state(
        cluster="demo", containerInstances=[arn], status="DRAINING"
    )
    assert out["containerInstances"][0]["status"] == "DRAINING" and out["failures"] == []
    # 100 % minimum: the old tasks keep running until replacements are healthy.
    assert _describe_ci(ecs, arn)["runningTasksCount"] == 2
    assert [t.last_status for t in world.tasks_on(new)] == ["PENDING", "PENDING"]

    world.clock.advance(30)  # start_seconds: replacements RUNNING and healthy
    ci = _describe_ci(ecs, arn)
    assert (ci["status"], ci["runningTasksCount"], ci["pendingTasksCount"]) == ("DRAINING", 0, 0)
    # …yet both old tasks still run, deregistering from the load balancer.
    assert ecs.list_tasks(cluster="demo", containerInstance=arn)["taskArns"] == []
    stopping = ecs.list_tasks(cluster="demo", containerInstance=arn, desiredStatus="STOPPED")
    described = ecs.describe_tasks(cluster="demo", tasks=stopping["taskArns"])["tasks"]
    assert {t["lastStatus"] for t in described} == {"DEACTIVATING"}
    first = described[0]
    assert first["group"] == "service:web" and first["startedBy"].startswith("ecs-svc/")
    assert first["stopCode"] == "ServiceSchedulerInitiated"
    assert first["stoppingAt"] == world.clock.now()
    assert "stoppedAt" not in first

    world.clock.advance(30)  # deregistration delay over
    assert {t.last_status for t in world.tasks_on(old)} == {"STOPPING"}
    world.clock.advance(10)  # stop_seconds
    assert {t.last_status for t in world.tasks_on(old)} == {"STOPPED"}
    done = ecs.describe_tasks(cluster="demo", tasks=stopping["taskArns"])["tasks"]
    assert all(t["stoppedAt"] == world.clock.now() for t in done)
    assert [t.last_status for t in world.tasks_on(new)] == ["RUNNING", "RUNNING"]
    service = ecs.describe_services(cluster="demo", services=["web"])["services"][0]
    assert (service["runningCount"], service["desiredCount"]) == (2, 2)


def test_drain_with_no_room_elsewhere_never_finishes(world: World) -> None:
    world.add_cluster("demo")
    old = world.add_instance(cluster="demo", max_tasks=2)
    world.add_service("demo", "web", desired=2)
    world.add_instance(cluster="demo", max_tasks=1)  # room for one replacement only
    ecs = boto3.client("ecs")
    arn = _ci_arn(ecs, old)
    ecs.update_container_instances_state(
        cluster="demo", containerInstances=[arn], status="DRAINING"
    )
    world.clock.advance(48 * 3600)
    # One replacement ran, so one old task could stop; the last one never can (100 % min).
    assert [t.last_status for t in world.tasks_on(old)] == ["STOPPED", "RUNNING"]
    assert _describe_ci(ecs, arn)["runningTasksCount"] == 1
    events = ecs.describe_services(cluster="demo", services=["web"])["services"][0]["events"]
    assert "unable to place a task" in events[0]["message"]


def test_min_healthy_50_stops_before_replacing(world: World) -> None:
    world.add_cluster("demo")
    old = world.add_instance(cluster="demo")
    world.add_service("demo", "web", desired=2, min_healthy=50, max_percent=100)
    new = world.add_instance(cluster="demo")
    ecs = boto3.client("ecs")
    ecs.update_container_instances_state(
        cluster="demo", containerInstances=[_ci_arn(ecs, old)], status="DRAINING"
    )
    # Max 100 %: one old task stops first, then one replacement starts in its place.
    assert [t.desired_status for t in world.tasks_on(old)] == ["STOPPED", "RUNNING"]
    assert [t.last_status for t in world.tasks_on(new)] == ["PENDING"]
    world.clock.advance(30)
    assert [t.desired_status for t in world.tasks_on(old)] == ["STOPPED", "STOPPED"]
    world.clock.advance(30)
    assert [t.last_status for t in world.tasks_on(new)] == ["RUNNING", "RUNNING"]


def test_pending_service_tasks_on_a_draining_instance_stop_at_once(world: World) -> None:
    world.add_cluster("demo")
    first = world.add_instance(cluster="demo")
    world.add_service("demo", "web", desired=1, start_seconds=300)
    second = world.add_instance(cluster="demo")
    ecs = boto3.client("ecs")
    ecs.update_container_instances_state(
        cluster="demo", containerInstances=[_ci_arn(ecs, first)], status="DRAINING"
    )
    (replacement,) = world.tasks_on(second)
    assert replacement.last_status == "PENDING"
    ecs.update_container_instances_state(
        cluster="demo", containerInstances=[_ci_arn(ecs, second)], status="DRAINING"
    )
    assert (replacement.last_status, replacement.stopped_at) == ("STOPPED", world.clock.now())


def test_daemon_stops_last_and_standalone_is_untouched(world: World) -> None:
    world.add_cluster("demo")
    old = world.add_instance(cluster="demo")
    world.add_service(
        "demo", "agent", desired=0, daemon=True, stop_seconds=5, deregistration_delay_seconds=0
    )
    world.add_service("demo", "web", desired=1, deregistration_delay_seconds=0)
    world.run_task("demo", old, "batch", runs_for_seconds=600)
    world.run_task("demo", old, "forever")
    new = world.add_instance(cluster="demo")
    assert [t.group for t in world.tasks_on(new)] == ["service:agent"]  # daemon follows

    ecs = boto3.client("ecs")
    ecs.update_container_instances_state(
        cluster="demo", containerInstances=[_ci_arn(ecs, old)], status="DRAINING"
    )
    by_group = {t.group: t for t in world.tasks_on(old)}
    world.clock.advance(30 + 10)  # web replaced, old web task stopped (no LB)
    assert by_group["service:web"].last_status == "STOPPED"
    assert by_group["service:agent"].desired_status == "RUNNING"
    world.clock.advance(600)  # the batch task ends by itself
    assert by_group["family:batch"].stop_code == "EssentialContainerExited"
    assert by_group["family:batch"].last_status == "STOPPED"
    assert by_group["service:agent"].desired_status == "RUNNING"  # "forever" still runs
    assert by_group["family:forever"].last_status == "RUNNING"

    forever = by_group["family:forever"]
    stopped = ecs.stop_task(cluster="demo", task=forever.arn, reason="drain")["task"]
    assert (stopped["desiredStatus"], stopped["lastStatus"]) == ("STOPPED", "STOPPING")
    assert stopped["stopCode"] == "UserInitiated" and stopped["stoppedReason"] == "drain"
    world.clock.advance(10)
    agent = by_group["service:agent"]
    assert forever.last_status == "STOPPED"
    assert (agent.desired_status, agent.last_status) == ("STOPPED", "STOPPING")
    assert agent.stopping_at == forever.stopped_at  # only after every other task STOPPED
    world.clock.advance(5)
    assert world.tasks_on(old, live=True) == []
    service = ecs.describe_services(cluster="demo", services=["agent"])["services"][0]
    assert (service["schedulingStrategy"], service["desiredCount"]) == ("DAEMON", 1)


def test_list_container_instances_filter_status_and_pagination(world: World) -> None:
    world.add_cluster("demo")
    ids = [world.add_instance(cluster="demo") for _ in range(5)]
    ecs = boto3.client("ecs")
    arns = ecs.list_container_instances(cluster="demo")["containerInstanceArns"]
    assert len(arns) == 5
    assert _ci_arn(ecs, ids[3]) == arns[3]
    assert (
        ecs.list_container_instances(cluster="demo", filter="ec2InstanceId == i-0")[
            "containerInstanceArns"
        ]
        == []
    )
    both = ecs.list_container_instances(
        cluster="demo", filter=f"ec2InstanceId in [{ids[0]}, {ids[4]}]"
    )["containerInstanceArns"]
    assert both == [arns[0], arns[4]]
    ecs.update_container_instances_state(
        cluster="demo", containerInstances=arns[1:3], status="DRAINING"
    )
    draining = ecs.list_container_instances(cluster="demo", status="DRAINING")
    assert draining["containerInstanceArns"] == arns[1:3]

    page = ecs.list_container_instances(cluster="demo", maxResults=2)
    assert page["containerInstanceArns"] == arns[:2]
    rest = ecs.list_container_instances(cluster="demo", maxResults=2, nextToken=page["nextToken"])
    assert rest["containerInstanceArns"] == arns[2:4]
    paginator = ecs.get_paginator("list_container_instances")
    pages = list(paginator.paginate(cluster="demo", PaginationConfig={"PageSize": 2}))
    assert [a for p in pages for a in p["containerInstanceArns"]] == arns

    with pytest.raises(ClientError, match="WorldNotImplemented"):
        ecs.list_container_instances(cluster="demo", filter="attribute:ecs.os-type == linux")


def test_describe_and_update_limits_and_failures(world: World) -> None:
    world.add_cluster("demo")
    instance = world.add_instance(cluster="demo")
    ecs = boto3.client("ecs")
    arn = _ci_arn(ecs, instance)
    out = ecs.describe_container_instances(cluster="demo", containerInstances=[arn, "0" * 32])
    assert [c["ec2InstanceId"] for c in out["containerInstances"]] == [instance]
    assert out["failures"] == [
        {
            "arn": f"arn:aws:ecs:us-east-1:123456789012:container-instance/demo/{'0' * 32}",
            "reason": "MISSING",
        }
    ]
    ci = out["containerInstances"][0]
    assert (ci["status"], ci["agentConnected"], ci["registeredAt"]) == (
        "ACTIVE",
        True,
        world.clock.now(),
    )
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.update_container_instances_state(
            cluster="demo", containerInstances=[arn] * 11, status="DRAINING"
        )
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.describe_container_instances(cluster="demo", containerInstances=[arn] * 101)
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.list_tasks(cluster="demo", containerInstance="f" * 32)
    with pytest.raises(ecs.exceptions.ClusterNotFoundException, match="Cluster not found"):
        ecs.describe_container_instances(cluster="other", containerInstances=[arn])
    missing = ecs.describe_tasks(cluster="demo", tasks=["abc"])
    assert missing["failures"][0]["reason"] == "MISSING"
    services = ecs.describe_services(cluster="demo", services=["nope"])
    assert services["failures"][0]["reason"] == "MISSING"
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.describe_services(cluster="demo", services=[f"s{i}" for i in range(11)])
    assert len(ecs.list_container_instances(cluster="demo")["containerInstanceArns"]) == 1
    with pytest.raises(ecs.exceptions.ClusterNotFoundException):
        ecs.list_container_instances(cluster="gone")
    # Back to ACTIVE works; only ACTIVE/DRAINING are accepted.
    ecs.update_container_instances_state(
        cluster="demo", containerInstances=[arn], status="DRAINING"
    )
    back = ecs.update_container_instances_state(
        cluster="demo", containerInstances=[arn], status="ACTIVE"
    )
    assert back["containerInstances"][0]["status"] == "ACTIVE"
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.update_container_instances_state(
            cluster="demo", containerInstances=[arn], status="REGISTERING"
        )


def test_termination_kills_what_still_runs_and_deregistered_instances_vanish(world: World) -> None:
    world.add_cluster("demo")
    old = world.add_instance(cluster="demo")
    world.add_service("demo", "web", desired=2, deregistration_delay_seconds=300)
    world.add_instance(cluster="demo")
    ecs = boto3.client("ecs")
    arn = _ci_arn(ecs, old)
    ecs.update_container_instances_state(
        cluster="demo", containerInstances=[arn], status="DRAINING"
    )
    world.clock.advance(60)  # replacements healthy; old tasks DEACTIVATING for 300 s
    assert _describe_ci(ecs, arn)["runningTasksCount"] == 0

    world.ecs.deregister(old)  # drops out of the list before the host goes away
    assert (
        ecs.list_container_instances(cluster="demo", filter=f"ec2InstanceId == {old}")[
            "containerInstanceArns"
        ]
        == []
    )
    assert _describe_ci(ecs, arn)["status"] == "INACTIVE"

    termination = world.terminate_instance(old, "completed")
    assert termination is not None
    assert [status for _, status in termination.tasks_killed] == ["DEACTIVATING"] * 2
    assert termination.time == world.clock.now()
    assert world.terminations == [termination]
    assert world.terminate_instance(old, "again") is None
    killed = ecs.describe_tasks(cluster="demo", tasks=[a for a, _ in termination.tasks_killed])
    assert {t["stoppedReason"] for t in killed["tasks"]} == {
        f"Host EC2 (instance {old}) terminated."
    }
    world.clock.advance(3600)
    service = ecs.describe_services(cluster="demo", services=["web"])["services"][0]
    assert service["runningCount"] == 2


def test_deleted_cluster_answers_cluster_not_found(world: World) -> None:
    world.add_cluster("demo")
    world.add_instance(cluster="demo")
    ecs = boto3.client("ecs")
    world.ecs.delete_cluster("demo")
    with pytest.raises(ecs.exceptions.ClusterNotFoundException):
        ecs.list_container_instances(cluster="demo")
    with pytest.raises(ecs.exceptions.ClusterNotFoundException):
        ecs.list_tasks(cluster="demo")
    assert world.ecs.clusters["demo"].status == "INACTIVE"


def test_list_tasks_filters_and_pages(world: World) -> None:
    world.add_cluster("demo")
    instance = world.add_instance(cluster="demo", max_tasks=20)
    world.add_service("demo", "web", desired=3)
    world.add_service("demo", "api", desired=2)
    world.run_task("demo", instance, "batch")
    ecs = boto3.client("ecs")
    assert len(ecs.list_tasks(cluster="demo")["taskArns"]) == 6
    assert len(ecs.list_tasks(cluster="demo", serviceName="web")["taskArns"]) == 3
    assert len(ecs.list_tasks(cluster="demo", family="batch")["taskArns"]) == 1
    assert ecs.list_tasks(cluster="demo", desiredStatus="STOPPED")["taskArns"] == []
    with pytest.raises(ecs.exceptions.ServiceNotFoundException):
        ecs.list_tasks(cluster="demo", serviceName="nope")
    pages = ecs.get_paginator("list_tasks").paginate(
        cluster="demo", PaginationConfig={"PageSize": 4}
    )
    assert [len(p["taskArns"]) for p in pages] == [4, 2]
    task = ecs.describe_tasks(
        cluster="demo", tasks=ecs.list_tasks(cluster="demo", family="batch")["taskArns"]
    )
    (batch,) = task["tasks"]
    assert batch["group"] == "family:batch" and "startedBy" not in batch
    assert batch["launchType"] == "EC2" and batch["startedAt"] == world.clock.now()
    world.clock.advance(timedelta(hours=1).total_seconds())
    assert world.api_call_counts()["ecs:ListTasks"] == 8


def test_container_instance_state_change_events(world: World) -> None:
    events: list[dict[str, Any]] = []
    world.subscribe(events.append)
    world.add_cluster("demo")
    instance = world.add_instance(cluster="demo")
    ecs = boto3.client("ecs")
    ecs.update_container_instances_state(
        cluster="demo", containerInstances=[_ci_arn(ecs, instance)], status="DRAINING"
    )
    assert [(e["detail"]["status"], e["detail"]["version"]) for e in events] == [
        ("ACTIVE", 1),
        ("DRAINING", 2),
    ]
    assert events[1]["detail-type"] == "ECS Container Instance State Change"
    assert events[1]["time"] == world.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")


def test_apis_nothing_calls_are_not_simulated(world: World) -> None:
    # The world answers what the drainer, the sandbox, the benchmark and these tests call; any
    # other ECS call is loud rather than half-simulated.
    ecs = boto3.client("ecs")
    for call in (ecs.list_clusters, ecs.list_services):
        with pytest.raises(ClientError, match="WorldNotImplemented"):
            call()
