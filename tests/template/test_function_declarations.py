"""Each function's role is what its declaration (stacks/functions.py) says, and nothing else."""

from __future__ import annotations

import pytest

from stacks.config import DrainerConfig, load_config, validate
from stacks.functions import ALL_FUNCTIONS, On, allow
from tests.conftest import ROOT
from tests.template.synthesis import synth

# What every function's role gets besides its grants: writing its own log group.
LOG_WRITES = {"logs:CreateLogStream", "logs:PutLogEvents"}
# CDK's grant_publish on the KMS-encrypted topic adds the key's actions.
TOPIC_KEY = {"kms:Decrypt", "kms:GenerateDataKey*"}


def as_list(value):
    return value if isinstance(value, list) else [value]


def role_actions(stack, template) -> dict[str, set[str]]:
    """Function name -> every action its role's policies allow."""
    constructs = {
        **stack.functions,
        "RescueExecution": stack.rescue_function,
        "ReactivateInstance": stack.reactivate_function,
        "Dispatch": stack.dispatch_function,
        "WakeDrain": stack.wake_function,
    }
    by_role = {
        stack.resolve(stack.get_logical_id(function.role.node.default_child)): name
        for name, function in constructs.items()
    }
    actions: dict[str, set[str]] = {name: set() for name in constructs}
    for policy in template.find_resources("AWS::IAM::Policy").values():
        for role in policy["Properties"]["Roles"]:
            name = by_role.get(role["Ref"])
            if name is None:
                continue
            for statement in as_list(policy["Properties"]["PolicyDocument"]["Statement"]):
                actions[name] |= set(as_list(statement["Action"]))
    return actions


@pytest.mark.parametrize("test_events", ["", "ecs-drainer.test"])
def test_every_role_allows_exactly_its_declared_actions(test_events: str) -> None:
    config = validate(
        {**load_config(ROOT / "drainer.toml").model_dump(), "test_event_source": test_events}
    )
    stack, template = synth(config)
    held = role_actions(stack, template)
    assert set(held) == {function.name for function in ALL_FUNCTIONS}
    for function in ALL_FUNCTIONS:
        declared = {action for grant in function.grants_for(config) for action in grant.actions}
        if any(grant.on is On.OUTCOME_TOPIC for grant in function.grants_for(config)):
            declared |= TOPIC_KEY
        assert held[function.name] == declared | LOG_WRITES, function.name
    assert ("ec2:DescribeTags" in held["Resolve"]) == bool(test_events)


def test_a_conditional_grant_names_a_setting_of_the_configuration() -> None:
    """A setting, or a property the configuration derives from its settings."""
    for function in ALL_FUNCTIONS:
        for grant in function.grants:
            derived = isinstance(getattr(DrainerConfig, grant.only_if or "", None), property)
            assert grant.only_if is None or grant.only_if in DrainerConfig.model_fields or derived


def test_a_grant_on_anything_must_say_why() -> None:
    with pytest.raises(ValueError, match="say why"):
        allow("ec2:DescribeInstances", on=On.ANYTHING)
