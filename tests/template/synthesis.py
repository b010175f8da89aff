"""Synthesize the stack as app.py does, for the template tests (and the Spot stop tests' rule)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from stacks.config import DrainerConfig, load_config, validate
from stacks.definition import REACTIVATE_FUNCTION, RESCUE_FUNCTION
from stacks.drainer_stack import DrainerStack
from stacks.functions import DISPATCH_FUNCTION
from tools.offline import ROOT

CLUSTERS, GROUPS = ("prod-a", "prod-b"), ("asg-a", "asg-b")


def synth(config, tamper=None):
    """Synthesize with cdk-nag's AwsSolutions pack, as app.py does: an unacknowledged finding
    fails synthesis."""
    app = cdk.App()
    stack = DrainerStack(
        app,
        config.stack_name,
        config=config,
        env=cdk.Environment(account="123456789012", region="us-east-1"),
    )
    if tamper:
        tamper(stack)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    assembly = app.synth()
    stack.assembly_directory = Path(assembly.directory)
    return stack, Template.from_stack(stack)


def as_list(value: Any) -> list[Any]:
    """A policy field as a list: IAM and CloudFormation accept one value or a list."""
    return value if isinstance(value, list) else [value]


def synthesized_for_two_clusters() -> tuple[DrainerConfig, DrainerStack, dict[str, Any]]:
    """The least-privilege tests' stack: two clusters, two groups, no test-event source;
    synthesis with cdk-nag's AwsSolutions pack (as app.py): a finding fails it."""
    config = validate(
        {
            **load_config(ROOT / "drainer.toml").model_dump(),
            "cluster_names": list(CLUSTERS),
            "auto_scaling_group_names": list(GROUPS),
            "test_event_source": "",
        }
    )
    stack, template = synth(config)
    return config, stack, template.to_json()


def render(value: Any) -> str:
    """An ARN as a string: Fn::Join flattened, the partition filled in, other tokens named."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(render(part) for part in parts)
    if value == {"Ref": "AWS::Partition"}:
        return "aws"
    return f"<{json.dumps(value, sort_keys=True)}>"


def role_names(stack: DrainerStack, template: dict[str, Any]) -> dict[str, str]:
    """Role logical id -> the function it belongs to (or the role's own logical id)."""
    functions = {
        **stack.functions,
        RESCUE_FUNCTION.name: stack.rescue_function,
        REACTIVATE_FUNCTION.name: stack.reactivate_function,
        DISPATCH_FUNCTION.name: stack.dispatch_function,
    }
    names = {}
    for name, function in functions.items():
        role = function.role
        assert role is not None
        names[stack.resolve(stack.get_logical_id(role.node.default_child))] = name
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            names.setdefault(logical_id, logical_id)
    return names
