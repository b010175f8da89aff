"""What each AWS call the handlers make asks IAM: its action, the resources it touches and the
request's condition keys, per the Service Authorization Reference
(https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html),
read offline from policy_sentry's copy of it.

Every ARN is built from the reference's ARN format for that action (or, when the caller passes a
full ARN, checked against it), and every service condition key given must be one the reference
lists for the action: a mapping that drifts from the reference fails at once. A call with no
mapping here raises UnmappedCall, so a new call in a handler cannot go unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from policy_sentry.querying.actions import get_action_data

from simulated_aws.iam.evaluation import ContextValue


class UnmappedCall(AssertionError):
    """A call the world cannot authorize: add it to CALLS."""


class Place(Protocol):
    """What the world knows that a request's resources depend on."""

    partition: str
    region: str
    account: str

    def group_arn(self, name: str) -> str | None: ...

    def group_of_instance(self, instance_id: str) -> str | None: ...


@dataclass(frozen=True)
class Touch:
    """One authorization a call needs: an action on one resource, with its condition keys."""

    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)


# botocore service name -> the IAM service prefix
IAM_PREFIX = {
    "ecs": "ecs",
    "autoscaling": "autoscaling",
    "dynamodb": "dynamodb",
    "sns": "sns",
    "stepfunctions": "states",
    "kms": "kms",
    "cloudwatch": "cloudwatch",
    "ec2": "ec2",
    "events": "events",
}


@cache
def _reference(action: str) -> tuple[list[str], frozenset[str]]:
    """The action's ARN formats (or `*`) and its condition keys, from the reference."""
    prefix, name = action.split(":")
    rows = (get_action_data(prefix, name) or {}).get(prefix)
    if not rows:
        raise UnmappedCall(f"{action} is not in the Service Authorization Reference")
    formats = [row["resource_arn_format"] for row in rows]
    keys = frozenset(key for row in rows for key in row["condition_keys"])
    return formats, keys


def _format_regex(arn_format: str) -> re.Pattern[str]:
    parts = re.split(r"(\$\{\w+\})", arn_format)
    return re.compile(
        "".join("[^:]+" if part.startswith("${") else re.escape(part) for part in parts) + "$"
    )


def touch(
    place: Place,
    action: str,
    *,
    arn: str | None = None,
    context: Mapping[str, ContextValue] | None = None,
    **variables: str,
) -> Touch:
    """The authorization of `action` on the resource the reference's ARN format names with
    `variables` (partition, region and account are the caller's), or on a given `arn` (which
    must fit a format), or on `*` when the action takes no resource."""
    formats, keys = _reference(action)
    context = dict(context or {})
    service_keys = {key for key in context if not key.startswith("aws:")}
    unknown = service_keys - keys
    if unknown:
        raise UnmappedCall(f"{action} takes no condition keys {sorted(unknown)} (reference)")
    if arn is None and not variables:
        if "*" not in formats:
            raise UnmappedCall(f"{action} needs a resource: the reference lists {formats}")
        return Touch(action, "*", context)
    if arn is None:
        values = {
            "Partition": place.partition,
            "Region": place.region,
            "Account": place.account,
            **variables,
        }
        for arn_format in formats:
            names = set(re.findall(r"\$\{(\w+)\}", arn_format))
            if arn_format != "*" and names == set(values):
                arn = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], arn_format)
                break
        else:
            raise UnmappedCall(f"{action}: no ARN format takes {sorted(variables)}: {formats}")
    elif not any(_format_regex(f).match(arn) for f in formats if f != "*"):
        raise UnmappedCall(f"{action}: {arn} fits none of the reference's formats {formats}")
    return Touch(action, arn, context)


# --- ECS ------------------------------------------------------------------------------------
def _last_id(reference: str) -> str:
    """The id from an id or an ARN (`…:task/cluster/id` or the old `…:task/id`)."""
    return reference.rsplit("/", 1)[-1]


def _cluster(params: Mapping[str, Any]) -> str:
    return _last_id(params.get("cluster") or "default")  # ECS's default cluster


def _cluster_key(place: Place, params: Mapping[str, Any]) -> dict[str, ContextValue]:
    # ecs:cluster carries the cluster's ARN (ECS developer guide, "Condition keys for ECS").
    return {
        "ecs:cluster": f"arn:{place.partition}:ecs:{place.region}:{place.account}:"
        f"cluster/{_cluster(params)}"
    }


def _ecs_each(action: str, list_param: str, id_variable: str) -> CallMapping:
    def mapping(place: Place, params: Mapping[str, Any]) -> list[Touch]:
        return [
            touch(
                place,
                action,
                context=_cluster_key(place, params),
                ClusterName=_cluster(params),
                **{id_variable: _last_id(reference)},
            )
            for reference in params[list_param]
        ]

    return mapping


def _list_container_instances(place: Place, params: Mapping[str, Any]) -> list[Touch]:
    return [touch(place, "ecs:ListContainerInstances", ClusterName=_cluster(params))]


def _list_tasks(place: Place, params: Mapping[str, Any]) -> list[Touch]:
    context = _cluster_key(place, params)
    instance = params.get("containerInstance")
    if instance is None:
        return [touch(place, "ecs:ListTasks", context=context)]
    return [
        touch(
            place,
            "ecs:ListTasks",
            context=context,
            ClusterName=_cluster(params),
            ContainerInstanceId=_last_id(instance),
        )
    ]


def _stop_task(place: Place, params: Mapping[str, Any]) -> list[Touch]:
    return _ecs_each("ecs:StopTask", "tasks", "TaskId")(
        place, {**params, "tasks": [params["task"]]}
    )


# --- Auto Scaling ---------------------------------------------------------------------------
def _group_touch(place: Place, action: str, name: str) -> Touch:
    arn = place.group_arn(name)
    if arn is None:  # no such group: its id is unknown, its ARN still names the group
        arn = (
            f"arn:{place.partition}:autoscaling:{place.region}:{place.account}:autoScalingGroup:"
            f"00000000-0000-0000-0000-000000000000:autoScalingGroupName/{name}"
        )
    return touch(place, action, arn=arn)


def _on_group(action: str) -> CallMapping:
    def mapping(place: Place, params: Mapping[str, Any]) -> list[Touch]:
        return [_group_touch(place, action, params["AutoScalingGroupName"])]

    return mapping


def _terminate_instance(place: Place, params: Mapping[str, Any]) -> list[Touch]:
    group = place.group_of_instance(params["InstanceId"])
    if group is None:
        # In no group: Auto Scaling refuses the call (ValidationError) on its own.
        return []
    return [_group_touch(place, "autoscaling:TerminateInstanceInAutoScalingGroup", group)]


def _unscoped(action: str) -> CallMapping:
    return lambda place, params: [touch(place, action)]


# --- DynamoDB, SNS, Step Functions ------------------------------------------------------------
def _on_table(action: str) -> CallMapping:
    return lambda place, params: [touch(place, action, TableName=params["TableName"])]


def _publish(place: Place, params: Mapping[str, Any]) -> list[Touch]:
    return [touch(place, "sns:Publish", arn=params["TopicArn"])]


def _on_execution(action: str) -> CallMapping:
    return lambda place, params: [touch(place, action, arn=params["executionArn"])]


def _put_metric_data(place: Place, params: Mapping[str, Any]) -> list[Touch]:
    return [
        touch(
            place, "cloudwatch:PutMetricData", context={"cloudwatch:namespace": params["Namespace"]}
        )
    ]


def _put_events(place: Place, params: Mapping[str, Any]) -> list[Touch]:
    """One authorization per entry, on the bus it names (the default bus when none, by name or
    ARN), with the entry's source and detail-type as the events: condition keys."""
    touches = []
    for entry in params["Entries"]:
        bus = entry.get("EventBusName") or "default"
        context = {"events:source": entry["Source"], "events:detail-type": entry["DetailType"]}
        if bus.startswith("arn:"):
            touches.append(touch(place, "events:PutEvents", arn=bus, context=context))
        else:
            touches.append(touch(place, "events:PutEvents", context=context, EventBusName=bus))
    return touches


CallMapping = Callable[[Place, Mapping[str, Any]], list[Touch]]

# (botocore service name, operation) -> the authorizations the call needs
CALLS: dict[tuple[str, str], CallMapping] = {
    ("ecs", "ListContainerInstances"): _list_container_instances,
    ("ecs", "DescribeContainerInstances"): _ecs_each(
        "ecs:DescribeContainerInstances", "containerInstances", "ContainerInstanceId"
    ),
    ("ecs", "UpdateContainerInstancesState"): _ecs_each(
        "ecs:UpdateContainerInstancesState", "containerInstances", "ContainerInstanceId"
    ),
    ("ecs", "ListTasks"): _list_tasks,
    ("ecs", "DescribeTasks"): _ecs_each("ecs:DescribeTasks", "tasks", "TaskId"),
    ("ecs", "StopTask"): _stop_task,
    ("ecs", "DescribeServices"): _ecs_each("ecs:DescribeServices", "services", "ServiceName"),
    ("autoscaling", "CompleteLifecycleAction"): _on_group("autoscaling:CompleteLifecycleAction"),
    ("autoscaling", "RecordLifecycleActionHeartbeat"): _on_group(
        "autoscaling:RecordLifecycleActionHeartbeat"
    ),
    ("autoscaling", "TerminateInstanceInAutoScalingGroup"): _terminate_instance,
    ("autoscaling", "DescribeAutoScalingInstances"): _unscoped(
        "autoscaling:DescribeAutoScalingInstances"
    ),
    ("autoscaling", "DescribeLifecycleHooks"): _unscoped("autoscaling:DescribeLifecycleHooks"),
    # Resolve reads the opt-in tag of a test event's instance; DescribeTags takes no resource.
    ("ec2", "DescribeTags"): _unscoped("ec2:DescribeTags"),
    ("dynamodb", "PutItem"): _on_table("dynamodb:PutItem"),
    ("dynamodb", "GetItem"): _on_table("dynamodb:GetItem"),
    ("dynamodb", "UpdateItem"): _on_table("dynamodb:UpdateItem"),
    ("dynamodb", "DeleteItem"): _on_table("dynamodb:DeleteItem"),
    ("sns", "Publish"): _publish,
    # The dispatch function starts drains on the state machine itself.
    ("stepfunctions", "StartExecution"): lambda place, params: [
        touch(place, "states:StartExecution", arn=params["stateMachineArn"])
    ],
    ("stepfunctions", "GetExecutionHistory"): _on_execution("states:GetExecutionHistory"),
    ("stepfunctions", "DescribeExecution"): _on_execution("states:DescribeExecution"),
    # An event-woken wait's wake-up: the task token is its only scope (the reference: no
    # resource).
    ("stepfunctions", "SendTaskSuccess"): _unscoped("states:SendTaskSuccess"),
    ("cloudwatch", "PutMetricData"): _put_metric_data,
    ("events", "PutEvents"): _put_events,
}


def touches(place: Place, service: str, operation: str, params: Mapping[str, Any]) -> list[Touch]:
    """Every authorization one call needs; UnmappedCall when the world does not know the call."""
    mapping = CALLS.get((service, operation))
    if mapping is None:
        raise UnmappedCall(
            f"{service}:{operation} has no IAM mapping in simulated_aws/iam/calls.py: add its "
            "action, resources and condition keys (Service Authorization Reference)"
        )
    return mapping(place, params)
