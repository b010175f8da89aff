"""Every function EventBridge invokes (asynchronously) hands what Lambda gives up on to the
alarmed dead-letter queue: none drops a failed rescue, reactivation or start silently."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.config import load_config
from stacks.functions import ALL_FUNCTIONS, Function, On, allow
from tests.conftest import ROOT
from tests.template.synthesis import as_list, synth

INVOKED_BY_EVENTS = {"Dispatch", "RescueExecution", "ReactivateInstance", "WakeDrain"}


@pytest.fixture(scope="module")
def synthesized() -> tuple[Any, Any]:
    return synth(load_config(ROOT / "drainer.toml"))


def _rule_targets(template: Any) -> set[str]:
    """Logical ids of the functions the rules invoke."""
    targets = set()
    for rule in template.find_resources("AWS::Events::Rule").values():
        for target in rule["Properties"]["Targets"]:
            targets.add(target["Arn"]["Fn::GetAtt"][0])
    return targets


def test_every_function_a_rule_invokes_retries_then_dead_letters(synthesized) -> None:
    stack, template = synthesized
    queue = stack.resolve(stack.dead_letters.queue_arn)
    functions = template.find_resources("AWS::Lambda::Function")
    by_name = {
        name: stack.resolve(stack.get_logical_id(f.node.default_child))
        for name, f in stack.all_functions.items()
    }
    invoked = _rule_targets(template)
    assert invoked == {by_name[name] for name in INVOKED_BY_EVENTS}
    configs = {
        config["Properties"]["FunctionName"]["Ref"]: config["Properties"]
        for config in template.find_resources("AWS::Lambda::EventInvokeConfig").values()
    }
    # Only they: the state machine invokes the others synchronously and sees their errors.
    assert set(configs) == invoked
    for logical_id in invoked:
        assert configs[logical_id]["MaximumRetryAttempts"] == 2
        assert configs[logical_id]["MaximumEventAgeInSeconds"] == 6 * 3600
        assert functions[logical_id]["Properties"]["DeadLetterConfig"] == {"TargetArn": queue}


def test_only_those_functions_may_send_and_only_to_that_queue(synthesized) -> None:
    stack, template = synthesized
    queue = stack.resolve(stack.dead_letters.queue_arn)
    roles = {
        stack.resolve(stack.get_logical_id(f.role.node.default_child)): name
        for name, f in stack.all_functions.items()
    }
    senders: dict[str, list[Any]] = {}
    for policy in template.find_resources("AWS::IAM::Policy").values():
        for statement in as_list(policy["Properties"]["PolicyDocument"]["Statement"]):
            if not any(a.startswith("sqs:") for a in as_list(statement["Action"])):
                continue
            assert as_list(statement["Action"]) == ["sqs:SendMessage"]
            for role in policy["Properties"]["Roles"]:
                senders.setdefault(roles[role["Ref"]], []).extend(as_list(statement["Resource"]))
    assert set(senders) == INVOKED_BY_EVENTS
    for resources in senders.values():
        assert resources and all(resource == queue for resource in resources)


def test_the_declarations_say_which_functions_events_invoke() -> None:
    assert {f.name for f in ALL_FUNCTIONS if f.invoked_by_events} == INVOKED_BY_EVENTS


def test_a_function_events_invoke_must_be_able_to_dead_letter() -> None:
    with pytest.raises(ValueError, match="dead-letter"):
        Function("Lonely", "lonely.handler", "", invoked_by_events=True)
    with pytest.raises(ValueError, match="dead-letter"):
        Function(
            "Stray", "stray.handler", "", grants=(allow("sqs:SendMessage", on=On.DEAD_LETTERS),)
        )


def test_the_undelivered_alarm_says_it_covers_rescues_and_reactivations(synthesized) -> None:
    stack, _ = synthesized
    description = stack.resolve(stack.dead_letter_alarm.node.default_child.alarm_description)
    assert "rescue" in description and "reactivat" in description
