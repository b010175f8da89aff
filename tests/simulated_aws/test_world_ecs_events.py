"""The ECS events the world sends: one "ECS Task State Change" per task status change, shaped as
the documentation's samples, and container instance events carrying the task counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simulated_aws import World

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "aws-sample-events"
TASK_EVENT = "ECS Task State Change"
INSTANCE_EVENT = "ECS Container Instance State Change"
# In the Fargate sample only: Fargate and awsvpc networking (ENI attachment, connectivity,
# platform version), or image pulls, which the world does not model.
FARGATE_ONLY = {"attachments", "connectivity", "connectivityAt", "platformVersion"}
NOT_MODELLED = {"pullStartedAt", "pullStoppedAt"}
CONTAINER_NOT_MODELLED = {"image", "imageDigest", "runtimeId", "networkInterfaces", "cpu"}


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / name).read_text())


def recorded(world: World) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    world.subscribe(events.append)
    return events


def task_events(events: list[dict[str, Any]], task_arn: str) -> list[dict[str, Any]]:
    return [e for e in events if e["detail-type"] == TASK_EVENT and e["resources"] == [task_arn]]


def drained_service_task(world: World, deregistration: float) -> tuple[str, list[dict]]:
    """One service task, RUNNING on an instance that is then set DRAINING; every event."""
    events = recorded(world)
    world.add_cluster("demo")
    old = world.add_instance(cluster="demo")
    world.add_service(
        "demo", "web", desired=1, start_seconds=10, deregistration_delay_seconds=deregistration
    )
    world.add_instance(cluster="demo")
    (task,) = world.tasks_on(old)
    with world.op():
        world.ecs._set_status(world.ecs.container_instance(old), "DRAINING")
        world.ecs.reconcile()
    world.clock.advance(120)
    return task.arn, task_events(events, task.arn)


def assert_same_shape(ours: Any, theirs: Any, where: str = "detail") -> None:
    assert type(ours) is type(theirs), where
    if isinstance(theirs, dict):
        for key, value in theirs.items():
            assert key in ours, f"{where}.{key} missing"
            assert_same_shape(ours[key], value, f"{where}.{key}")
    elif isinstance(theirs, list) and theirs:
        assert ours, f"{where} empty"
        assert_same_shape(ours[0], theirs[0], f"{where}[0]")


def test_task_events_have_the_documented_shape(world: World) -> None:
    _, events = drained_service_task(world, deregistration=30)
    ec2 = sample("ecs-task-state-change.json")
    stopped = events[-1]
    assert list(stopped) == list(ec2)  # the envelope, in its order
    assert (stopped["source"], stopped["detail-type"]) == (ec2["source"], ec2["detail-type"])
    assert stopped["resources"] == [stopped["detail"]["taskArn"]]
    assert_same_shape(stopped["detail"], ec2["detail"])
    fargate = sample("ecs-task-state-change-fargate.json")["detail"]
    for key in set(fargate) - FARGATE_ONLY - NOT_MODELLED - {"containers"}:
        assert_same_shape({key: stopped["detail"].get(key)}, {key: fargate[key]})
    container = dict(fargate["containers"][0])
    for key in CONTAINER_NOT_MODELLED:
        del container[key]
    assert_same_shape(stopped["detail"]["containers"][0], container, "containers[0]")
    assert stopped["detail"]["launchType"] == "EC2"
    # The timestamps are ISO strings with milliseconds, as in the samples.
    assert stopped["detail"]["updatedAt"] == stopped["detail"]["stoppedAt"]
    assert stopped["detail"]["updatedAt"].endswith(".000Z")


def test_one_event_per_status_change_in_order_with_growing_versions(world: World) -> None:
    arn, events = drained_service_task(world, deregistration=30)
    seen = [
        (e["detail"]["desiredStatus"], e["detail"]["lastStatus"], e["detail"]["version"])
        for e in events
    ]
    assert seen == [
        ("RUNNING", "PENDING", 1),
        ("RUNNING", "RUNNING", 2),
        ("STOPPED", "DEACTIVATING", 3),  # told to stop: deregistering from the load balancer
        ("STOPPED", "STOPPING", 4),
        ("STOPPED", "STOPPED", 5),
    ]
    (task,) = [t for t in world.ecs.clusters["demo"].tasks if t.arn == arn]
    assert task.version == 5  # the events' versions are DescribeTasks' versions
    stopping = events[2]["detail"]
    assert (stopping["stopCode"], stopping["stoppedReason"]) == (
        "ServiceSchedulerInitiated",
        "Container instance is draining",
    )
    assert "stoppedAt" not in stopping and "stoppedAt" in events[-1]["detail"]
    assert events[-1]["detail"]["containers"][0]["lastStatus"] == "STOPPED"
    assert events[-1]["detail"]["containers"][0]["exitCode"] == 0


def test_without_a_load_balancer_the_task_goes_straight_to_stopping(world: World) -> None:
    _, events = drained_service_task(world, deregistration=0)
    assert [(e["detail"]["desiredStatus"], e["detail"]["lastStatus"]) for e in events[2:]] == [
        ("STOPPED", "RUNNING"),  # desiredStatus changed first, its own version
        ("STOPPED", "STOPPING"),
        ("STOPPED", "STOPPED"),
    ]
    assert [e["detail"]["version"] for e in events] == [1, 2, 3, 4, 5]


def test_tasks_killed_with_their_host_send_a_stopped_event(world: World) -> None:
    events = recorded(world)
    world.add_cluster("demo")
    instance = world.add_instance(cluster="demo")
    task_arn = world.run_task("demo", instance, "batch")
    world.terminate_instance(instance, "test")
    last = task_events(events, task_arn)[-1]["detail"]
    assert (last["lastStatus"], last["desiredStatus"], last["version"]) == ("STOPPED", "STOPPED", 3)
    assert last["stoppedReason"].startswith("Host EC2")
    assert "exitCode" not in last["containers"][0]
    assert "startedBy" not in last and last["group"] == "family:batch"


def test_container_instance_events_count_tasks_as_the_api_does(world: World) -> None:
    events = recorded(world)
    world.add_cluster("demo")
    old = world.add_instance(cluster="demo")
    world.add_service("demo", "web", desired=1, deregistration_delay_seconds=300)
    world.add_service("demo", "worker", desired=1, deregistration_delay_seconds=0)
    world.add_instance(cluster="demo")
    ci = world.ecs.container_instance(old)

    def latest() -> dict[str, Any]:
        mine = [e for e in events if e["detail"].get("containerInstanceArn") == ci.arn]
        return [e["detail"] for e in mine if e["detail-type"] == INSTANCE_EVENT][-1]

    # Placing the worker sent an event while it was PENDING (web RUNNING).
    assert (latest()["runningTasksCount"], latest()["pendingTasksCount"]) == (1, 1)
    with world.op():
        world.ecs._set_status(ci, "DRAINING")
        world.ecs.reconcile()
    world.clock.advance(60)  # the worker has stopped; web still deregisters for 4 more minutes
    released = latest()
    assert released["status"] == "DRAINING" and released["agentConnected"] is True
    assert [t.last_status for t in world.tasks_on(old)] == ["DEACTIVATING", "STOPPED"]
    # The stopped worker gave its slot back: an event. The web task still runs behind its load
    # balancer, yet ECS counts it in neither count (its desiredStatus is STOPPED).
    assert (released["runningTasksCount"], released["pendingTasksCount"]) == (0, 0)
    assert released["remainingResources"][0]["integerValue"] == 256 * (ci.max_tasks - 1)
    assert released["version"] == ci.version


def test_switching_events_off_silences_both_kinds(world: World) -> None:
    events = recorded(world)
    world.ecs.emit_state_change_events = False
    world.add_cluster("demo")
    world.add_instance(cluster="demo")
    world.add_service("demo", "web", desired=1)
    assert events == []
