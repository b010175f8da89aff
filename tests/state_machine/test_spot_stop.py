"""Spot `stop`/`hibernate`: the drained instance comes back ACTIVE, and nothing else is touched.

Plain functions on moto and the world, the synthesized rule and role, and scenarios where the
world's own events reach the real handler through the real rule pattern.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import reactivate_instance
import resolve
from moto.events.models import EventPattern

from drainer import aws, parking
from drainer.clock import parse_iso
from sandbox.harness import CLAIMS_TABLE, Harness
from simulated_aws import World
from stacks.config import DrainerConfig
from stacks.definition import REACTIVATE_FUNCTION
from stacks.event_patterns import (
    INSTANCE_STATE_DETAIL_TYPE,
    instance_draining_pattern,
    instance_return_pattern,
)
from tests.conftest import install_settings
from tests.steps import ARN, step
from tests.template.synthesis import (
    CLUSTERS,
    as_list,
    render,
    role_names,
    synthesized_for_two_clusters,
)
from tests.worlds import CLUSTER, GROUP, drain_world, world_for


def spot_world(config: DrainerConfig) -> tuple[World, str]:
    """A persistent Spot instance (in the cluster, in no group) carrying service tasks, and
    spare instances to take them over."""
    world, _ = world_for(config, instances=0)
    victim = world.add_instance(cluster=CLUSTER)
    world.add_service(
        CLUSTER, "web", desired=3, start_seconds=20, stop_seconds=5, deregistration_delay_seconds=30
    )
    for _ in range(2):
        world.add_instance(cluster=CLUSTER, group=GROUP)
    assert world.tasks_on(victim, live=True)
    return world, victim


@pytest.fixture
def env(config: DrainerConfig) -> Iterator[tuple[World, str, Harness]]:
    world, victim = spot_world(config)
    with Harness(world, config) as harness:
        # The handlers are called by hand here: no EventBridge delivery behind the test's back.
        world._subscribers.clear()
        yield world, victim, harness


def drained_and_claimed(world: World, victim: str, action: str) -> dict[str, Any]:
    """What the Spot branch does before its first wait: resolve, DRAINING then the claim."""
    event = world.spot_interrupt(victim, action)
    state = resolve.handler({"event": event, "executionArn": ARN}, None)
    return step("Start draining", state)


def park_note(instance_id: str) -> dict[str, Any] | None:
    return (
        boto3.client("dynamodb", region_name="us-east-1")
        .get_item(TableName=CLAIMS_TABLE, Key={"pk": {"S": parking.park_key(instance_id)}})
        .get("Item")
    )


def status(world: World, instance_id: str) -> str:
    return world.ecs.container_instance(instance_id).status


def state_changes(world: World, instance_id: str) -> list[dict[str, Any]]:
    return [
        event
        for event in world.events
        if event["detail-type"] == "ECS Container Instance State Change"
        and event["detail"]["ec2InstanceId"] == instance_id
    ]


@pytest.fixture(scope="module")
def synthesized() -> tuple[DrainerConfig, Any, dict[str, Any]]:
    return synthesized_for_two_clusters()


@pytest.fixture
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every AWS call the Lambda code makes, as `service:operation`."""
    made: list[str] = []
    real = aws.call

    def recording(service: str, operation: str, **params: Any) -> dict[str, Any]:
        made.append(f"{service}:{operation}")
        return real(service, operation, **params)

    monkeypatch.setattr(parking, "call", recording)
    return made


# --- parking: the Spot drain notes the instance ---------------------------------------------
@pytest.mark.parametrize("action", ["stop", "hibernate"])
def test_a_stop_or_hibernate_drain_parks_the_instance(env, action):
    world, victim, _ = env
    state = drained_and_claimed(world, victim, action)
    assert state["progress"]["claim"]["duplicate"] is False
    interruption = parse_iso(state["request"]["deadline"])
    assert state["progress"]["claim"]["parked"]["interruptionAt"] == state["request"]["deadline"]
    note = park_note(victim)
    assert note is not None
    assert note["containerInstanceArn"]["S"] == state["target"]["containerInstanceArn"]
    assert (note["cluster"]["S"], note["spotAction"]["S"]) == (CLUSTER, action)
    kept = int(note["expiresAt"]["N"]) - int(interruption.timestamp())
    assert kept == parking.KEEP_PARKED_SECONDS == 30 * 86_400


def test_a_terminate_drain_parks_nothing(env):
    world, victim, _ = env
    state = drained_and_claimed(world, victim, "terminate")
    assert "parked" not in state["progress"]["claim"]
    assert park_note(victim) is None


def test_an_instance_someone_else_drained_is_not_parked(env):
    world, victim, _ = env
    world.ecs._set_status(world.ecs.container_instance(victim), "DRAINING")  # an operator
    state = drained_and_claimed(world, victim, "stop")
    assert state["progress"]["drain"]["changed"] is False
    assert "parked" not in state["progress"]["claim"]
    assert park_note(victim) is None


def test_a_duplicate_warning_parks_nothing_more(env):
    world, victim, _ = env
    state = drained_and_claimed(world, victim, "stop")
    again = step("Start draining", state, ARN + "-2")["progress"]["claim"]
    assert again["duplicate"] is True and "parked" not in again


# --- reactivate: only the parked instance, only once it is back ------------------------------
def test_an_instance_that_was_not_parked_costs_one_get_item(env, aws_calls):
    world, victim, _ = env
    world.ecs._set_status(world.ecs.container_instance(victim), "DRAINING")  # an operator
    event = state_changes(world, victim)[-1]
    assert event["detail"]["status"] == "DRAINING"
    answer = reactivate_instance.handler(event, None)
    assert answer == {"reactivated": False, "reason": "not parked by the drainer"}
    assert aws_calls == ["dynamodb:get_item"]
    assert status(world, victim) == "DRAINING"


def test_the_drains_own_events_leave_a_parked_instance_draining(env, aws_calls):
    world, victim, _ = env
    drained_and_claimed(world, victim, "stop")
    aws_calls.clear()  # the note's PutItem
    world.clock.advance(125)  # the interruption: the instance stops
    for event in state_changes(world, victim):  # DRAINING, then the agent disconnecting
        # even with the pattern's status and agentConnected, as events from the shutdown may be
        event["detail"] |= {"status": "DRAINING", "agentConnected": True}
        reactivate_instance.handler(event, None)
    assert set(aws_calls) == {"dynamodb:get_item"}
    assert status(world, victim) == "DRAINING"
    assert park_note(victim) is not None


def test_the_instance_coming_back_is_set_active_once(env, aws_calls):
    world, victim, _ = env
    drained_and_claimed(world, victim, "stop")
    aws_calls.clear()  # the note's PutItem
    world.clock.advance(3600)
    world.start_instance(victim)
    returned = state_changes(world, victim)[-1]
    assert (returned["detail"]["status"], returned["detail"]["agentConnected"]) == (
        "DRAINING",
        True,
    )
    answer = reactivate_instance.handler(returned, None)
    assert answer["reactivated"] is True
    assert status(world, victim) == "ACTIVE"
    assert park_note(victim) is None
    assert aws_calls == [
        "dynamodb:get_item",
        "ecs:update_container_instances_state",
        "dynamodb:delete_item",
    ]
    # EventBridge delivers at least once: the second delivery finds no note.
    assert reactivate_instance.handler(returned, None)["reason"] == "not parked by the drainer"


def test_dry_run_only_logs_the_reactivation(env, config, capsys):
    world, victim, harness = env
    drained_and_claimed(world, victim, "stop")
    world.clock.advance(3600)
    world.start_instance(victim)
    install_settings(config.model_copy(update={"dry_run": True}), CLAIMS_TABLE, harness.topic_arn)
    answer = reactivate_instance.handler(state_changes(world, victim)[-1], None)
    assert answer["dryRun"] is True and answer["reactivated"] is False
    assert "DRY RUN: would set ACTIVE" in capsys.readouterr().out
    assert status(world, victim) == "DRAINING"


# --- the deployed rule and role ---------------------------------------------------------------
def test_the_rule_matches_only_connected_draining_instances_of_the_configured_clusters(
    synthesized,
):
    config, stack, template = synthesized
    rules = [
        resource["Properties"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Events::Rule"
        and resource["Properties"]["EventPattern"].get("source") == ["aws.ecs"]
        and resource["Properties"]["EventPattern"]["detail-type"] == [INSTANCE_STATE_DETAIL_TYPE]
        # the other rule on these events notes when DRAINING began (events mode)
        and resource["Properties"]["EventPattern"] != instance_draining_pattern(config)
    ]
    (rule,) = rules
    assert rule["EventPattern"] == instance_return_pattern(config)
    (target,) = rule["Targets"]
    function_id = stack.resolve(stack.get_logical_id(stack.reactivate_function.node.default_child))
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert "DeadLetterConfig" in target
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}

    pattern = EventPattern.load(json.dumps(rule["EventPattern"]))
    world = World()
    world.add_cluster("prod-a")
    world.add_cluster("prod-other")
    ours, other = world.add_instance(cluster="prod-a"), world.add_instance(cluster="prod-other")
    for instance in (ours, other):
        world.ecs._set_status(world.ecs.container_instance(instance), "DRAINING")
        world.reconnect_agent(instance)
    draining, gone, back = state_changes(world, ours)[-3:]
    assert [pattern.matches_event(e) for e in (draining, gone, back)] == [True, False, True]
    assert not any(pattern.matches_event(e) for e in state_changes(world, other))
    active = {**back, "detail": {**back["detail"], "status": "ACTIVE"}}
    forged = {**back, "source": "ecs-drainer.test"}
    assert not pattern.matches_event(active) and not pattern.matches_event(forged)


def test_the_reactivate_role_may_set_instances_of_the_configured_clusters_and_read_its_note(
    synthesized,
):
    _, stack, template = synthesized
    role = [k for k, v in role_names(stack, template).items() if v == REACTIVATE_FUNCTION.name]
    granted: dict[str, list[str]] = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        if [r["Ref"] for r in resource["Properties"]["Roles"]] != role:
            continue
        for statement in as_list(resource["Properties"]["PolicyDocument"]["Statement"]):
            assert statement["Effect"] == "Allow"
            for action in as_list(statement["Action"]):
                granted.setdefault(action, []).extend(
                    render(arn) for arn in as_list(statement["Resource"])
                )
    table = stack.resolve(stack.get_logical_id(stack.claims.node.default_child))
    assert sorted(granted.pop("ecs:UpdateContainerInstancesState")) == [
        f"arn:aws:ecs:us-east-1:123456789012:container-instance/{name}/*" for name in CLUSTERS
    ]
    for action in ("dynamodb:GetItem", "dynamodb:DeleteItem"):
        assert granted.pop(action) == [f"<{json.dumps({'Fn::GetAtt': [table, 'Arn']})}>"]
    queue = stack.resolve(stack.get_logical_id(stack.dead_letters.node.default_child))
    # What Lambda gives up on goes to the dead-letter queue (test_asynchronous_functions.py).
    assert granted.pop("sqs:SendMessage") == [f"<{json.dumps({'Fn::GetAtt': [queue, 'Arn']})}>"]
    assert {action.split(":")[0] for action in granted} == {"logs"}  # its own log group


# --- scenarios: the world's events, the real rule, the real handler ------------------------
def test_a_spot_instance_stopped_by_its_interruption_comes_back_active(config):
    world, victim = spot_world(config)
    with Harness(world, config) as harness:
        world.spot_interrupt(victim, "stop")
        harness.run()
        world.clock.run_for(2 * 3600, active=harness.running)  # stopped, capacity returns
        (stop,) = world.stops
        assert (world.instances[victim].state, status(world, victim)) == ("stopped", "DRAINING")
        world.start_instance(victim)
        harness.run()
        (outcome,) = harness.outcomes()
        note = park_note(victim)
    assert outcome["outcome"] == "spot-drained"
    assert stop.tasks_killed == []  # every task had moved before the stop
    assert world.terminations == []
    assert status(world, victim) == "ACTIVE"
    assert world.ecs.container_instance(victim).agent_connected is True
    assert note is None
    assert harness.invocations[REACTIVATE_FUNCTION.name] >= 2  # the drain's event, the return
    assert harness.lambda_errors == []


def test_a_terminated_spot_instance_leaves_nothing_parked(config):
    world, victim = spot_world(config)
    with Harness(world, config) as harness:
        world.spot_interrupt(victim)
        harness.run()
        world.clock.run_for(600, active=harness.running)
        (outcome,) = harness.outcomes()
        notes = boto3.client("dynamodb", region_name="us-east-1").scan(TableName=CLAIMS_TABLE)
    assert outcome["outcome"] == "spot-drained"
    assert [t.instance_id for t in world.terminations] == [victim]
    assert not [i for i in notes["Items"] if i["pk"]["S"].startswith("parked#")]
    assert harness.invocations[REACTIVATE_FUNCTION.name] >= 1  # the drain's DRAINING event
    assert harness.lambda_errors == []


def test_an_instance_drained_for_a_lifecycle_action_is_not_reactivated(config):
    world, (victim,) = drain_world(config)
    with Harness(world, config) as harness:
        world.asg.scale_in(GROUP, victim)
        world.clock.run_for(20, active=harness.running)
        assert status(world, victim) == "DRAINING"
        world.reconnect_agent(victim)  # connected and DRAINING again, as a return would be
        harness.run()
        (outcome,) = harness.outcomes()
    assert outcome["outcome"] == "drained"
    updates = [c.params["status"] for c in world.api_calls if c.operation.startswith("Update")]
    assert updates == ["DRAINING"]
    draining = [e for e in state_changes(world, victim) if e["detail"]["status"] == "DRAINING"]
    # DRAINING, the reconnection, and each of the 4 tasks giving its resources back as it
    # stopped on the DRAINING instance: all matched the rule
    assert sum(e["detail"]["agentConnected"] for e in draining) == 2 + 4
    assert harness.invocations[REACTIVATE_FUNCTION.name] == 2 + 4
    assert harness.lambda_errors == []
