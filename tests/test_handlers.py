"""Each Lambda handler on its own, against moto (DynamoDB, SNS) and the world (ECS, ASG)."""

from __future__ import annotations

import boto3
import claim
import complete_action
import poll_tasks
import pytest
import record_heartbeat
import replace_instance
import report_outcome
import resolve
import start_drain
import stop_tasks

from drainer import claims
from drainer.request import DrainRequest
from tests.harness import Harness
from tests.worlds import CLUSTER, GROUP, world_for

ARN = "arn:aws:states:us-east-1:123456789012:execution:ecs-drainer:one"


@pytest.fixture
def env(config):
    world, ids = world_for(config)
    world.add_service(CLUSTER, "web", desired=3, deregistration_delay_seconds=60)
    with Harness(world, config) as harness:
        yield world, ids, harness


def resolved(world, event) -> dict:
    return resolve.handler({"event": event, "executionArn": ARN}, None)


def lifecycle_state(world, instance_id) -> dict:
    action = world.asg.scale_in(GROUP, instance_id)
    return resolved(world, action.event)


def test_resolve_finds_the_container_instance(env):
    world, (victim, *_), _ = env
    state = lifecycle_state(world, victim)
    assert state["request"]["route"] == "drain-lifecycle"
    assert state["target"]["cluster"] == CLUSTER
    assert state["target"]["status"] == "ACTIVE"
    assert state["request"]["deadline"] > state["request"]["eventTime"]


def test_resolve_routes_an_instance_in_no_cluster_to_completion(env):
    world, _, _ = env
    stray = world.add_instance(cluster=None, group=GROUP)
    state = lifecycle_state(world, stray)
    assert (state["request"]["route"], state["target"]) == ("complete-only", None)


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
    first = resolve.handler({"event": event, "executionArn": ARN}, None)["claim"]
    again = resolve.handler({"event": event, "executionArn": ARN}, None)["claim"]  # Lambda retry
    second = resolve.handler({"event": event, "executionArn": ARN + "-2"}, None)["claim"]
    assert (first["duplicate"], again["duplicate"], second["duplicate"]) == (False, False, True)
    assert second["owner"] == ARN


def test_spot_drains_are_claimed_after_draining_not_by_resolve(env):
    world, (victim, *_), _ = env
    state = resolved(world, world.spot_interrupt(victim))
    assert state["request"]["route"] == "drain-spot"
    assert state["claim"] == {"duplicate": False, "key": None, "owner": None}
    first = claim.handler({"state": state, "executionArn": ARN}, None)["claim"]
    second = claim.handler({"state": state, "executionArn": ARN + "-2"}, None)["claim"]
    assert (first["duplicate"], second["duplicate"]) == (False, True)
    assert first["key"] == f"spot#{victim}"


def test_start_drain_sets_draining_once(env):
    world, (victim, *_), _ = env
    state = lifecycle_state(world, victim)
    first = start_drain.handler({"state": state}, None)["progress"]["drain"]
    assert first == {"changed": True, "previousStatus": "ACTIVE"}
    assert world.ecs.container_instance(victim).status == "DRAINING"
    state["target"]["status"] = "DRAINING"
    assert start_drain.handler({"state": state}, None)["progress"]["drain"]["changed"] is False
    assert world.api_call_counts()["ecs:UpdateContainerInstancesState"] == 1


def test_dry_run_changes_nothing(env, config):
    from tests.conftest import install_settings

    world, (victim, *_), harness = env
    install_settings(
        config.model_copy(update={"dry_run": True}), "ecs-drainer-claims", harness.topic_arn
    )
    state = lifecycle_state(world, victim)
    assert state["request"]["dryRun"] is True
    drain = start_drain.handler({"state": state}, None)["progress"]["drain"]
    assert drain["dryRun"] is True
    assert world.ecs.container_instance(victim).status == "ACTIVE"
    assert "ecs:UpdateContainerInstancesState" not in world.api_call_counts()


def test_poll_counts_tasks_that_are_still_stopping(env):
    world, (victim, *_), _ = env
    state = lifecycle_state(world, victim)
    state = start_drain.handler({"state": state}, None)
    world.clock.run_for(45)  # replacements healthy; old tasks deregistering (60 s)
    instance = world.ecs.container_instance(victim)
    progress = poll_tasks.handler({"state": state, "executionArn": ARN}, None)["progress"]
    assert instance.running_tasks_count == 0
    assert progress["tasks"]["stopping"] > 0
    assert progress["verdict"] == "wait"


def test_heartbeat_and_an_action_that_ended(env):
    world, (victim, *_), _ = env
    state = lifecycle_state(world, victim)
    beat = record_heartbeat.handler({"state": state}, None)["progress"]
    assert beat["heartbeats"] == 1
    (action,) = world.lifecycle_actions
    assert len(action.heartbeats) == 1
    complete_action.handler({"state": state}, None)
    ended = record_heartbeat.handler({"state": state}, None)["progress"]
    assert ended["verdict"] == "action-ended"


def test_complete_twice_is_not_an_error(env):
    world, (victim, *_), _ = env
    state = lifecycle_state(world, victim)
    first = complete_action.handler({"state": state}, None)["completion"]
    second = complete_action.handler({"state": state}, None)["completion"]
    assert first == {"completed": True, "alreadyEnded": False, "result": "CONTINUE"}
    assert second["alreadyEnded"] is True
    assert world.lifecycle_actions[0].ended_by == "completed"


def test_stop_tasks_stops_standalone_tasks_only(env):
    world, (victim, *_), _ = env
    task = world.run_task(CLUSTER, victim, "batch")
    state = lifecycle_state(world, victim)
    progress = stop_tasks.handler({"state": state, "scope": "standalone"}, None)["progress"]
    assert progress["tasksStopped"] == 1
    stopped = [t for t in world.tasks_on(victim) if t.desired_status == "STOPPED"]
    assert [t.arn for t in stopped] == [task]


def test_replace_skips_instances_outside_the_configured_groups(env):
    world, _, _ = env
    stranger = world.add_instance(cluster=CLUSTER, group=None)
    progress = replace_instance.handler(
        {"state": {"request": {"instanceId": stranger, "dryRun": False}, "progress": {}}}, None
    )["progress"]
    assert progress["replaced"] is False
    assert "no configured Auto Scaling group" in progress["replaceProblem"]


def test_report_publishes_the_outcome_and_releases_the_claim(env):
    world, (victim, *_), harness = env
    state = lifecycle_state(world, victim)  # Resolve claimed the drain
    state["progress"]["verdict"] = "drained"
    state["completion"] = {"completed": True, "alreadyEnded": False, "result": "CONTINUE"}
    summary = report_outcome.handler({"state": state, "executionArn": ARN}, None)["outcome"]
    (published,) = harness.outcomes()
    assert summary["outcome"] == published["outcome"] == "drained"
    item = boto3.client("dynamodb", region_name="us-east-1").get_item(
        TableName="ecs-drainer-claims", Key={"pk": {"S": state["claim"]["key"]}}
    )["Item"]
    assert (item["state"]["S"], item["outcome"]["S"]) == ("done", "drained")


def test_a_rescue_leaves_a_duplicates_action_to_the_owner(env):
    world, (victim, *_), _ = env
    event = world.asg.scale_in(GROUP, victim).event
    resolve.handler({"event": event, "executionArn": ARN}, None)
    duplicate = resolve.handler({"event": event, "executionArn": ARN + "-2"}, None)
    rescue = {**duplicate, "error": {"Error": "TypeError", "Cause": "report bug"}}
    completion = complete_action.handler(
        {"state": rescue, "executionArn": ARN + "-2", "executionInput": event}, None
    )["completion"]
    assert completion == {"completed": False, "alreadyEnded": False, "result": None, "leftTo": ARN}
    (action,) = world.lifecycle_actions
    assert action.active


def test_a_claim_that_cannot_be_read_lets_the_rescue_complete(env):
    world, (victim, *_), _ = env
    request = DrainRequest.from_state(lifecycle_state(world, victim)["request"])
    assert claims.owner_elsewhere("ecs-drainer-claims", request, ARN + "-2") == ARN
    assert claims.owner_elsewhere("ecs-drainer-claims", request, ARN) is None  # its own claim
    assert claims.owner_elsewhere("no-such-table", request, ARN + "-2") is None
