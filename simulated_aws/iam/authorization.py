"""IAM enforced in the simulated world: each handler's AWS calls are evaluated against its role.

moto enforces no IAM, so without this no test could see a call AWS would deny. While a handler
runs as its function (`Authorizer.acting_as`, used by the Lambda seam), every botocore call it
makes is mapped to its IAM authorizations (calls.py, per the Service Authorization Reference)
and evaluated (evaluation.py) against the function's role policies from the stack's synthesized
template, together with the resource policy of the topic or key it touches. A denied call
raises ClientError with the code that service answers, as AWS would, and is recorded in
`denials`: a handler that catches the error still cannot hide it from the test.

Publishing to an SSE-KMS topic also needs kms:GenerateDataKey and kms:Decrypt on its key
(SNS developer guide, "Data encryption" / key management:
https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html); KMS honours an identity
policy only when the key policy lets the account delegate to IAM
(https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html).

The hook is appended to botocore.handlers.BUILTIN_HANDLERS when this module is imported, like
simulated_aws/routing.py: import it before any boto3 Session is created.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from botocore.handlers import BUILTIN_HANDLERS
from botocore.model import OperationModel

from simulated_aws import routing
from simulated_aws.iam.calls import IAM_PREFIX, Touch, UnmappedCall, touches
from simulated_aws.iam.evaluation import Decision, Principal, Request, evaluate
from simulated_aws.iam.stack_template import (
    Resolver,
    function_roles,
    key_policies,
    role_policies,
    topic_keys,
    topic_policies,
)

PolicyDocument = Mapping[str, Any]
# The code each service answers a denied request with (their API references' common errors).
DENIED_CODES = {"sns": "AuthorizationError", "autoscaling": "AccessDenied"}
DEFAULT_DENIED_CODE = "AccessDeniedException"


@dataclass(frozen=True)
class Role:
    """One function's execution role: its ARN and its identity policies."""

    arn: str
    policies: Sequence[PolicyDocument]

    @property
    def account(self) -> str:
        return self.arn.split(":")[4]


@dataclass
class Authorizer:
    """Roles by function handler ("resolve.handler"), the resource policies of the stack's
    topics and keys, and the world's place (partition, region, account, group ARNs)."""

    roles: dict[str, Role]
    topic_policies: dict[str, list[PolicyDocument]] = field(default_factory=dict)
    key_policies: dict[str, PolicyDocument] = field(default_factory=dict)
    topic_keys: dict[str, str] = field(default_factory=dict)
    account: str = "123456789012"
    region: str = "us-east-1"
    partition: str = "aws"
    denials: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()

    @classmethod
    def from_template(cls, resolver: Resolver) -> Authorizer:
        roles = {
            handler: Role(arn, role_policies(resolver, logical_id))
            for handler, (logical_id, arn) in function_roles(resolver).items()
        }
        return cls(
            roles,
            topic_policies(resolver),
            key_policies(resolver),
            topic_keys(resolver),
            resolver.account,
            resolver.region,
            resolver.partition,
        )

    # --- who is calling ---------------------------------------------------------------------
    @contextmanager
    def acting_as(self, handler: str) -> Iterator[None]:
        """Calls made on this thread are made by the role of the function with `handler`."""
        if handler not in self.roles:
            message = f"no function with handler {handler} in the synthesized stack"
            self._record(message)
            raise UnmappedCall(message)
        previous = getattr(self._local, "role", None)
        self._local.role = self.roles[handler]
        try:
            yield
        finally:
            self._local.role = previous

    def current_role(self) -> Role | None:
        return getattr(self._local, "role", None)

    # --- the world's facts the mapping needs (iam_calls.Place) ------------------------------
    def group_arn(self, name: str) -> str | None:
        world = routing.current()
        group = world.asg.groups.get(name) if world is not None else None  # type: ignore[attr-defined]
        return group.arn if group is not None else None

    def group_of_instance(self, instance_id: str) -> str | None:
        world = routing.current()
        group = world.asg.group_of(instance_id) if world is not None else None  # type: ignore[attr-defined]
        return group.name if group is not None else None

    # --- deciding -----------------------------------------------------------------------------
    def check(self, role: Role, service: str, operation: str, params: Mapping[str, Any]) -> None:
        """Raise ClientError (the service's access-denied code) unless `role` may make the call."""
        try:
            needed = touches(self, service, operation, params)
        except UnmappedCall as error:
            self._record(f"{role.arn}: {error}")
            raise
        needed += self._implied(needed)
        for touch in needed:
            decision = self.decide(role, touch)
            if decision is not Decision.ALLOW:
                message = (
                    f"User: {role.arn} is not authorized to perform: {touch.action} on resource: "
                    f"{touch.resource} because of an {decision.value}"
                )
                self._record(message)
                code = DENIED_CODES.get(service, DEFAULT_DENIED_CODE)
                raise ClientError(
                    {
                        "Error": {"Code": code, "Message": message, "Type": "Sender"},
                        "ResponseMetadata": {"HTTPStatusCode": 403},
                    },
                    operation,
                )

    def decide(self, role: Role, touch: Touch) -> Decision:
        principal = Principal("AWS", role.arn, role.account)
        request = Request(touch.action, touch.resource, self._context(role, touch), principal)
        identity = evaluate(role.policies, request)
        if touch.action.startswith("kms:"):
            return self._decide_kms(request, identity)
        resource_policies = self.topic_policies.get(touch.resource, [])
        resource = evaluate(resource_policies, request)
        if Decision.EXPLICIT_DENY in (identity, resource):
            return Decision.EXPLICIT_DENY
        # Same account: an Allow in either the identity or the resource policy is enough.
        return Decision.ALLOW if Decision.ALLOW in (identity, resource) else Decision.IMPLICIT_DENY

    def _decide_kms(self, request: Request, identity: Decision) -> Decision:
        key_policy = self.key_policies.get(request.resource)
        if key_policy is None:
            return Decision.IMPLICIT_DENY  # a key outside the stack: nothing here grants it
        direct = evaluate([key_policy], request)
        if Decision.EXPLICIT_DENY in (direct, identity):
            return Decision.EXPLICIT_DENY
        if direct is Decision.ALLOW:
            return Decision.ALLOW
        account = request.principal.account if request.principal else None
        root = Principal("AWS", f"arn:{self.partition}:iam::{account}:root", account)
        delegates = evaluate(
            [key_policy], Request(request.action, request.resource, request.context, root)
        )
        return identity if delegates is Decision.ALLOW else Decision.IMPLICIT_DENY

    def _implied(self, needed: list[Touch]) -> list[Touch]:
        """Authorizations a call needs beyond its own action: SNS encrypts with the topic's key
        as the publisher."""
        implied = []
        for touch in needed:
            key = self.topic_keys.get(touch.resource) if touch.action == "sns:Publish" else None
            if key is not None:
                implied += [Touch("kms:GenerateDataKey", key), Touch("kms:Decrypt", key)]
        return implied

    def _context(self, role: Role, touch: Touch) -> dict[str, Any]:
        """The global keys every request from a Lambda role session carries
        (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html)."""
        return {
            "aws:SecureTransport": True,  # the SDK calls HTTPS endpoints
            "aws:PrincipalArn": role.arn,
            "aws:PrincipalAccount": role.account,
            "aws:PrincipalType": "AssumedRole",
            "aws:RequestedRegion": self.region,
            **touch.context,
        }

    def _record(self, line: str) -> None:
        with self._lock:
            self.denials.append(line)


# --- the botocore hook ----------------------------------------------------------------------
_lock = threading.Lock()
_current: Authorizer | None = None


@contextmanager
def installed(authorizer: Authorizer) -> Iterator[Authorizer]:
    global _current
    with _lock:
        if _current is not None:
            raise RuntimeError("another authorizer is already installed")
        _current = authorizer
    try:
        yield authorizer
    finally:
        with _lock:
            _current = None


def _authorize(params: dict[str, Any], model: OperationModel, **_: Any) -> None:
    authorizer = _current
    role = authorizer.current_role() if authorizer is not None else None
    if authorizer is None or role is None:
        return  # not a handler's call: the test itself, moto's interpreter, the sandbox
    service = model.service_model.service_name
    if service not in IAM_PREFIX:
        authorizer._record(f"{role.arn}: {service}:{model.name} is not mapped")
        raise UnmappedCall(f"{service}:{model.name}: no IAM mapping in simulated_aws/iam/calls.py")
    authorizer.check(role, service, model.name, params)


if not any(spec[1] is _authorize for spec in BUILTIN_HANDLERS):
    BUILTIN_HANDLERS.append(("before-parameter-build", _authorize))
