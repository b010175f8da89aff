"""The stack's IAM, as it would apply to what sandbox.deployment provisions: every function
runs as the role the synthesized stack gives it (simulated_aws/iam/authorization.py enforces it)."""

from __future__ import annotations

from sandbox.deployment import (
    CLAIMS_TABLE,
    DEPLOYED_FUNCTIONS,
    TOPIC_NAME,
    function_name,
    log_group,
)
from sandbox.endpoint import ACCOUNT, REGION, STATE_MACHINE_NAME
from simulated_aws.iam.authorization import Authorizer
from simulated_aws.iam.stack_template import Resolver, synthesized
from stacks.config import DrainerConfig


def deployed_resolver(config: DrainerConfig) -> Resolver:
    """The synthesized template's intrinsics resolved to the names sandbox.deployment uses."""
    template = synthesized(config)
    by_handler = {function.handler: function for function in DEPLOYED_FUNCTIONS.values()}
    names: dict[str, str] = {}
    for logical_id, resource in template["Resources"].items():
        kind, properties = resource["Type"], resource.get("Properties", {})
        if kind in ("AWS::DynamoDB::GlobalTable", "AWS::DynamoDB::Table"):
            names[logical_id] = CLAIMS_TABLE
        elif kind == "AWS::SNS::Topic":
            names[logical_id] = TOPIC_NAME
        elif kind == "AWS::StepFunctions::StateMachine":
            names[logical_id] = STATE_MACHINE_NAME
        elif kind == "AWS::Lambda::Function":
            function = by_handler[properties["Handler"]]
            names[logical_id] = function_name(function)
            names[properties["LoggingConfig"]["LogGroup"]["Ref"]] = log_group(function)
    return Resolver(template, config.stack_name, ACCOUNT, REGION, names)


def deployed_authorizer(config: DrainerConfig) -> Authorizer:
    return Authorizer.from_template(deployed_resolver(config))
