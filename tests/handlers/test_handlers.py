"""Each Lambda handler on its own, against moto (DynamoDB, SNS) and the world (ECS, ASG)."""

from __future__ import annotations

from datetime import datetime, timedelta
from unittest.mock import ANY

import boto3
import pytest
import resolve

from drainer import claims, outcome, progress
from drainer.clock import iso
from drainer.request import DrainRequest
from sandbox.harness import Harness
from tests.handlers.drains import first_heartbeat_gap, lifecycle_state, resolved
from tests.steps import ARN, step
from tests.worlds import CLUSTER, GROUP, with_settings, world_for


def test_a_lifecycle_drain_finds_its_container_instance_after_its_start_slot(env):
    world, (victim, *_), _ = env
    state = lifecycle_state(world, victim)
    assert state["request"]["route"] == "drain-lifecycle"
    assert state["request"]["deadline"] > state["request"]["eventTime"]
    assert state["target"] is None
    assert not any(call.service == "ecs" for call in world.api_calls)  # paced: none yet
    state = step("Start draining", state)
    assert state["target"]["cluster"] == CLUSTER
    assert state["target"]["status"] == "ACTIVE"
    assert state["progress"]["drain"] == {
        "changed": True,
        "previousStatus": "ACTIVE",
        "tasksCounted": 1,
        "countedAt": ANY,
    }


def test_an_instance_in_no_cluster_goes_to_completion(env):
    world, _, _ = env
    stray = world.add_instance(cluster=None, group=GROUP)
    state = step("Start draining", lifecycle_state(world, stray))
    assert (state["request"]["route"], state["target"]) == ("complete-only", None)
    assert (state["progress"]["verdict"], state["progress"]["ending"]) == (
        progress.COMPLETE,
        outcome.NOT_IN_CLUSTER,
    )


def test_resolve_refuses_other_groups_actions(env, config):
    world, (victim, *_), _ = env
    event = world.asg.scale_in(GROUP, victim).event
    event["detail"]["AutoScalingGroupName"] = "someone-elses-asg"
    state = resolved(world, event)
    assert state["request"]["route"] == "finish"
    assert "auto_scaling_group_names" in state["request"]["problem"]


def test_resolve_claims_a_lifecycle_drain_so_the_second_execution_is_a_duplicate(env):
    world, (victim, *_), _ = env
    event = world.asg.scale_in(GROUP, victim).event
    first = resolve.handler({"event": event, "executionArn": ARN}, None)["progress"]["claim"]
    # a Lambda retry of the same execution, then another execution
    again = resolve.handler({"event": event, "executionArn": ARN}, None)["progress"]["claim"]
    second = resolve.handler({"event": event, "executionArn": ARN + "-2"}, None)["progress"]
    assert (second["verdict"], second["ending"]) == (progress.FINISH, outcome.DUPLICATE)
    second = second["claim"]
    assert (first["duplicate"], again["duplicate"], second["duplicate"]) == (False, False, True)
    assert second["owner"] == ARN


def test_spot_drains_are_claimed_after_draining_not_by_resolve(env):
    world, (victim, *_), _ = env
    state = resolved(world, world.spot_interrupt(victim))
    assert state["request"]["route"] == "drain-spot"
    assert state["progress"]["claim"] == {"duplicate": False, "key": None, "owner": None}
    first = step("Start draining", state)["progress"]
    second = step("Start draining", state, ARN + "-2")["progress"]
    assert (first["claim"]["duplicate"], second["claim"]["duplicate"]) == (False, True)
    assert first["claim"]["key"] == f"spot#{victim}"
    # The claim comes after DRAINING, in the same step; a duplicate then ends the drain.
    assert first["drain"] == {
        "changed": True,
        "previousStatus": "ACTIVE",
        "tasksCounted": 1,
        "countedAt": ANY,
    }
    assert first["verdict"] == progress.WAIT
    assert (second["verdict"], second["ending"]) == (progress.FINISH, outcome.DUPLICATE)


def test_start_drain_sets_draining_once(env):
    world, (victim, *_), _ = env
    state = step("Start draining", lifecycle_state(world, victim))
    assert state["progress"]["drain"] == {
        "changed": True,
        "previousStatus": "ACTIVE",
        "tasksCounted": 1,
        "countedAt": ANY,
    }
    assert world.ecs.container_instance(victim).status == "DRAINING"
    state["target"]["status"] = "DRAINING"
    assert step("Start draining", state)["progress"]["drain"]["changed"] is False
    assert world.api_call_counts()["ecs:UpdateContainerInstancesState"] == 1


def test_dry_run_changes_nothing(env, config):
    from tests.conftest import install_settings

    world, (victim, *_), harness = env
    install_settings(
        config.model_copy(update={"dry_run": True}), "ecs-drainer-claims", harness.topic_arn
    )
    state = lifecycle_state(world, victim)
    assert state["request"]["dryRun"] is True
    drain = step("Start draining", state)["progress"]["drain"]
    assert drain["dryRun"] is True
    assert world.ecs.container_instance(victim).status == "ACTIVE"
    assert "ecs:UpdateContainerInstancesState" not in world.api_call_counts()


def test_poll_counts_tasks_that_are_still_stopping(env):
    world, (victim, *_), _ = env
    state = lifecycle_state(world, victim)
    state = step("Start draining", state)
    world.clock.run_for(45)  # replacements healthy; old tasks deregistering (60 s)
    instance = world.ecs.container_instance(victim)
    polled = step("Poll tasks", state)["progress"]
    assert instance.running_tasks_count == 0
    assert polled["tasks"]["stopping"] > 0
    assert polled["verdict"] in (progress.WAIT, progress.AWAIT)  # timer, or events mode


def test_heartbeat_and_an_action_that_ended(env):
    world, (victim, *_), _ = env
    state = lifecycle_state(world, victim)
    beat = step("Record heartbeat", state)["progress"]
    assert beat["heartbeats"] == 1
    (action,) = world.lifecycle_actions
    assert len(action.heartbeats) == 1
    step("Complete lifecycle action", state)
    ended = step("Record heartbeat", state)["progress"]
    assert ended["ending"] == "action-ended-externally"
    assert ended["verdict"] == progress.FINISH


def due_for_a_heartbeat(state: dict, config) -> dict:
    """The state as if the last heartbeat was one interval ago."""
    since = datetime.fromisoformat(state["progress"]["lastHeartbeatAt"].replace("Z", "+00:00"))
    long_ago = since - timedelta(seconds=config.heartbeat_timeout_seconds)
    return {**state, "progress": {**state["progress"], "lastHeartbeatAt": iso(long_ago)}}


def test_a_poll_records_the_heartbeat_that_falls_due(env, config):
    world, (victim, *_), _ = env
    state = due_for_a_heartbeat(step("Start draining", lifecycle_state(world, victim)), config)
    polled = step("Poll tasks", state)["progress"]
    (action,) = world.lifecycle_actions
    assert len(action.heartbeats) == 1
    assert polled["heartbeats"] == 1
    assert polled["lastHeartbeatAt"] == iso(world.clock.now())
    # The wait after it is the poll's own (awaited in events mode), not the heartbeat step.
    awaited = progress.AWAIT if config.ends_drains_on_events else progress.WAIT
    assert polled["verdict"] == awaited


def test_a_poll_whose_heartbeat_fails_leaves_it_to_the_heartbeat_step(env, config, monkeypatch):
    from drainer import lifecycle_action

    world, (victim, *_), _ = env
    state = due_for_a_heartbeat(step("Start draining", lifecycle_state(world, victim)), config)

    def throttled(request):
        raise RuntimeError("Rate exceeded")

    monkeypatch.setattr(lifecycle_action, "record_heartbeat", throttled)
    assert step("Poll tasks", state)["progress"]["verdict"] == progress.HEARTBEAT


def test_a_poll_finds_the_action_ended_when_recording_its_heartbeat(env, config, monkeypatch):
    from drainer import lifecycle_action

    world, (victim, *_), _ = env
    state = due_for_a_heartbeat(step("Start draining", lifecycle_state(world, victim)), config)

    def ended(request):
        raise lifecycle_action.ActionNotFound("No active Lifecycle Action found")

    monkeypatch.setattr(lifecycle_action, "record_heartbeat", ended)
    polled = step("Poll tasks", state)["progress"]
    assert (polled["verdict"], polled["ending"]) == (progress.FINISH, "action-ended-externally")


def test_complete_twice_is_not_an_error(env):
    world, (victim, *_), _ = env
    state = lifecycle_state(world, victim)
    first = step("Complete lifecycle action", state)["completion"]
    second = step("Complete lifecycle action", state)["completion"]
    assert first == {
        "completed": True,
        "alreadyEnded": False,
        "result": "CONTINUE",
        "leftTo": None,
        "ending": None,
    }
    assert second["alreadyEnded"] is True
    assert second["ending"] == outcome.ACTION_ENDED_EXTERNALLY
    assert world.lifecycle_actions[0].ended_by == "completed"


def test_stop_tasks_stops_standalone_tasks_only(env):
    world, (victim, *_), _ = env
    task = world.run_task(CLUSTER, victim, "batch")
    state = step("Start draining", lifecycle_state(world, victim))
    stopped_by = step("Stop standalone tasks", state)["progress"]
    assert stopped_by["tasksStopped"] == 1
    stopped = [t for t in world.tasks_on(victim) if t.desired_status == "STOPPED"]
    assert [t.arn for t in stopped] == [task]


def test_replace_skips_instances_outside_the_configured_groups(env):
    world, _, _ = env
    stranger = world.add_instance(cluster=CLUSTER, group=None)
    replacement = step(
        "Rebalance: replace instance", {"request": {"instanceId": stranger, "dryRun": False}}
    )["replacement"]
    assert replacement["replaced"] is False
    assert "no configured Auto Scaling group" in replacement["problem"]
    assert replacement["ending"] == outcome.REPLACEMENT_SKIPPED


def test_report_publishes_the_outcome_and_releases_the_claim(env):
    world, (victim, *_), harness = env
    state = lifecycle_state(world, victim)  # Resolve claimed the drain
    state["progress"].update(verdict=progress.COMPLETE, ending=outcome.DRAINED)
    state = step("Complete lifecycle action", state)
    summary = step("Report outcome", state)["outcome"]
    (published,) = harness.outcomes()
    assert summary["outcome"] == published["outcome"] == "drained"
    item = boto3.client("dynamodb", region_name="us-east-1").get_item(
        TableName="ecs-drainer-claims", Key={"pk": {"S": state["progress"]["claim"]["key"]}}
    )["Item"]
    assert (item["state"]["S"], item["outcome"]["S"]) == ("done", "drained")


def test_a_rescue_leaves_a_duplicates_action_to_the_owner(env):
    world, (victim, *_), _ = env
    event = world.asg.scale_in(GROUP, victim).event
    resolve.handler({"event": event, "executionArn": ARN}, None)
    duplicate = resolve.handler({"event": event, "executionArn": ARN + "-2"}, None)
    rescue = {**duplicate, "error": {"Error": "TypeError", "Cause": "report bug"}}
    completion = step("Rescue: complete lifecycle action", rescue, ARN + "-2", event)["completion"]
    assert completion == {
        "completed": False,
        "alreadyEnded": False,
        "result": None,
        "leftTo": ARN,
        "ending": None,
    }
    (action,) = world.lifecycle_actions
    assert action.active


def test_a_claim_that_cannot_be_read_lets_the_rescue_complete(env):
    world, (victim, *_), _ = env
    request = DrainRequest.from_state(lifecycle_state(world, victim)["request"])
    assert claims.owner_elsewhere("ecs-drainer-claims", request, ARN + "-2") == ARN
    assert claims.owner_elsewhere("ecs-drainer-claims", request, ARN) is None  # its own claim
    assert claims.owner_elsewhere("no-such-table", request, ARN + "-2") is None


# --- what a lifecycle event may drain, and what a test event may act on ---------------------
TEST_SOURCE = "ecs-drainer.test"


def forged(world, instance_id: str, source: str = TEST_SOURCE) -> dict:
    """A hand-written lifecycle event naming `instance_id` with a made-up token."""
    donor = world.add_instance(cluster=None, group=GROUP)
    event = world.asg.scale_in(GROUP, donor).event
    event["source"] = source
    event["detail"].update(
        EC2InstanceId=instance_id, LifecycleActionToken="c0ffee00-0000-4000-8000-00000000f0f0"
    )
    return event


@pytest.fixture
def test_source_env(config):
    config = with_settings(config, test_event_source=TEST_SOURCE, rebalance_policy="drain")
    world, ids = world_for(config, warm_pool=True)
    world.add_service(CLUSTER, "web", desired=3, deregistration_delay_seconds=60)
    with Harness(world, config) as harness:
        yield world, ids, harness


def test_resolve_drains_no_instance_outside_a_terminate_wait(test_source_env):
    world, (in_standby, *_), _ = test_source_env
    world.asg.enter_standby(in_standby)
    outside_groups = world.add_instance(cluster=CLUSTER, group=None)
    standby = resolved(world, forged(world, in_standby))
    assert standby["request"]["route"] == "finish"
    assert "Standby" in standby["request"]["problem"]
    unknown = resolved(world, forged(world, outside_groups))
    assert unknown["request"]["route"] == "already-ended"
    assert standby["target"] is None and unknown["target"] is None
    assert "ecs:UpdateContainerInstancesState" not in world.api_call_counts()


def test_resolve_drains_the_warm_pool_terminate_waits(test_source_env):
    world, (back_to_pool, *_), _ = test_source_env
    action = world.asg.scale_in(GROUP, back_to_pool, destination="WarmPool")
    assert world.asg.groups[GROUP].instances[back_to_pool].lifecycle_state == "Warmed:Pending:Wait"
    assert resolved(world, action.event)["request"]["route"] == "drain-lifecycle"
    # Without its Destination the same wait could be a launch hook's: not drained.
    action.event["detail"].pop("Destination")
    action.event["detail"].pop("Origin")
    assert resolved(world, action.event)["request"]["route"] == "finish"


def test_resolve_a_late_lifecycle_event_ends_as_already_ended(env):
    world, (victim, *_), _ = env
    state = lifecycle_state(world, victim)
    step("Complete lifecycle action", state)  # the drain is over, the instance gone
    (action,) = world.lifecycle_actions
    late = resolved(world, action.event)
    assert late["request"]["route"] == "already-ended"
    assert "already ended" in late["request"]["problem"]
    assert world.api_call_counts()["autoscaling:CompleteLifecycleAction"] == 1


@pytest.mark.parametrize(
    ("state", "destination", "standing"),
    [
        ("Terminating:Wait", None, "live"),
        ("Warmed:Terminating:Wait", "EC2", "live"),
        ("Warmed:Pending:Wait", "WarmPool", "live"),
        ("Warmed:Pending:Wait", None, "never"),  # a launch hook's wait
        ("Terminating:Proceed", None, "ended"),
        ("Terminated", None, "ended"),
        ("Warmed:Terminating:Proceed", "EC2", "ended"),
        ("Warmed:Stopped", "WarmPool", "ended"),  # back in the pool
        (None, None, "ended"),  # Auto Scaling no longer knows it
        ("InService", None, "never"),
        ("Standby", None, "never"),
        ("Pending:Wait", None, "never"),
        ("Warmed:Stopped", None, "never"),
    ],
)
def test_only_a_terminate_wait_is_a_live_action(state, destination, standing):
    from drainer.lifecycle_action import action_standing

    request = DrainRequest(
        kind="lifecycle",
        instance_id="i-0aaaaaaaaaaaaaaa1",
        reason="auto-scaling-termination",
        event_id=None,
        event_time="2026-01-05T09:00:00Z",
        source="aws.autoscaling",
        detail_type=None,
        destination=destination,
    )
    assert action_standing(request, state) == standing


def test_test_spot_and_rebalance_events_act_only_on_instances_that_opted_in(test_source_env):
    from drainer.opt_in import TEST_EVENTS_ALLOWED, TEST_EVENTS_TAG

    world, (opted_in, other, _), _ = test_source_env
    world.instances[opted_in].tags[TEST_EVENTS_TAG] = TEST_EVENTS_ALLOWED
    world.instances[other].tags[TEST_EVENTS_TAG] = "deny"
    spot = {**world.spot_interrupt(other), "source": TEST_SOURCE}
    rebalance = {**world.rebalance_recommendation(other), "source": TEST_SOURCE}
    for event in (spot, rebalance):
        state = resolved(world, event)
        assert state["request"]["route"] == "test-event-refused"
        assert TEST_EVENTS_TAG in state["request"]["problem"]
        assert state["target"] is None
    assert not any(call.service == "ecs" for call in world.api_calls)
    allowed = resolved(world, {**world.spot_interrupt(opted_in), "source": TEST_SOURCE})
    assert allowed["request"]["route"] == "drain-spot"


def test_a_real_spot_warning_is_not_asked_for_the_opt_in(test_source_env):
    world, (victim, *_), _ = test_source_env
    state = resolved(world, world.spot_interrupt(victim))  # aws.ec2, no tag
    assert state["request"]["route"] == "drain-spot"
    assert not any(call.service == "ec2" for call in world.api_calls)


def paced_state(world, victim, monkeypatch, slot_in: float) -> dict:
    """A lifecycle drain whose start slot is `slot_in` seconds after its event."""
    from drainer import pacing

    monkeypatch.setattr(pacing, "reserve", lambda *args: slot_in)
    return lifecycle_state(world, victim)


def test_start_draining_before_the_slot_calls_nothing_and_asks_for_the_heartbeat(
    env, config, monkeypatch
):
    world, (victim, *_), _ = env
    state = paced_state(world, victim, monkeypatch, 1_000)
    interval = first_heartbeat_gap(state)
    assert state["progress"]["nextWaitSeconds"] == interval  # cut at the first heartbeat
    world.clock.run_for(interval)
    calls = len(world.api_calls)
    waiting = step("Start draining", state)
    assert world.api_calls[calls:] == []  # neither ECS nor Auto Scaling
    assert waiting["target"] is None and waiting["progress"]["drain"] is None
    assert waiting["progress"]["verdict"] == progress.HEARTBEAT


def test_the_heartbeat_before_the_slot_waits_for_it_again(env, config, monkeypatch):
    world, (victim, other, *_), _ = env
    state = paced_state(world, victim, monkeypatch, 1_000)
    interval = first_heartbeat_gap(state)
    world.clock.run_for(interval)
    beat = step("Record heartbeat", step("Start draining", state))["progress"]
    (action,) = world.lifecycle_actions
    assert len(action.heartbeats) == 1 and beat["heartbeats"] == 1
    assert beat["lastHeartbeatAt"] == iso(world.clock.now())
    assert beat["verdict"] == progress.PACE
    assert beat["nextWaitSeconds"] == 1_000 - interval  # the slot, before the next heartbeat
    # A slot further off: again no later than the next heartbeat.
    farther = paced_state(world, other, monkeypatch, 5_000)
    world.clock.run_for(interval)
    beat = step("Record heartbeat", step("Start draining", farther))["progress"]
    full = config.heartbeat_timeout_seconds // 3  # after a heartbeat, a full interval
    assert (beat["verdict"], beat["nextWaitSeconds"]) == (progress.PACE, full)


def test_an_action_ended_before_the_slot_ends_the_drain(env, config, monkeypatch):
    world, (victim, *_), _ = env
    state = paced_state(world, victim, monkeypatch, 1_000)
    world.clock.run_for(config.heartbeat_timeout_seconds // 3)
    step("Complete lifecycle action", state)
    ended = step("Record heartbeat", step("Start draining", state))["progress"]
    assert (ended["verdict"], ended["ending"]) == (progress.FINISH, "action-ended-externally")
    assert not any(call.service == "ecs" for call in world.api_calls)


def test_start_draining_at_the_slot_starts_and_counts_heartbeats_from_the_last(
    env, config, monkeypatch
):
    world, (victim, *_), _ = env
    interval = config.heartbeat_timeout_seconds // 3
    state = paced_state(world, victim, monkeypatch, 900)
    world.clock.run_for(interval)
    state = step("Record heartbeat", step("Start draining", state))
    world.clock.run_for(state["progress"]["nextWaitSeconds"])
    started = step("Start draining", state)
    assert started["target"]["cluster"] == CLUSTER
    assert started["progress"]["drain"]["changed"] is True
    assert started["progress"]["verdict"] == progress.WAIT  # the loop, not the slot's rounds
    # The first poll's wait: up to the heartbeat due an interval after the one recorded.
    since = world.clock.now() - datetime.fromisoformat(
        started["progress"]["lastHeartbeatAt"].replace("Z", "+00:00")
    )
    assert 0 < started["progress"]["nextWaitSeconds"] <= interval - since.total_seconds() + 1


def test_start_draining_past_the_ceiling_starts_as_without_pacing(env, config, monkeypatch):
    world, (victim, *_), _ = env
    state = paced_state(world, victim, monkeypatch, 10**9)
    world.clock.run_for(config.heartbeat_timeout_seconds // 3)
    # The ceiling reached (a shorter max_drain_seconds): the first poll then meets it.
    past = {**state["request"], "deadline": iso(world.clock.now() - timedelta(seconds=1))}
    started = step("Start draining", {**state, "request": past})
    assert started["target"] is not None and started["progress"]["drain"] is not None
