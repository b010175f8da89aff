"""The real stack's synthesized template, with its CloudFormation intrinsics resolved to the names
and ARNs a world uses: the policies IAM would evaluate if this template were deployed there.

Resolved: Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select and the pseudo parameters
(CloudFormation template reference, "Intrinsic function reference" and "Pseudo parameters
reference": https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference.html).
Each resource's physical name is its explicit name property, else what the world deployed under
that logical id (`names`), else `<stack>-<logical id>` as CloudFormation would generate one.
Anything else raises: a policy must never be evaluated half-resolved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from stacks.config import DrainerConfig

# resource type -> (its name property, Ref, attributes) as format strings over
# {name}, {partition}, {region}, {account}
_PHYSICAL: dict[str, tuple[str | None, str, dict[str, str]]] = {
    "AWS::DynamoDB::GlobalTable": (
        "TableName",
        "{name}",
        {"Arn": "arn:{partition}:dynamodb:{region}:{account}:table/{name}"},
    ),
    "AWS::DynamoDB::Table": (
        "TableName",
        "{name}",
        {"Arn": "arn:{partition}:dynamodb:{region}:{account}:table/{name}"},
    ),
    "AWS::SNS::Topic": (
        "TopicName",
        "arn:{partition}:sns:{region}:{account}:{name}",
        {"TopicName": "{name}", "TopicArn": "arn:{partition}:sns:{region}:{account}:{name}"},
    ),
    "AWS::KMS::Key": (None, "{name}", {"Arn": "arn:{partition}:kms:{region}:{account}:key/{name}"}),
    "AWS::Logs::LogGroup": (
        "LogGroupName",
        "{name}",
        {"Arn": "arn:{partition}:logs:{region}:{account}:log-group:{name}:*"},
    ),
    "AWS::Lambda::Function": (
        "FunctionName",
        "{name}",
        {"Arn": "arn:{partition}:lambda:{region}:{account}:function:{name}"},
    ),
    "AWS::StepFunctions::StateMachine": (
        "StateMachineName",
        "arn:{partition}:states:{region}:{account}:stateMachine:{name}",
        {
            "Name": "{name}",
            "Arn": "arn:{partition}:states:{region}:{account}:stateMachine:{name}",
        },
    ),
    "AWS::IAM::Role": ("RoleName", "{name}", {"Arn": "arn:{partition}:iam::{account}:role/{name}"}),
    "AWS::SQS::Queue": (
        "QueueName",
        "https://sqs.{region}.amazonaws.com/{account}/{name}",
        {"Arn": "arn:{partition}:sqs:{region}:{account}:{name}", "QueueName": "{name}"},
    ),
    "AWS::CloudWatch::Alarm": (
        "AlarmName",
        "{name}",
        {"Arn": "arn:{partition}:cloudwatch:{region}:{account}:alarm:{name}"},
    ),
    "AWS::Events::Rule": (
        "Name",
        "{name}",
        {"Arn": "arn:{partition}:events:{region}:{account}:rule/{name}"},
    ),
}


_templates: dict[str, dict[str, Any]] = {}


def synthesized(config: DrainerConfig) -> dict[str, Any]:
    """The stack's template for `config`, synthesized once per configuration and process
    (environment-agnostic: account and region are pseudo parameters)."""
    key = config.model_dump_json()
    if key not in _templates:
        import aws_cdk as cdk  # imported here: only the worlds that enforce IAM pay for it

        from stacks.drainer_stack import DrainerStack

        app = cdk.App()
        DrainerStack(app, config.stack_name, config=config)
        _templates[key] = app.synth().get_stack_by_name(config.stack_name).template
    return _templates[key]


class Resolver:
    """Resolves a template's intrinsics for one stack deployed in one account and region."""

    def __init__(
        self,
        template: Mapping[str, Any],
        stack_name: str,
        account: str,
        region: str,
        names: Mapping[str, str] | None = None,
        partition: str = "aws",
    ) -> None:
        self.resources: Mapping[str, Any] = template["Resources"]
        self.stack_name = stack_name
        self.account, self.region, self.partition = account, region, partition
        self.names = dict(names or {})
        self.pseudo = {
            "AWS::AccountId": account,
            "AWS::Region": region,
            "AWS::Partition": partition,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack_name,
        }

    def of_type(self, resource_type: str) -> dict[str, Mapping[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.resources.items()
            if resource["Type"] == resource_type
        }

    def name(self, logical_id: str) -> str:
        resource = self.resources[logical_id]
        name_property = _physical(resource["Type"])[0]
        explicit = resource.get("Properties", {}).get(name_property) if name_property else None
        if explicit is not None:
            return str(self.resolve(explicit))
        return self.names.get(logical_id, f"{self.stack_name}-{logical_id}")

    def ref(self, logical_id: str) -> str:
        if logical_id in self.pseudo:
            return self.pseudo[logical_id]
        return self._format(_physical(self.resources[logical_id]["Type"])[1], logical_id)

    def get_att(self, logical_id: str, attribute: str) -> str:
        attributes = _physical(self.resources[logical_id]["Type"])[2]
        if attribute not in attributes:
            raise KeyError(f"Fn::GetAtt {logical_id}.{attribute} is not resolved here")
        return self._format(attributes[attribute], logical_id)

    def _format(self, pattern: str, logical_id: str) -> str:
        return pattern.format(
            name=self.name(logical_id),
            partition=self.partition,
            region=self.region,
            account=self.account,
        )

    def resolve(self, value: Any) -> Any:
        """`value` with every intrinsic replaced by what it stands for."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, Mapping):
            return value
        if len(value) != 1 or not next(iter(value)).startswith(("Ref", "Fn::")):
            return {key: self.resolve(item) for key, item in value.items()}
        ((function, argument),) = value.items()
        if function == "Ref":
            return self.ref(argument)
        if function == "Fn::GetAtt":
            logical_id, attribute = (
                argument if isinstance(argument, list) else argument.split(".", 1)
            )
            return self.get_att(logical_id, attribute)
        if function == "Fn::Join":
            separator, items = argument
            return separator.join(str(self.resolve(item)) for item in items)
        if function == "Fn::Select":
            index, items = argument
            return self.resolve(items)[int(self.resolve(index))]
        if function == "Fn::Sub":
            text, variables = argument if isinstance(argument, list) else (argument, {})
            resolved = {key: self.resolve(item) for key, item in variables.items()}

            def substitute(match: re.Match[str]) -> str:
                key = match.group(1)
                if key in resolved:
                    return str(resolved[key])
                if "." in key:
                    return self.get_att(*key.split(".", 1))
                return self.ref(key)

            return re.sub(r"\$\{([^}!]+)\}", substitute, text)
        raise KeyError(f"intrinsic {function} is not resolved here")


def _physical(resource_type: str) -> tuple[str | None, str, dict[str, str]]:
    if resource_type not in _PHYSICAL:
        raise KeyError(
            f"{resource_type}: no physical names known here (simulated_aws/iam/stack_template.py)"
        )
    return _PHYSICAL[resource_type]


def role_policies(resolver: Resolver, role_logical_id: str) -> list[dict[str, Any]]:
    """Every identity policy of one role, resolved: its inline policies and the AWS::IAM::Policy
    resources attached to it. Managed policies are refused (the stack attaches none)."""
    role = resolver.resources[role_logical_id]["Properties"]
    if role.get("ManagedPolicyArns"):
        raise KeyError(f"{role_logical_id}: managed policies are not evaluated here")
    documents = [policy["PolicyDocument"] for policy in role.get("Policies", [])]
    for policy in resolver.of_type("AWS::IAM::Policy").values():
        properties = policy["Properties"]
        if {"Ref": role_logical_id} in properties.get("Roles", []):
            documents.append(properties["PolicyDocument"])
    return [resolver.resolve(document) for document in documents]


def function_roles(resolver: Resolver) -> dict[str, tuple[str, str]]:
    """Lambda handler ("resolve.handler") -> (its role's logical id, its role's ARN)."""
    roles = {}
    for function in resolver.of_type("AWS::Lambda::Function").values():
        properties = function["Properties"]
        role = properties["Role"]["Fn::GetAtt"][0]
        roles[properties["Handler"]] = (role, resolver.get_att(role, "Arn"))
    return roles


def topic_policies(resolver: Resolver) -> dict[str, list[dict[str, Any]]]:
    """Topic ARN -> its resolved topic policies (AWS::SNS::TopicPolicy)."""
    policies: dict[str, list[dict[str, Any]]] = {}
    for policy in resolver.of_type("AWS::SNS::TopicPolicy").values():
        properties = policy["Properties"]
        document = resolver.resolve(properties["PolicyDocument"])
        for topic in resolver.resolve(properties["Topics"]):
            policies.setdefault(topic, []).append(document)
    return policies


def key_policies(resolver: Resolver) -> dict[str, dict[str, Any]]:
    """KMS key ARN -> its resolved key policy."""
    return {
        resolver.get_att(logical_id, "Arn"): resolver.resolve(key["Properties"]["KeyPolicy"])
        for logical_id, key in resolver.of_type("AWS::KMS::Key").items()
    }


def topic_keys(resolver: Resolver) -> dict[str, str]:
    """Topic ARN -> the ARN of the KMS key that encrypts it (SSE topics only)."""
    keys = {}
    for logical_id, topic in resolver.of_type("AWS::SNS::Topic").items():
        key = topic.get("Properties", {}).get("KmsMasterKeyId")
        if key is not None:
            keys[resolver.ref(logical_id)] = resolver.resolve(key)
    return keys
