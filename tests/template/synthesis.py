"""Synthesize the stack as app.py does, for the template tests (and the Spot stop tests' rule)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from stacks.drainer_stack import DrainerStack


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
