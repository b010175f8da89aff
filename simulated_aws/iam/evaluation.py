"""IAM policy evaluation for the simulated world: moto enforces no IAM, this does.

It follows AWS's policy evaluation logic for one account
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
an explicit Deny in any applicable policy wins; otherwise an Allow in any of them allows;
otherwise the request is implicitly denied. Statements match on Action/NotAction (case-insensitive,
`*` and `?`), Resource/NotResource (`*` and `?`, never across the ARN's colon-separated
segments before the resource part), Principal/NotPrincipal (resource policies) and Condition.

Condition operators: the String, Arn and Bool families, Null, the `…IfExists` forms and the
`ForAnyValue:`/`ForAllValues:` set qualifiers
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html,
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html).
A key absent from the request makes a condition false, a negated one (`StringNotEquals`,
`ArnNotLike`…) true. Any other operator, or a policy variable, is refused loudly: a policy the
stack may one day write must not be evaluated by a guess.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

ContextValue = str | bool | list[str]


class Decision(enum.Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"


@dataclass(frozen=True)
class Principal:
    """Who makes the request: an IAM role session (`kind` AWS, `arn` its role ARN) or an AWS
    service (`kind` Service, `arn` its service principal, e.g. cloudwatch.amazonaws.com)."""

    kind: str
    arn: str
    account: str | None = None


@dataclass(frozen=True)
class Request:
    """One authorization: an action on one resource, with the request context's keys."""

    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    principal: Principal | None = None


class UnsupportedPolicy(ValueError):
    """The policy uses an element this evaluator does not implement."""


def evaluate(policies: Iterable[Mapping[str, Any]], request: Request) -> Decision:
    """The decision of every applicable policy together (identity and resource policies of
    one account): explicit Deny > Allow > implicit deny."""
    allowed = False
    for policy in policies:
        for statement in _statements(policy):
            if not _applies(statement, request):
                continue
            effect = statement.get("Effect")
            if effect == "Deny":
                return Decision.EXPLICIT_DENY
            if effect != "Allow":
                raise UnsupportedPolicy(f"Effect must be Allow or Deny, not {effect!r}")
            allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def _statements(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = policy.get("Statement", [])
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    return (
        _matches_element(statement, "Action", request.action, _action_matches)
        and _matches_element(statement, "Resource", request.resource, resource_matches)
        and _principal_applies(statement, request.principal)
        and conditions_hold(statement.get("Condition", {}), request.context)
    )


def _matches_element(statement: Mapping[str, Any], name: str, value: str, match: Any) -> bool:
    if name in statement:
        return any(match(pattern, value) for pattern in _as_list(statement[name]))
    if f"Not{name}" in statement:
        return not any(match(pattern, value) for pattern in _as_list(statement[f"Not{name}"]))
    raise UnsupportedPolicy(f"statement has neither {name} nor Not{name}: {statement}")


@cache
def _glob(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    if "${" in pattern:
        raise UnsupportedPolicy(f"policy variables are not evaluated here: {pattern}")
    # fnmatch's translation, minus its character classes: IAM knows only `*` and `?`.
    translated = fnmatch.translate(pattern.replace("[", "\0")).replace("\0", r"\[")
    return re.compile(translated, re.IGNORECASE if ignore_case else 0)


def _like(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return _glob(pattern, ignore_case).match(value) is not None


def _action_matches(pattern: str, action: str) -> bool:
    return _like(pattern, action, ignore_case=True)


def resource_matches(pattern: str, arn: str) -> bool:
    """Resource/ArnLike matching: `*`/`?` within each of the first five ARN segments, anywhere
    in the resource part. A pattern that is not `*` and not a whole ARN matches nothing."""
    if pattern == "*":
        return True
    pattern_parts, arn_parts = pattern.split(":", 5), arn.split(":", 5)
    if len(pattern_parts) != 6 or len(arn_parts) != 6:
        return False
    return all(_like(p, a) for p, a in zip(pattern_parts, arn_parts, strict=True))


def _principal_applies(statement: Mapping[str, Any], principal: Principal | None) -> bool:
    if "Principal" in statement:
        return principal is not None and _principal_matches(statement["Principal"], principal)
    if "NotPrincipal" in statement:
        return principal is not None and not _principal_matches(
            statement["NotPrincipal"], principal
        )
    return True  # an identity policy: it applies to the identity it is attached to


def _principal_matches(element: Any, principal: Principal) -> bool:
    if element == "*":
        return True
    if not isinstance(element, Mapping):
        raise UnsupportedPolicy(f"Principal must be * or a mapping, not {element!r}")
    for kind, values in element.items():
        for value in _as_list(values):
            if kind == "AWS" and value == "*":
                return True
            if kind != principal.kind:
                continue
            if value == principal.arn:
                return True
            # An account (its id or its root ARN) stands for every IAM principal in it.
            root = f"arn:aws:iam::{principal.account}:root"
            if kind == "AWS" and principal.account and value in (principal.account, root):
                return True
    return False


# --- conditions -------------------------------------------------------------------------
def _string_equals(policy: str, value: str) -> bool:
    return policy == value


def _string_equals_ignore_case(policy: str, value: str) -> bool:
    return policy.lower() == value.lower()


def _bool_equals(policy: str, value: str) -> bool:
    return str(policy).lower() == str(value).lower()


def _arn_like(policy: str, value: str) -> bool:
    return resource_matches(policy, value)


# operator (without Not / IfExists) -> value comparison
_OPERATORS = {
    "StringEquals": _string_equals,
    "StringEqualsIgnoreCase": _string_equals_ignore_case,
    "StringLike": _like,
    "ArnEquals": _arn_like,  # ArnEquals and ArnLike behave alike (both take wildcards)
    "ArnLike": _arn_like,
    "Bool": _bool_equals,
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def conditions_hold(block: Mapping[str, Any], context: Mapping[str, ContextValue]) -> bool:
    """Every operator and every key of the block holds (AND); a key's values are ORed."""
    lowered = {key.lower(): value for key, value in context.items()}  # keys are case-insensitive
    return all(
        _condition_holds(operator, key, _as_list(values), lowered.get(key.lower()))
        for operator, keys in block.items()
        for key, values in keys.items()
    )


def _condition_holds(
    operator: str, key: str, policy_values: list[Any], present: ContextValue | None
) -> bool:
    if "${" in key or any("${" in str(v) for v in policy_values):
        raise UnsupportedPolicy(f"policy variables are not evaluated here: {key}")
    if operator == "Null":
        return any(_bool_equals(str(v), str(present is None)) for v in policy_values)
    qualifier, _, operator = operator.rpartition(":")
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    negated = operator in _NEGATED
    compare = _OPERATORS.get(_NEGATED.get(operator, operator))
    if compare is None or qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise UnsupportedPolicy(f"condition operator {operator!r} is not implemented here")
    if present is None:
        if qualifier == "ForAllValues":
            return True
        return if_exists or (negated and qualifier == "")
    values = [str(v).lower() if isinstance(v, bool) else v for v in _as_list(present)]

    def matches(value: str) -> bool:
        return any(compare(str(policy_value), value) for policy_value in policy_values)

    if qualifier == "ForAnyValue":
        return any(matches(value) != negated for value in values)
    if qualifier == "ForAllValues":
        return all(matches(value) != negated for value in values)
    if len(values) != 1:
        raise UnsupportedPolicy(
            f"{key} is multivalued: qualify {operator} with ForAnyValue/ForAllValues"
        )
    return matches(values[0]) != negated
