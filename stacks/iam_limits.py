"""IAM's policy size quotas, checked at synth on the worst case a policy can resolve to.

IAM counts a policy's characters without whitespace: a role's inline policies together may have at
most 10,240, a managed policy 6,144, a role's trust policy 2,048 (the default quota). Source: IAM
and AWS STS quotas, https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html.
A template over them synthesizes fine and fails only in the middle of a deployment.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

ROLE_INLINE_LIMIT = 10_240
MANAGED_POLICY_LIMIT = 6_144
TRUST_POLICY_LIMIT = 2_048
QUOTAS_PAGE = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html"

# The longest values CloudFormation's pseudo parameters take in a real partition and Region.
LONGEST_PSEUDO = {
    "AWS::Partition": "aws-us-gov",
    "AWS::Region": "us-isof-south-1",
    "AWS::AccountId": "123456789012",
    "AWS::URLSuffix": "amazonaws.com.cn",
}
# A Ref or GetAtt of a resource: CloudFormation-generated names stay near 128 characters, their
# ARNs below this.
REFERENCE_LENGTH = 256


@dataclass(frozen=True)
class Oversize:
    kind: str  # "all inline policies of the role", "managed policy", "trust policy"
    owner: str  # logical id
    size: int
    limit: int

    def __str__(self) -> str:
        return (
            f"{self.owner} ({self.kind}): {self.size:,} characters at worst, whitespace not "
            f"counted; IAM allows {self.limit:,} ({QUOTAS_PAGE})"
        )


def worst_case(value: Any, stack_name: str) -> Any:
    """The value with every intrinsic function replaced by its longest realistic string."""
    if isinstance(value, list):
        return [worst_case(item, stack_name) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(str(worst_case(part, stack_name)) for part in parts)
        if function == "Ref" and argument == "AWS::StackName":
            return stack_name
        if function == "Ref" and argument in LONGEST_PSEUDO:
            return LONGEST_PSEUDO[argument]
        if function in ("Ref", "Fn::GetAtt", "Fn::ImportValue", "Fn::Sub", "Fn::Select"):
            return "x" * REFERENCE_LENGTH
    return {key: worst_case(item, stack_name) for key, item in value.items()}


def size(document: Any, stack_name: str) -> int:
    """Characters IAM counts: the worst-case JSON without whitespace."""
    text = json.dumps(worst_case(document, stack_name), separators=(",", ":"))
    return len("".join(text.split()))


def oversized(resources: dict[str, Any], stack_name: str) -> Iterator[Oversize]:
    """Every role and policy of a template's Resources that IAM would refuse."""
    inline: dict[str, int] = defaultdict(int)
    for logical_id, resource in resources.items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            trust = size(properties["AssumeRolePolicyDocument"], stack_name)
            if trust > TRUST_POLICY_LIMIT:
                yield Oversize("trust policy", logical_id, trust, TRUST_POLICY_LIMIT)
            for policy in properties.get("Policies", []):
                inline[logical_id] += size(policy["PolicyDocument"], stack_name)
        elif resource["Type"] == "AWS::IAM::Policy":
            for role in properties.get("Roles", []):
                if isinstance(role, dict) and "Ref" in role:
                    inline[role["Ref"]] += size(properties["PolicyDocument"], stack_name)
        elif resource["Type"] == "AWS::IAM::ManagedPolicy":
            managed = size(properties["PolicyDocument"], stack_name)
            if managed > MANAGED_POLICY_LIMIT:
                yield Oversize("managed policy", logical_id, managed, MANAGED_POLICY_LIMIT)
    for role, total in inline.items():
        if total > ROLE_INLINE_LIMIT:
            yield Oversize("all inline policies of the role", role, total, ROLE_INLINE_LIMIT)
