"""Poll slots (drainer/pacing.py): in poll mode a lifecycle drain's poll takes one slot per ECS
call it expects to make, and makes no ECS call before them; the reservation itself is the start
slots' one, on a second pacing item."""

from __future__ import annotations

import math
from datetime import timedelta

import boto3
import pytest

from drainer import pacing, progress
from drainer.clock import iso, parse_iso
from sandbox.harness import CLAIMS_TABLE, REGION, Harness
from tests.handlers.drains import first_heartbeat_gap, lifecycle_state, resolved
from tests.steps import step
from tests.worlds import CLUSTER, take_slots, with_settings, world_for

RATE = 10.0


def approx(seconds: float):
    """To the millisecond: slots are epoch seconds, whose floats carry about that much."""
    return pytest.approx(seconds, abs=0.001)


@pytest.fixture
def polled_env(config):
    """The handler tests' world, in poll mode."""
    config = with_settings(config, drain_end_detection="poll")
    world, ids = world_for(config)
    world.add_service(CLUSTER, "web", desired=3, deregistration_delay_seconds=60)
    with Harness(world, config) as harness:
        yield world, ids, harness, config


def next_slot(key: str) -> float | None:
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=CLAIMS_TABLE, Key={"pk": {"S": key}}
    )
    return float(item["Item"]["nextSlot"]["N"]) if "Item" in item else None


def ecs_calls(world, since: int) -> list:
    return [call for call in world.api_calls[since:] if call.service == "ecs"]


# --- The reservation -------------------------------------------------------------------------


def test_slots_are_first_come_first_served_and_as_many_as_asked(polled_env):
    world, *_ = polled_env
    now = world.clock.now()
    reserve = pacing.reserve
    assert reserve(CLAIMS_TABLE, RATE, now, pacing.POLL_KEY, 3) == 0  # the first: now
    assert reserve(CLAIMS_TABLE, RATE, now, pacing.POLL_KEY, 1) == approx(0.3)
    assert reserve(CLAIMS_TABLE, RATE, now, pacing.POLL_KEY, 2) == approx(0.4)
    assert next_slot(pacing.POLL_KEY) == approx(now.timestamp() + 0.6)
    # The start slots are another item: the polls' queue does not hold a start back.
    assert reserve(CLAIMS_TABLE, RATE, now) == 0
    assert reserve(CLAIMS_TABLE, RATE, now) == approx(0.1)


def test_no_slot_is_ever_before_now(polled_env):
    world, *_ = polled_env
    earlier = world.clock.now()
    pacing.reserve(CLAIMS_TABLE, RATE, earlier, pacing.POLL_KEY, 5)  # slots up to +0.5 s
    later = earlier + timedelta(seconds=60)  # none handed out for a minute
    assert pacing.reserve(CLAIMS_TABLE, RATE, later, pacing.POLL_KEY, 2) == 0
    assert next_slot(pacing.POLL_KEY) == approx(later.timestamp() + 0.2)


def test_table_trouble_answers_go_now(polled_env):
    world, *_ = polled_env
    now = world.clock.now()
    assert pacing.reserve("no-such-table", RATE, now, pacing.POLL_KEY, 3) == 0


# --- The paced poll ---------------------------------------------------------------------------


def started(world, victim: str) -> dict:
    return step("Start draining", lifecycle_state(world, victim))


def test_a_poll_before_its_slot_calls_no_ecs_and_keeps_the_slot(polled_env):
    world, (victim, *_), _, config = polled_env
    state = started(world, victim)
    slot = take_slots(world, 200, pacing.POLL_KEY)
    calls = len(world.api_calls)
    waiting = step("Poll tasks", state)
    assert ecs_calls(world, calls) == []
    held = waiting["progress"]
    assert parse_iso(held["pollSlotAt"]).timestamp() == approx(slot)
    assert (held["verdict"], held["nextWaitSeconds"]) == (progress.WAIT, 200)
    assert held["polls"] == 0 and held["tasks"] is None  # nothing polled yet
    # The first snapshot's three calls: two listings and a describe.
    assert next_slot(pacing.POLL_KEY) == approx(slot + 3 / config.poll_rate_per_second)
    # At the slot it polls at once, without reserving again.
    world.clock.run_for(held["nextWaitSeconds"])
    polled = step("Poll tasks", waiting)["progress"]
    assert polled["polls"] == 1 and polled["tasks"] is not None
    assert polled["pollSlotAt"] is None
    assert next_slot(pacing.POLL_KEY) == approx(slot + 3 / config.poll_rate_per_second)
    assert {c.operation for c in ecs_calls(world, calls)} == {"ListTasks", "DescribeTasks"}


def test_a_slot_within_a_second_is_no_wait(polled_env):
    world, (victim, *_), _, _ = polled_env
    state = started(world, victim)
    take_slots(world, 0.5, pacing.POLL_KEY)
    polled = step("Poll tasks", state)["progress"]
    assert polled["polls"] == 1 and polled["pollSlotAt"] is None


def test_waiting_for_a_slot_never_passes_the_next_heartbeat(polled_env):
    world, (victim, *_), _, config = polled_env
    state = started(world, victim)
    take_slots(world, 5_000, pacing.POLL_KEY)
    calls = len(world.api_calls)
    waiting = step("Poll tasks", state)
    due = parse_iso(state["progress"]["lastHeartbeatAt"]) + timedelta(
        seconds=first_heartbeat_gap(state)
    )
    to_due = math.ceil((due - world.clock.now()).total_seconds())
    assert waiting["progress"]["nextWaitSeconds"] == to_due
    # At the heartbeat: recorded, still no ECS call, and the wait again stops at the next one.
    world.clock.run_for(to_due)
    beat = step("Poll tasks", waiting)
    assert beat["progress"]["verdict"] == progress.HEARTBEAT
    recorded = step("Record heartbeat", beat)["progress"]
    (action,) = world.lifecycle_actions
    assert len(action.heartbeats) == 1
    assert recorded["nextWaitSeconds"] == config.heartbeat_timeout_seconds // 3
    assert recorded["pollSlotAt"] == waiting["progress"]["pollSlotAt"]
    assert ecs_calls(world, calls) == []


def test_waiting_for_a_slot_never_passes_the_ceiling_and_the_ceiling_polls(polled_env):
    world, (victim, *_), _, _ = polled_env
    state = started(world, victim)
    take_slots(world, 5_000, pacing.POLL_KEY)
    soon = iso(world.clock.now() + timedelta(seconds=40))  # a ceiling before the heartbeat
    state = {**state, "request": {**state["request"], "deadline": soon}}
    waiting = step("Poll tasks", state)
    assert waiting["progress"]["nextWaitSeconds"] == 40
    world.clock.run_for(40)
    calls = len(world.api_calls)
    ended = step("Poll tasks", waiting)["progress"]
    assert ecs_calls(world, calls) != []  # the slot not come, but the ceiling has
    assert ended["verdict"] == progress.CEILING


def test_events_mode_takes_no_poll_slot(env, config):
    world, (victim, *_), _ = env
    assert config.drain_end_detection == "events"  # the shipped drainer.toml
    take_slots(world, 5_000, pacing.POLL_KEY)
    assert step("Poll tasks", started(world, victim))["progress"]["polls"] == 1


def test_spot_takes_no_poll_slot(polled_env):
    world, (victim, *_), _, _ = polled_env
    take_slots(world, 5_000, pacing.POLL_KEY)
    spot = step("Start draining", resolved(world, world.spot_interrupt(victim)))
    assert step("Poll tasks", spot)["progress"]["polls"] == 1
