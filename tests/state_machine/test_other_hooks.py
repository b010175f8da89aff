"""Another terminate hook on the same group (ECS managed instance draining's), on the real state
machine: both hooks run, and the instance goes only when every hook's action has ended.

Auto Scaling "waits for all hooks to finish before terminating an instance" (ECS developer guide,
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/managed-instance-draining.html). The
drainer's rule matches only its own hook's events, so it never sees, heartbeats or completes the
other action; nobody completes it here, as when its owner is slower or gone.
"""

from __future__ import annotations

import boto3

from sandbox.harness import Harness
from sandbox.world_setup import ECS_MANAGED_HOOK, demo_world, describe
from tests.executions import log_lines
from tests.worlds import CLUSTER, GROUP, drain_world

ECS_MANAGED_HEARTBEAT_SECONDS = 3600


def lifecycle_state(instance_id: str) -> str:
    autoscaling = boto3.client("autoscaling", region_name="us-east-1")
    found = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])
    return found["AutoScalingInstances"][0]["LifecycleState"]


def test_our_drain_completes_our_hook_and_the_instance_waits_for_the_other(config):
    world, (victim,) = drain_world(config)
    world.add_hook(GROUP, ECS_MANAGED_HOOK, heartbeat_timeout=ECS_MANAGED_HEARTBEAT_SECONDS)
    with Harness(world, config) as harness:
        ours = world.asg.scale_in(GROUP, victim)
        (theirs,) = [action for action in world.lifecycle_actions if action is not ours]
        harness.run()
        (drain,) = harness.record().drains
        assert drain.outcome == "drained"
        assert (ours.hook, ours.ended_by) == (config.lifecycle_hook_name, "completed")
        # Ours is complete, theirs still open: the instance stays, drained and waiting.
        assert theirs.active and theirs.hook == ECS_MANAGED_HOOK
        assert world.terminations == []
        assert lifecycle_state(victim) == "Terminating:Wait"
        assert world.tasks_on(victim, live=True) == []
        # Only our hook's events reached the drainer: one execution, one action touched.
        assert [delivery.rule for delivery in harness.deliveries] == [drain.kind]
        assert theirs.heartbeats == [] and theirs.completed_at is None

        # Then the other hook times out, with its default result CONTINUE: the instance goes.
        world.clock.advance((theirs.heartbeat_deadline - world.clock.now()).total_seconds())
        (termination,) = world.terminations
        assert (termination.instance_id, termination.cause) == (victim, "heartbeat-timeout")
        assert termination.time == theirs.heartbeat_deadline
        assert [status for _, status in termination.tasks_killed if status != "STOPPED"] == []


def test_the_other_hook_completing_first_does_not_cut_our_drain_short(config):
    world, (victim,) = drain_world(config)
    world.add_hook(GROUP, ECS_MANAGED_HOOK, heartbeat_timeout=ECS_MANAGED_HEARTBEAT_SECONDS)
    world.run_task(CLUSTER, victim, "report", runs_for_seconds=1200)
    with Harness(world, config) as harness:
        ours = world.asg.scale_in(GROUP, victim)
        (theirs,) = [action for action in world.lifecycle_actions if action is not ours]
        # The other party is done at once (its own drain does not wait for standalone tasks).
        boto3.client("autoscaling", region_name="us-east-1").complete_lifecycle_action(
            LifecycleHookName=ECS_MANAGED_HOOK,
            AutoScalingGroupName=GROUP,
            LifecycleActionToken=theirs.token,
            LifecycleActionResult="CONTINUE",
        )
        assert world.terminations == []
        harness.run()
        record = harness.record()
    (drain,) = record.drains
    assert drain.outcome == "drained" and drain.virtual_seconds >= 1200
    (termination,) = world.terminations
    assert termination.time == ours.completed_at
    assert record.tasks_killed == []


def test_the_sandbox_can_seed_the_group_with_a_second_hook(config):
    # `python -m sandbox.server --other-hook` (docs/SANDBOX.md)
    plain = demo_world(config)
    seeded = demo_world(config, ECS_MANAGED_HOOK)
    (group,) = seeded.asg.groups.values()
    assert [hook.name for hook in group.terminate_hooks()] == [
        config.lifecycle_hook_name,
        ECS_MANAGED_HOOK,
    ]
    assert len(next(iter(plain.asg.groups.values())).terminate_hooks()) == 1
    assert (
        f"Auto Scaling group {group.name}: terminate hooks {config.lifecycle_hook_name} "
        f"(heartbeat timeout {config.heartbeat_timeout_seconds} s), {ECS_MANAGED_HOOK} "
        "(heartbeat timeout 3600 s)"
    ) in describe(seeded)


def _drain_logs(config, capsys, *, other_hook: bool, faults: str | None = None):
    world, (victim,) = drain_world(config)
    if other_hook:
        world.add_hook(GROUP, ECS_MANAGED_HOOK, heartbeat_timeout=ECS_MANAGED_HEARTBEAT_SECONDS)
    if faults:
        world.inject_faults("autoscaling", "DescribeLifecycleHooks", code=faults, count=10)
    capsys.readouterr()
    with Harness(world, config) as harness:
        world.asg.scale_in(GROUP, victim)
        harness.run()
        (outcome,) = harness.outcomes()
        record = harness.record()
    lines = list(log_lines(capsys.readouterr().out))
    (metric,) = [line for line in lines if "_aws" in line and "Drains" in line]
    return outcome, record, lines, metric


def test_the_drain_logs_and_reports_the_other_terminate_hook(config, capsys):
    outcome, record, lines, metric = _drain_logs(config, capsys, other_hook=True)
    (noticed,) = [line for line in lines if "other terminate hooks" in line.get("message", "")]
    assert noticed["message"] == (
        f"other terminate hooks on the group: {ECS_MANAGED_HOOK} — the instance goes only when "
        "each is complete"
    )
    assert noticed["otherTerminateHooks"] == [ECS_MANAGED_HOOK]
    assert (outcome["outcome"], outcome["otherTerminateHooks"]) == ("drained", [ECS_MANAGED_HOOK])
    assert metric["OtherTerminateHooks"] == 1
    assert record.api_calls["autoscaling:DescribeLifecycleHooks"] == 1


def test_a_group_with_only_our_hook_reports_none(config, capsys):
    outcome, _, lines, metric = _drain_logs(config, capsys, other_hook=False)
    assert not [line for line in lines if "other terminate hooks" in line.get("message", "")]
    assert (outcome["outcome"], outcome["otherTerminateHooks"]) == ("drained", [])
    assert metric["OtherTerminateHooks"] == 0


def test_a_failing_look_up_changes_nothing_in_the_drain(config, capsys):
    _, plain_record, _, _ = _drain_logs(config, capsys, other_hook=True)
    for code in ("Throttling", "AccessDenied"):
        outcome, record, lines, metric = _drain_logs(config, capsys, other_hook=True, faults=code)
        (warned,) = [line for line in lines if "could not list" in line.get("message", "")]
        assert code in warned["error"]
        assert (outcome["outcome"], outcome["otherTerminateHooks"]) == ("drained", [])
        assert metric["OtherTerminateHooks"] == 0
        # The same drain, step for step and second for second.
        (drain,), (plain_drain,) = record.drains, plain_record.drains
        assert (drain.state_transitions, drain.virtual_seconds) == (
            plain_drain.state_transitions,
            plain_drain.virtual_seconds,
        )
