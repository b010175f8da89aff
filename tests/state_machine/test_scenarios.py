"""Every drain timeline, at production settings, on the simulated world's virtual clock.

Each scenario asserts outcomes and records what it cost (see ScenarioRecord); the records are
printed at the end of the pytest run (conftest.pytest_terminal_summary).
"""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest

from drainer.history import HISTORY_EVENT_QUOTA, awaited_drain_cost, drain_cost
from drainer.schedule import ceiling_seconds
from sandbox.harness import Harness, ScenarioRecord
from simulated_aws import World
from tests.worlds import CLUSTER, GROUP, with_settings, world_for

RECORDS: dict[str, ScenarioRecord] = {}


def finish(name: str, harness: Harness, **run) -> ScenarioRecord:
    harness.run(**run)
    record = harness.record()
    RECORDS[name] = record
    return record


def assert_clean(record: ScenarioRecord, world: World) -> None:
    """No task killed while running; every lifecycle action ended by our completion."""
    assert record.tasks_killed == []
    for action in world.lifecycle_actions:
        assert action.ended_by == "completed", (action.instance_id, action.ended_by)


def test_quick_drain(config):
    world, (victim, *_) = world_for(config)
    world.add_service(
        CLUSTER, "api", desired=3, start_seconds=5, stop_seconds=5, deregistration_delay_seconds=0
    )
    with Harness(world, config) as harness:
        world.asg.scale_in(GROUP, victim)
        record = finish("quick drain", harness)
    (drain,) = record.drains
    assert drain.outcome == "drained"
    assert drain.virtual_seconds < 120
    assert drain.state_transitions < 40
    assert_clean(record, world)


def test_forty_minute_drain_is_kept_alive_by_heartbeats(config):
    world, (victim, *_) = world_for(config)
    world.add_service(CLUSTER, "web", desired=3)
    world.run_task(CLUSTER, victim, "nightly-report", runs_for_seconds=40 * 60)
    with Harness(world, config) as harness:
        world.asg.scale_in(GROUP, victim)
        record = finish("40-minute drain with heartbeats", harness)
    (drain,) = record.drains
    (action,) = world.lifecycle_actions
    assert drain.outcome == "drained"
    assert 40 * 60 <= drain.virtual_seconds < 40 * 60 + 2 * config.poll_interval_seconds
    # The hook (1800 s) would have expired twice over without the heartbeats.
    assert len(action.heartbeats) >= (40 * 60) // (config.heartbeat_timeout_seconds // 3) - 1
    gaps = [
        b - a for a, b in zip([action.started, *action.heartbeats], action.heartbeats, strict=False)
    ]
    assert max(gaps) < timedelta(seconds=config.heartbeat_timeout_seconds)
    assert_clean(record, world)


def test_drain_to_the_48_hour_ceiling_at_production_settings(config):
    world, (victim, *_) = world_for(config)
    world.add_service(CLUSTER, "web", desired=3)
    world.run_task(CLUSTER, victim, "never-ending-batch")  # wait policy: waits to the ceiling
    with Harness(world, config) as harness:
        world.asg.scale_in(GROUP, victim)
        name = f"drain to the 48-hour ceiling ({config.drain_end_detection})"
        record = finish(name, harness, wall_timeout=120)
        (outcome,) = harness.outcomes()
    (drain,) = record.drains
    (action,) = world.lifecycle_actions
    assert drain.outcome == "ceiling"
    assert drain.history_events < HISTORY_EVENT_QUOTA
    assert timedelta(hours=47) < action.completed_at - action.started < timedelta(hours=48)
    assert action.ended_by == "completed"  # before Auto Scaling's own global timeout
    assert outcome["tasksCutShort"] == 1
    assert outcome["tasksStopped"] == 1  # straggler policy stop-tasks: SIGTERM, not a kill
    assert record.tasks_killed == []
    # The history-size check configuration validation makes at synth predicts this drain: an
    # upper bound, and within 1 %.
    ceiling = ceiling_seconds(config.max_drain_seconds, config.heartbeat_timeout_seconds)
    if config.ends_drains_on_events:  # no event ever comes: a poll every fallback_poll_seconds
        predicted = awaited_drain_cost(
            config.fallback_poll_seconds, ceiling, config.heartbeat_timeout_seconds // 3
        )
    else:
        predicted = drain_cost(
            config.poll_schedule, ceiling, config.heartbeat_timeout_seconds // 3, to_ceiling=True
        )
    assert 0.99 * predicted.history_events <= drain.history_events <= predicted.history_events
    assert 0.99 * predicted.state_transitions <= drain.state_transitions
    assert drain.state_transitions <= predicted.state_transitions
    print(
        f"48-hour ceiling: {drain.history_events} history events, "
        f"{drain.state_transitions} state transitions"
    )


def test_tasks_still_stopping_when_running_count_is_zero(config):
    world, (victim, *_) = world_for(config)
    # Behind a load balancer: each old task spends 5 minutes deregistering (DEACTIVATING).
    world.add_service(
        CLUSTER,
        "web",
        desired=3,
        start_seconds=10,
        stop_seconds=20,
        deregistration_delay_seconds=300,
    )
    seen_zero_while_alive = []

    def watch():
        instance = world.ecs.container_instance(victim)
        alive = world.tasks_on(victim, live=True)
        if instance is not None and instance.running_tasks_count == 0 and alive:
            seen_zero_while_alive.append(world.clock.now())

    for second in range(0, 600, 15):
        world.call_later(second, watch)
    with Harness(world, config) as harness:
        world.asg.scale_in(GROUP, victim)
        record = finish("tasks still stopping at runningTasksCount 0", harness)
    (action,) = world.lifecycle_actions
    last_stop = max(task.stopped_at for task in world.tasks_on(victim))
    assert seen_zero_while_alive, "the trap was not set: runningTasksCount never hit 0 early"
    assert action.completed_at >= last_stop
    assert record.drains[0].outcome == "drained"
    assert_clean(record, world)


def test_daemon_tasks_stop_last_and_do_not_block(config):
    world, (victim, *_) = world_for(config)
    world.add_service(CLUSTER, "web", desired=3, deregistration_delay_seconds=0)
    world.add_service(CLUSTER, "log-router", desired=0, daemon=True, deregistration_delay_seconds=0)
    with Harness(world, config) as harness:
        world.asg.scale_in(GROUP, victim)
        record = finish("daemon tasks", harness)
    daemon = [t for t in world.tasks_on(victim) if t.is_daemon]
    others = [t for t in world.tasks_on(victim) if not t.is_daemon]
    assert daemon and others
    assert min(t.stopping_at for t in daemon) >= max(t.stopped_at for t in others)
    assert record.drains[0].outcome == "drained"
    assert_clean(record, world)


@pytest.mark.parametrize("policy", ["wait", "stop"])
def test_standalone_task_policy(config, policy):
    config = with_settings(config, standalone_task_policy=policy, standalone_task_grace_seconds=300)
    world, (victim, *_) = world_for(config)
    world.add_service(CLUSTER, "web", desired=3, deregistration_delay_seconds=0)
    task = world.run_task(CLUSTER, victim, "report", runs_for_seconds=3600)
    with Harness(world, config) as harness:
        world.asg.scale_in(GROUP, victim)
        record = finish(f"standalone task, policy {policy}", harness)
    (drain,) = record.drains
    (standalone,) = [t for t in world.tasks_on(victim) if t.arn == task]
    assert drain.outcome == "drained"
    if policy == "wait":
        assert standalone.stop_code != "UserInitiated"
        assert drain.virtual_seconds >= 3600
    else:
        assert standalone.stop_code == "UserInitiated"
        assert 300 <= drain.virtual_seconds < 300 + 3 * config.poll_interval_seconds
    assert_clean(record, world)


def test_spot_interruption(config):
    world, (victim, *_) = world_for(config)
    world.add_service(
        CLUSTER, "web", desired=3, start_seconds=20, stop_seconds=5, deregistration_delay_seconds=30
    )
    with Harness(world, config) as harness:
        world.spot_interrupt(victim)
        record = finish("Spot interruption", harness)
        drain_set = [c for c in world.api_calls if c.operation == "UpdateContainerInstancesState"]
        world.clock.run_for(180, active=harness.running)
        (delivery,) = harness.deliveries
        entered = [
            e["stateEnteredEventDetails"]["name"]
            for e in harness.history(delivery.execution_arn)
            if "stateEnteredEventDetails" in e
        ]
    (drain,) = record.drains
    (termination,) = world.terminations
    assert delivery.execution_arn.rsplit(":", 1)[1].startswith(f"{victim}-spot-")
    # Started through the dispatch function, the Spot path still sets DRAINING first.
    assert entered[:3] == ["Resolve drain request", "Route by event kind", "Start draining"]
    assert drain.outcome == "spot-drained"
    assert len(drain_set) == 1
    # DRAINING within the first steps: at the warning's own time on the virtual clock.
    assert drain_set[0].time - (termination.time - timedelta(seconds=120)) < timedelta(seconds=2)
    assert drain.virtual_seconds <= 120
    assert termination.tasks_killed == []


def test_spot_warning_and_lifecycle_event_for_one_instance(config):
    world, (victim, *_) = world_for(config, capacity_rebalance=True)
    world.add_service(
        CLUSTER, "web", desired=3, start_seconds=20, stop_seconds=5, deregistration_delay_seconds=30
    )
    with Harness(world, config) as harness:
        world.spot_interrupt(victim)  # Capacity Rebalancing also runs the terminate hook
        record = finish("Spot warning and lifecycle event", harness)
        world.clock.run_for(180, active=harness.running)
    kinds = sorted(d.kind for d in record.drains)
    assert kinds == ["LifecycleTerminate", "SpotInterruption"]
    assert record.api_calls["ecs:UpdateContainerInstancesState"] == 1  # one drain
    completions = record.api_calls.get("autoscaling:CompleteLifecycleAction", 0)
    assert completions == 1  # one completion
    (action,) = world.lifecycle_actions
    assert action.ended_by in {"completed", "instance-terminated"}


def test_same_event_delivered_twice_starts_one_execution(config):
    """EventBridge delivers at least once: both deliveries name the execution after the event,
    and Step Functions starts no second execution of the same name and input."""
    world, (victim, *_) = world_for(config)
    world.add_service(CLUSTER, "web", desired=3, deregistration_delay_seconds=0)
    with Harness(world, config) as harness:
        action = world.asg.scale_in(GROUP, victim)
        harness.deliver(action.event)
        record = finish("same event twice", harness)
        executions = harness.sfn.list_executions(stateMachineArn=harness.state_machine_arn)
    (execution,) = executions["executions"]
    assert execution["name"] == f"{victim}-lifecycle-{action.event['id'][:8]}"
    assert [d.execution_arn for d in harness.deliveries] == [execution["executionArn"]] * 2
    assert harness.invocations["Dispatch"] == 2
    (drain,) = record.drains
    assert drain.outcome == "drained"
    assert record.api_calls["ecs:UpdateContainerInstancesState"] == 1
    assert record.api_calls["autoscaling:CompleteLifecycleAction"] == 1
    assert_clean(record, world)


def test_a_second_event_for_the_same_action_is_a_duplicate(config):
    """Two events (two ids) about one lifecycle action: two executions, and the claim lets one
    drain: the other ends as `duplicate`."""
    world, (victim, *_) = world_for(config)
    world.add_service(CLUSTER, "web", desired=3, deregistration_delay_seconds=0)
    with Harness(world, config) as harness:
        action = world.asg.scale_in(GROUP, victim)
        harness.deliver({**action.event, "id": "a-second-event"})
        record = finish("a second event for one action", harness)
    outcomes = sorted(d.outcome for d in record.drains)
    assert outcomes == ["drained", "duplicate"]
    assert record.api_calls["ecs:UpdateContainerInstancesState"] == 1
    assert record.api_calls["autoscaling:CompleteLifecycleAction"] == 1
    duplicate = next(d for d in record.drains if d.outcome == "duplicate")
    # Resolve claims the drain: Resolve, Route by event kind, Report outcome (the last state).
    assert duplicate.state_transitions == 3
    assert_clean(record, world)


def test_action_already_completed_elsewhere(config):
    world, (victim, *_) = world_for(config)
    world.add_service(CLUSTER, "web", desired=3, deregistration_delay_seconds=120)
    with Harness(world, config) as harness:
        action = world.asg.scale_in(GROUP, victim)

        def operator_completes():
            boto3.client("autoscaling", region_name="us-east-1").complete_lifecycle_action(
                AutoScalingGroupName=GROUP,
                LifecycleHookName=config.lifecycle_hook_name,
                LifecycleActionToken=action.token,
                LifecycleActionResult="CONTINUE",
            )

        world.call_later(60, operator_completes)
        record = finish("action completed elsewhere", harness)
        (outcome,) = harness.outcomes()
    assert record.drains[0].status == "SUCCEEDED"
    # The instance went with the operator's completion; the drain ended without retrying.
    assert outcome["outcome"] == "action-ended-externally"
    assert record.api_calls.get("autoscaling:CompleteLifecycleAction", 0) <= 2


def test_action_expired_before_the_drain_ends(config):
    config = with_settings(config, heartbeat_timeout_seconds=1800)
    world, (victim, *_) = world_for(config)
    world.add_service(CLUSTER, "web", desired=3)
    world.run_task(CLUSTER, victim, "job", runs_for_seconds=7200)
    with Harness(world, config) as harness:
        action = world.asg.scale_in(GROUP, victim)
        # Someone abandons it by hand; the next heartbeat learns the action is gone.
        world.call_later(
            100,
            lambda: world.asg.dispatch(
                "CompleteLifecycleAction",
                {
                    "AutoScalingGroupName": GROUP,
                    "LifecycleHookName": config.lifecycle_hook_name,
                    "LifecycleActionToken": action.token,
                    "LifecycleActionResult": "ABANDON",
                },
            ),
        )
        record = finish("action ended under the drain", harness)
    assert record.drains[0].status == "SUCCEEDED"
    assert record.drains[0].outcome == "action-ended-externally"


def test_lambda_failures_and_ecs_throttling_mid_drain(config):
    world, (victim, *_) = world_for(config)
    world.add_service(CLUSTER, "web", desired=3, deregistration_delay_seconds=60)
    with Harness(world, config) as harness:
        harness.lambda_faults["PollTasks"] = [
            "Lambda.ServiceException",
            "Lambda.TooManyRequestsException",
        ]
        world.call_later(
            90, lambda: world.inject_faults("ecs", "ListTasks", code="ThrottlingException", count=6)
        )
        world.call_later(
            95,
            lambda: world.inject_faults(
                "autoscaling", "CompleteLifecycleAction", code="Throttling", count=3
            ),
        )
        world.asg.scale_in(GROUP, victim)
        record = finish("Lambda failures and throttling", harness)
    (drain,) = record.drains
    assert drain.outcome == "drained"
    assert record.api_calls["autoscaling:CompleteLifecycleAction"] == 4  # 3 throttled + 1
    assert_clean(record, world)


def test_cluster_deleted_mid_drain(config):
    world, (victim, *_) = world_for(config)
    world.add_service(CLUSTER, "web", desired=3, deregistration_delay_seconds=300)
    with Harness(world, config) as harness:
        world.call_later(45, lambda: world.ecs.delete_cluster(CLUSTER))
        world.asg.scale_in(GROUP, victim)
        record = finish("cluster deleted mid-drain", harness)
    (drain,) = record.drains
    (action,) = world.lifecycle_actions
    assert drain.outcome == "instance-gone"
    assert action.ended_by == "completed"


def test_instance_drops_out_of_the_cluster_mid_drain(config):
    world, (victim, *_) = world_for(config)
    world.add_service(CLUSTER, "web", desired=3, deregistration_delay_seconds=300)
    with Harness(world, config) as harness:
        world.call_later(45, lambda: world.ecs.deregister(victim))
        world.asg.scale_in(GROUP, victim)
        record = finish("instance leaves ListContainerInstances", harness)
    (action,) = world.lifecycle_actions
    assert record.drains[0].outcome in {"instance-gone", "drained"}
    assert action.ended_by == "completed"
