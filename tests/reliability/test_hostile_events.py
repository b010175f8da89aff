"""Bad input: malformed, truncated, wrongly typed, hostile and foreign events.

Each event goes through the real rules' patterns (moto's EventPattern over
stacks.event_patterns), the real parsers, the real Resolve / CompleteAction handlers and the
rescue function, against the simulated world; a bounded number of batches also runs through the
real state machine (sandbox.harness). Every event must end in a clear, logged error or a clean
"not ours" / "invalid-event" outcome; no action it names may be left open; nothing outside the
configured clusters, groups and hook is ever drained or completed; every execution ends.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from datetime import UTC, datetime
from typing import Any

import boto3
import complete_action
import rescue_execution
import resolve as resolve_lambda
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from moto.events.models import EventPattern

from drainer import outcome as outcomes
from drainer import request as req
from drainer.parsers import parse_event, salvage
from drainer.parsers.fields import INSTANCE_ID, MAX_TEXT, TOKEN
from drainer.request import EventError
from drainer.settings import settings as drainer_settings
from sandbox.deployment import create_claims_table
from sandbox.harness import Harness
from simulated_aws import LifecycleAction, World
from stacks.config import DrainerConfig, load_config, validate
from stacks.event_patterns import event_patterns
from tests.conftest import ROOT, install_settings
from tests.reliability import tally
from tests.reliability.hostile import (
    MACHINE_CASES,
    Recipe,
    bases_for,
    identifies,
    machine_recipes,
    named_cases,
    recipes,
)

# The shipped configuration with the test source on: the case where anyone can put events.
CONFIG: DrainerConfig = validate(
    {**load_config(ROOT / "drainer.toml").model_dump(), "test_event_source": "ecs-drainer.test"}
)
CLUSTER, GROUP = CONFIG.cluster_names[0], CONFIG.auto_scaling_group_names[0]
HOOK = CONFIG.lifecycle_hook_name
OTHER_CLUSTER, OTHER_GROUP = "someone-elses-cluster", "someone-elses-asg"
PATTERNS = {name: EventPattern.load(json.dumps(p)) for name, p in event_patterns(CONFIG).items()}
RULE_OF_KIND = {
    req.LIFECYCLE: "LifecycleTerminate",
    req.SPOT: "SpotInterruption",
    req.REBALANCE: "RebalanceRecommendation",
}
KINDS = {req.LIFECYCLE, req.SPOT, req.REBALANCE, req.INVALID}
DRAIN_ROUTES = {
    req.ROUTE_LIFECYCLE,
    req.ROUTE_SPOT,
    req.ROUTE_REBALANCE_DRAIN,
    req.ROUTE_REBALANCE_REPLACE,
}
ROUTES = DRAIN_ROUTES | {
    req.ROUTE_COMPLETE_ONLY,
    req.ROUTE_IGNORE,
    req.ROUTE_FINISH,
    req.ROUTE_ALREADY_ENDED,
    req.ROUTE_TEST_EVENT_REFUSED,
}
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:ecs-drainer:hostile"
MUTATING_ECS = {"UpdateContainerInstancesState", "StopTask"}

# Fixed identities for the layer that needs no world.
FIXED = {
    "ours": ("c0ffee00-0000-4000-8000-000000000001", GROUP, HOOK, "i-0aaaaaaaaaaaaaaa1"),
    "other_group": (
        "c0ffee00-0000-4000-8000-000000000002",
        OTHER_GROUP,
        HOOK,
        "i-0bbbbbbbbbbbbbbb2",
    ),
    "other_cluster_instance": "i-0ccccccccccccccc3",
}
FIXED_BASES = bases_for(
    ours=FIXED["ours"],
    other_group=FIXED["other_group"],
    other_cluster_instance=FIXED["other_cluster_instance"],
    test_source=CONFIG.test_event_source or "",
)

PURE = settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
WITH_WORLD = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def matching_rules(event: Any) -> set[str]:
    """The rules EventBridge would start an execution for (an event is always an object)."""
    if not isinstance(event, dict):
        return set()
    return {name for name, pattern in PATTERNS.items() if pattern.matches_event(event)}


def values(field: Any) -> set[str]:
    """The strings a field offers a pattern: EventBridge matches an array field when any of its
    elements matches."""
    return {
        value for value in (field if isinstance(field, list) else [field]) if isinstance(value, str)
    }


def detail_of(event: Any) -> dict[str, Any]:
    detail = event.get("detail") if isinstance(event, dict) else None
    return detail if isinstance(detail, dict) else {}


# --- layer 1: patterns and parsers, no AWS -------------------------------------------------------
@PURE
@named_cases
@given(recipe=recipes)
def test_rules_and_parsers_agree_on_hostile_events(recipe: Recipe) -> None:
    event = recipe.build(FIXED_BASES)
    matched = matching_rules(event)
    tally.case("rules + parsers")
    if isinstance(event, dict):
        sources = values(event.get("source"))
        detail = detail_of(event)
        if "LifecycleTerminate" in matched:
            assert {"aws.autoscaling", CONFIG.test_event_source} & sources
            assert GROUP in values(detail.get("AutoScalingGroupName"))
            assert HOOK in values(detail.get("LifecycleHookName"))
            assert "autoscaling:EC2_INSTANCE_TERMINATING" in values(
                detail.get("LifecycleTransition")
            )
        if matched & {"SpotInterruption", "RebalanceRecommendation"}:
            assert {"aws.ec2", CONFIG.test_event_source} & sources
        if not {"aws.autoscaling", "aws.ec2", CONFIG.test_event_source} & sources:
            assert matched == set(), "a rule matched a source that is neither AWS's nor the test's"

    try:
        request = parse_event(event, CONFIG.test_event_source, NOW)
    except EventError as problem:
        assert problem.field and problem.field in str(problem)
        request = salvage(event, str(problem), NOW)
        assert request.kind == req.INVALID
        assert request.problem == str(problem)
    else:
        # Whatever the parser accepts, the rule of its kind lets through (and nothing else).
        ours = (request.auto_scaling_group_name, request.lifecycle_hook_name) == (GROUP, HOOK)
        if request.kind != req.LIFECYCLE or ours:
            assert RULE_OF_KIND[request.kind] in matched
        assert INSTANCE_ID.fullmatch(request.instance_id or "")
        if request.kind == req.LIFECYCLE:
            assert TOKEN.fullmatch(request.lifecycle_action_token or "")
    # Nothing hostile survives into the request the state machine carries.
    assert request.instance_id is None or INSTANCE_ID.fullmatch(request.instance_id)
    token = request.lifecycle_action_token
    assert token is None or TOKEN.fullmatch(token)
    for value in request.to_state().values():
        assert not isinstance(value, str) or len(value) <= MAX_TEXT + 200
    assert datetime.fromisoformat(request.event_time.replace("Z", "+00:00")) <= NOW
    json.dumps(request.to_state())


# --- layer 2: the Resolve and CompleteAction handlers against the world ---------------------------
def _world() -> World:
    world = World()
    world.add_cluster(CLUSTER)
    world.add_cluster(OTHER_CLUSTER)
    world.add_group(GROUP, hook_name=HOOK, heartbeat_timeout=CONFIG.heartbeat_timeout_seconds)
    world.add_group(OTHER_GROUP, hook_name=HOOK, heartbeat_timeout=600)
    return world


def _two_actions(world: World) -> tuple[LifecycleAction, LifecycleAction, str]:
    """A terminating instance of ours, one of another group (in another cluster), and an
    instance of another cluster that is in no group."""
    mine = world.add_instance(cluster=CLUSTER, group=GROUP)
    theirs = world.add_instance(cluster=OTHER_CLUSTER, group=OTHER_GROUP)
    loner = world.add_instance(cluster=OTHER_CLUSTER)
    ours = world.asg.scale_in(GROUP, mine)
    other = world.asg.scale_in(OTHER_GROUP, theirs)
    assert ours is not None and other is not None
    return ours, other, loner


def _bases(ours: LifecycleAction, other: LifecycleAction, loner: str) -> dict[str, Any]:
    return bases_for(
        ours=(ours.token, GROUP, HOOK, ours.instance_id),
        other_group=(other.token, OTHER_GROUP, HOOK, other.instance_id),
        other_cluster_instance=loner,
        test_source=CONFIG.test_event_source or "",
    )


def _logs(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _assert_no_foreign_writes(world: World, first_call: int) -> None:
    for call in world.api_calls[first_call:]:
        assert not (call.service == "ecs" and call.operation in MUTATING_ECS), call
        if call.service == "autoscaling" and not call.operation.startswith("Describe"):
            assert call.operation == "CompleteLifecycleAction", call
            assert call.params["AutoScalingGroupName"] == GROUP, call.params
            assert call.params["LifecycleHookName"] == HOOK, call.params
            assert call.params["LifecycleActionResult"] == "CONTINUE", call.params


@contextmanager
def _lambda_aws(world: World) -> Iterator[None]:
    """What the handlers call: the world for ECS and Auto Scaling, moto for the claims table
    (Resolve claims lifecycle drains) and the outcome topic."""
    with mock_aws():
        table = create_claims_table(boto3.client("dynamodb", region_name="us-east-1"))
        topic = boto3.client("sns", region_name="us-east-1").create_topic(Name="outcomes")
        install_settings(CONFIG, table=table, topic_arn=topic["TopicArn"])
        with world.install():
            yield


def test_handlers_complete_only_the_actions_hostile_events_name() -> None:
    world = _world()
    with _lambda_aws(world):

        @WITH_WORLD
        @named_cases
        @given(recipe=recipes)
        def check(recipe: Recipe) -> None:
            ours, other, loner = _two_actions(world)
            event = recipe.build(_bases(ours, other, loner))
            matched = matching_rules(event)
            names_ours = identifies(
                event, token=ours.token, group=GROUP, hook=HOOK, instance_id=ours.instance_id
            )
            first_call = len(world.api_calls)
            printed = io.StringIO()
            with redirect_stdout(printed):
                resolved = resolve_lambda.resolve(
                    event, EXECUTION, drainer_settings(), world.clock.now()
                )
                request = resolved["request"]
                if request["route"] in (req.ROUTE_LIFECYCLE, req.ROUTE_COMPLETE_ONLY):
                    # The normal path ends by completing the resolved request's action …
                    complete_action.handler({"state": resolved, "executionArn": EXECUTION}, None)
                # … and the rescue path re-reads the raw event after any failure.
                rescued = complete_action.handler(
                    {
                        "state": {"error": {"Error": "Injected", "Cause": "hostile"}},
                        "executionInput": event,
                        "executionArn": EXECUTION,
                    },
                    None,
                )
            tally.case("Resolve + CompleteAction handlers")
            logs = _logs(printed.getvalue())
            json.dumps(resolved)
            assert request["kind"] in KINDS and request["route"] in ROUTES
            if request["kind"] == req.INVALID:
                (error,) = [line for line in logs if line["level"] == "ERROR"]
                assert error["message"] == "unusable event"
                assert error["field"] and error["field"] in error["problem"]
            if request["route"] in DRAIN_ROUTES:
                assert RULE_OF_KIND[request["kind"]] in matched
                # A lifecycle drain finds its container instance after its start slot.
                if request["route"] != req.ROUTE_LIFECYCLE:
                    assert resolved["target"]["cluster"] == CLUSTER
                assert request["instanceId"] == ours.instance_id
            if not matched:
                assert request["route"] not in DRAIN_ROUTES
            _assert_no_foreign_writes(world, first_call)
            assert other.active, "an action of another group was touched"
            if "LifecycleTerminate" in matched and names_ours:
                assert request["route"] in (req.ROUTE_LIFECYCLE, req.ROUTE_COMPLETE_ONLY)
                assert ours.ended_by == "completed", (request, rescued)
                tally.ACTIONS_CHECKED["hostile events (handlers)"] += 1
            if not ours.active:
                assert names_ours, "an action was completed for an event that does not name it"

        check()


def test_rescue_function_completes_what_the_failed_execution_named() -> None:
    world = _world()
    with _lambda_aws(world):

        @settings(WITH_WORLD, max_examples=100)
        @given(
            recipe=recipes,
            status=st.sampled_from(["FAILED", "TIMED_OUT", "ABORTED"]),
            garble=st.sampled_from([None, "", "{", "[1, 2", "null", '"text"', "{}"]),
        )
        def check(recipe: Recipe, status: str, garble: str | None) -> None:
            ours, other, loner = _two_actions(world)
            event = recipe.build(_bases(ours, other, loner))
            names_ours = identifies(
                event, token=ours.token, group=GROUP, hook=HOOK, instance_id=ours.instance_id
            )
            detail = {
                "status": status,
                "input": json.dumps(event) if garble is None else garble,
            }
            first_call = len(world.api_calls)
            with redirect_stdout(io.StringIO()):
                result = rescue_execution.rescue(detail)
            tally.case("rescue function")
            assert result["rescued"] is True
            assert result["outcome"]["outcome"] == outcomes.FAILED
            assert result["outcome"]["error"]["Error"].startswith("Execution")
            _assert_no_foreign_writes(world, first_call)
            assert other.active
            if garble is None and names_ours:
                assert ours.ended_by == "completed"
                tally.ACTIONS_CHECKED["hostile events (rescue function)"] += 1
            if not ours.active:
                assert garble is None and names_ours

        check()


GAP_FORGED = (
    "a lifecycle event sent from the test source with a made-up token drains any in-service "
    'instance of the configured clusters (it stays DRAINING); set test_event_source = "" in '
    "production, or check the action is live before draining"
)


def test_forged_lifecycle_event_for_a_healthy_instance_is_not_drained() -> None:
    world = _world()
    healthy = world.add_instance(cluster=CLUSTER, group=GROUP)  # in service, not terminating
    forged = bases_for(
        ours=("c0ffee00-0000-4000-8000-00000000f0f0", GROUP, HOOK, healthy),
        other_group=FIXED["other_group"],
        other_cluster_instance=FIXED["other_cluster_instance"],
        test_source=CONFIG.test_event_source or "",
    )["lifecycle-ours-test-source"]
    with _lambda_aws(world), redirect_stdout(io.StringIO()):
        assert "LifecycleTerminate" in matching_rules(forged)
        resolved = resolve_lambda.resolve(forged, EXECUTION, drainer_settings(), world.clock.now())
    tally.case("Resolve + CompleteAction handlers")
    if resolved["request"]["route"] == req.ROUTE_LIFECYCLE:
        tally.gap(GAP_FORGED)
    assert resolved["request"]["route"] == req.ROUTE_FINISH
    assert "InService" in resolved["request"]["problem"]
    assert "ecs:UpdateContainerInstancesState" not in world.api_call_counts()


# --- layer 3: the real state machine, a few batches ---------------------------------------------
STATE_MACHINE = settings(
    max_examples=1,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_TRANSITIONS = 60  # a hostile event never loops: resolve, route, maybe drain, report
# Anyone allowed to start the state machine could pass any JSON at all.
DIRECT_INPUTS: tuple[Any, ...] = ([], "text", None, {"detail": {"EC2InstanceId": "i-$(reboot)"}})


@STATE_MACHINE
@example(batch=list(MACHINE_CASES), direct=list(DIRECT_INPUTS[:3]))
@given(
    batch=st.lists(machine_recipes, min_size=4, max_size=4),
    direct=st.lists(st.sampled_from(DIRECT_INPUTS), min_size=1, max_size=1),
)
def test_hostile_events_through_the_state_machine(batch: list[Recipe], direct: list[Any]) -> None:
    world = _world()
    pairs = [_two_actions(world) for _ in batch]
    with Harness(world, CONFIG) as harness:
        events = [recipe.build(_bases(*pair)) for recipe, pair in zip(batch, pairs, strict=True)]
        for event in events:
            if isinstance(event, dict):
                harness.deliver(event)
        started = [
            harness.sfn.start_execution(
                stateMachineArn=harness.state_machine_arn,
                name=str(uuid.uuid4()),
                input=json.dumps(raw),
            )["executionArn"]
            for raw in direct
        ]
        harness.run(max_virtual_seconds=6 * 3600, wall_timeout=60)
        published = {o["executionArn"]: o for o in harness.outcomes()}
        arns = [d.execution_arn for d in harness.deliveries] + started
        executions = {arn: harness.execution(arn) for arn in arns}
    tally.case("state machine executions", len(arns))
    for arn, execution in executions.items():
        # Ended, within bounds, and said what happened.
        assert execution["status"] == "SUCCEEDED", (arn, execution["output"])
        entered = [e for e in execution["history"] if e["type"].endswith("StateEntered")]
        assert len(entered) <= MAX_TRANSITIONS
        outcome = published[arn]
        assert outcome["outcome"] in outcomes.OUTCOMES
        if outcome["kind"] == req.INVALID:
            assert outcome["outcome"] == "invalid-event" and outcome["problem"]
    for event, (ours, other, _) in zip(events, pairs, strict=True):
        assert other.active, "an action of another group was touched"
        names_ours = identifies(
            event, token=ours.token, group=GROUP, hook=HOOK, instance_id=ours.instance_id
        )
        if "LifecycleTerminate" in matching_rules(event) and names_ours:
            tally.actions_completed([ours], "hostile events (state machine)")
        else:
            assert ours.active, "an action was completed for an event that does not name it"
