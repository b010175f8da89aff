"""Event-woken drains (drain_end_detection = "events") on the real definition, the real handlers
and the simulated world's task events, delivered through the real rules on the virtual clock.

A lifecycle drain's wait ends when the last task it waits for stops (the task-stopped rule
invokes the wake function, which sends the callback's token back), or at the fallback poll when
no event comes; nothing else wakes it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import await_stops
import boto3
import pytest

from drainer import progress, watch
from drainer.settings import settings
from sandbox.deployment import CLAIMS_TABLE, function_name
from sandbox.eventbridge import DeliveryModel
from sandbox.harness import REGION, Harness
from simulated_aws.ecs.events import TASK_STATE_CHANGE
from stacks.config import load_config
from stacks.functions import WAKE_FUNCTION
from tests.worlds import CLUSTER, GROUP, drain_world, with_settings
from tools.offline import ROOT

AWAIT = "Await task stops"


@pytest.fixture
def events():
    # The shipped file, whatever mode the suite's own `config` fixture runs in.
    return with_settings(load_config(ROOT / "drainer.toml"), drain_end_detection="events")


def entered(history: list[dict[str, Any]], name: str) -> list[datetime]:
    return [
        event["timestamp"]
        for event in history
        if event.get("stateEnteredEventDetails", {}).get("name") == name
    ]


def wakes(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What ended each awaited wait: the wake-up's output, or the timeout's error."""
    return [
        json.loads(event["stateExitedEventDetails"]["output"])["wake"]
        for event in history
        if event.get("stateExitedEventDetails", {}).get("name") == AWAIT
    ]


def last_stop(world, instance_id: str) -> datetime:
    return max(task.stopped_at for task in world.tasks_on(instance_id))


def drained(harness: Harness) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    harness.run()
    (delivery,) = harness.drain_deliveries()
    (outcome,) = harness.outcomes()
    return outcome, harness.history(delivery.execution_arn)


def first_heartbeat_gap(instance_id: str) -> float:
    """When a drain of this instance records its first heartbeat (drainer/progress.py), with
    the deployed settings (inside the harness)."""
    request = SimpleNamespace(instance_id=instance_id)  # all heartbeat_gap reads of a request
    return progress.heartbeat_gap(request, {"heartbeats": 0}, settings())  # type: ignore[arg-type]


def dropping_task_events(harness: Harness) -> list[dict[str, Any]]:
    """The bus loses every task event (the worst case the fallback poll is there for). Returns
    the DRAINING container instance events it delivers (the wake function notes those)."""
    deliver = harness.eventbridge.deliver
    draining: list[dict[str, Any]] = []

    def lossy(event: dict[str, Any]) -> None:
        if event.get("detail-type") != TASK_STATE_CHANGE:
            if event["detail"].get("status") == "DRAINING":
                draining.append(event)
            deliver(event)

    harness.eventbridge.deliver = lossy  # type: ignore[method-assign]
    return draining


def test_the_last_task_stopping_ends_the_drain_within_seconds(events):
    world, (victim,) = drain_world(events)
    with Harness(world, events) as harness:
        action = world.asg.scale_in(GROUP, victim)
        outcome, history = drained(harness)
        table = boto3.client("dynamodb", region_name=REGION)
        keys = [item["pk"]["S"] for item in table.scan(TableName=CLAIMS_TABLE)["Items"]]
    assert outcome["outcome"] == "drained" and action.ended_by == "completed"
    (completed,) = entered(history, "Complete lifecycle action")
    # The bus delivers in 0.5 to 1.5 s; the poll and the completion take no virtual time.
    assert timedelta(0) < completed - last_stop(world, victim) < timedelta(seconds=5)
    assert wakes(history)[-1]["wokenBy"] == watch.TASK_STOPPED
    assert harness.lambda_errors == []
    # The claim stays (late duplicates find it); the watch is gone with the drain.
    assert keys and not [key for key in keys if key.startswith(watch.PREFIX)]


def test_a_lost_event_ends_the_drain_at_the_fallback_poll(events):
    world, (victim,) = drain_world(events)
    with Harness(world, events) as harness:
        draining = dropping_task_events(harness)
        world.asg.scale_in(GROUP, victim)
        outcome, history = drained(harness)
        first = first_heartbeat_gap(victim)
    assert outcome["outcome"] == "drained"
    assert [wake["Error"] for wake in wakes(history)] == ["States.Timeout"]
    (awaited,) = entered(history, AWAIT)
    (completed,) = entered(history, "Complete lifecycle action")
    # The first wait awaits from the first poll on; its timeout is the fallback poll, cut to
    # the first heartbeat due (up to 600 s after the action began, by the instance's phase).
    assert events.heartbeat_timeout_seconds // 6 < first <= events.heartbeat_timeout_seconds // 3
    assert (completed - awaited).total_seconds() == pytest.approx(
        min(events.fallback_poll_seconds, first)
        - (awaited - history[0]["timestamp"]).total_seconds(),
        abs=2,
    )
    # No task event reached the wake function: only the instance's DRAINING events did.
    assert draining and harness.invocations["WakeDrain"] == len(draining)


def test_duplicated_and_reordered_events_wake_the_drain_once(events):
    world, (victim,) = drain_world(events, tasks=6)
    # Every event twice, spread over up to 20 s: the stops arrive out of order.
    bus = DeliveryModel(delay_seconds=0.5, jitter_seconds=20, duplication=1.0, seed=7)
    with Harness(world, events, delivery=bus) as harness:
        world.asg.scale_in(GROUP, victim)
        outcome, history = drained(harness)
    assert outcome["outcome"] == "drained"
    assert [wake.get("wokenBy") for wake in wakes(history)] == [watch.TASK_STOPPED]
    assert len(entered(history, "Poll tasks")) == 2  # the first poll, and the one woken
    assert harness.lambda_errors == []
    (completed,) = entered(history, "Complete lifecycle action")
    assert completed - last_stop(world, victim) < timedelta(seconds=25)


def test_tasks_stopped_before_the_wait_is_armed_wake_it_at_arming(events, monkeypatch):
    """The lost wake-up race: every awaited task's stop is recorded after the poll saw it
    alive and before the callback stores its token; arming finds them stopped and sends the
    token back itself, within the invocation that carries the token."""
    world, (victim,) = drain_world(events)
    real = await_stops.await_stops

    armings: list[int] = []

    def stops_first(event, table, now):
        armings.append(1)
        if len(armings) == 1:  # the first arming only: the tasks then stop for real
            for task in event["progress"]["awaitedTasks"]:
                instance = event["target"]["containerInstanceArn"]
                assert watch.record_stop(table, instance, task, now) == watch.RECORDED
        return real(event, table, now)

    monkeypatch.setattr(await_stops, "await_stops", stops_first)
    with Harness(world, events) as harness:
        dropping_task_events(harness)  # only the arming can end this wait early
        world.asg.scale_in(GROUP, victim)
        outcome, history = drained(harness)
    assert wakes(history)[0]["wokenBy"] == watch.ALREADY_STOPPED
    (awaited, *_) = entered(history, AWAIT)
    polls = entered(history, "Poll tasks")
    assert polls[1] - awaited < timedelta(seconds=1)  # woken at once, not at the fallback
    assert outcome["outcome"] == "drained"


def test_other_instances_and_clusters_wake_nothing(events, monkeypatch):
    world, _ = drain_world(events)
    world.add_cluster("other")
    stranger = world.add_instance(cluster="other")
    world.run_task("other", stranger, "batch", runs_for_seconds=30)
    bystander = world.add_instance(cluster=CLUSTER, group=GROUP)
    world.run_task(CLUSTER, bystander, "cron", runs_for_seconds=30)
    made: list[tuple[str, str]] = []
    real = watch.call

    def counted(service: str, operation: str, **params: Any) -> dict[str, Any]:
        made.append((service, operation))
        return real(service, operation, **params)

    monkeypatch.setattr(watch, "call", counted)
    with Harness(world, events) as harness:
        world.clock.run_for(60, active=harness.running)  # both tasks stop; nothing drains
        harness.run()
    # The configured cluster's stop reached the wake function, the other cluster's did not;
    # the instance is not draining: one conditional write, no Step Functions call.
    assert harness.invocations["WakeDrain"] == 1
    assert made == [("dynamodb", "update_item")]
    assert harness.deliveries == [] and harness.lambda_errors == []
    assert world.api_call_counts() == {}


def test_a_wake_up_after_the_execution_moved_on_is_ignored(events):
    world, (victim,) = drain_world(events)
    with Harness(world, events) as harness:
        world.asg.scale_in(GROUP, victim)
        drained(harness)
        # A watch still armed with the token of a wait long over (the report's delete lost):
        # the stop's wake-up is refused by Step Functions, and the wake function lets it be.
        instance = world.tasks_on(victim)[0].instance.arn
        watch.open_watch(
            CLAIMS_TABLE,
            instance,
            execution_arn="x",
            instance_id=victim,
            cluster=CLUSTER,
            expires_at=2_000_000_000,
            opened_at=world.clock.now(),
        )
        answer = boto3.client("lambda", region_name=REGION).invoke(
            FunctionName=function_name(WAKE_FUNCTION),
            Payload=json.dumps(
                {
                    "detail-type": watch.TASK_STATE_CHANGE,
                    "detail": {
                        "containerInstanceArn": instance,
                        "taskArn": "arn:aws:ecs:us-east-1:123456789012:task/demo/late",
                        "lastStatus": "STOPPED",
                    },
                }
            ),
        )
        armed = watch.arm(
            CLAIMS_TABLE,
            instance,
            execution_arn="x",
            token="a-token-of-an-ended-wait",
            alive=["arn:aws:ecs:us-east-1:123456789012:task/demo/late"],
            expires_at=2_000_000_000,
            now=world.clock.now(),
        )
    assert "FunctionError" not in answer
    assert json.loads(answer["Payload"].read()) == {"result": watch.RECORDED}
    assert armed is False  # the refusal, not an error
    assert harness.lambda_errors == []


def test_spot_keeps_its_timer_polls_and_drains_first(events):
    world, (victim,) = drain_world(events)
    with Harness(world, events) as harness:
        world.spot_interrupt(victim)
        harness.run()
        world.clock.run_for(180, active=harness.running)
        (delivery,) = harness.drain_deliveries()
        history = harness.history(delivery.execution_arn)
    names = [
        e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e
    ]
    assert names[:3] == ["Resolve drain request", "Route by event kind", "Start draining"]
    assert AWAIT not in names and "Wait before polling" in names


def test_heartbeats_fall_due_while_waiting(events):
    world, (victim,) = drain_world(events)
    world.run_task(CLUSTER, victim, "report", runs_for_seconds=25 * 60)
    with Harness(world, events) as harness:
        action = world.asg.scale_in(GROUP, victim)
        outcome, history = drained(harness)
    assert outcome["outcome"] == "drained" and action.ended_by == "completed"
    # Each awaited wait is cut to the heartbeat due every 600 s: 25 minutes, two heartbeats.
    assert outcome["heartbeats"] == 2
    ends = [wake.get("Error") or wake["wokenBy"] for wake in wakes(history)]
    assert ends[-1] == watch.TASK_STOPPED and ends.count("States.Timeout") == 2
    # The polls at the timeouts record them: no trip through the heartbeat state, and the
    # wait after each is awaited again.
    assert entered(history, "Record heartbeat") == []
    polls = [
        (p - history[0]["timestamp"]).total_seconds() // 600 for p in entered(history, "Poll tasks")
    ]
    assert polls.count(1) >= 1 and polls.count(2) >= 1
    (completed,) = entered(history, "Complete lifecycle action")
    assert completed - last_stop(world, victim) < timedelta(seconds=5)


def test_the_ceiling_comes_while_waiting(events):
    capped = with_settings(events, max_drain_seconds=900)
    world, (victim,) = drain_world(capped)
    world.run_task(CLUSTER, victim, "forever")
    with Harness(world, capped) as harness:
        world.asg.scale_in(GROUP, victim)
        outcome, history = drained(harness)
    assert outcome["outcome"] == "ceiling"
    (ceiling,) = entered(history, "Ceiling: apply straggler policy")
    # The last awaited wait ended at the ceiling, not at its fallback poll.
    assert (ceiling - history[0]["timestamp"]).total_seconds() == pytest.approx(900, abs=2)
