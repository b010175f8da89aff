"""Execution names: each drain is named after what it drains, `<instance>-<kind>-<short id>`.

The name is made from the event alone, so EventBridge delivering the same event twice gives the
same name, and Step Functions starts no second execution for it (StartExecution: a second call
with the name and input of an open execution returns that execution; see lambdas/dispatch.py).

Names follow StartExecution's rules (Step Functions API reference,
https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html):
1–80 characters, no whitespace, brackets, wildcards, control characters nor any of
`"#%\\^|~`$&,;:/`. Every part is reduced to letters, digits, `-` and `_`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from drainer.parsers import lifecycle, rebalance, spot
from drainer.parsers.fields import INSTANCE_ID

MAX_NAME = 80
SHORT_ID = 8  # of the event id: enough to tell an instance's events of one kind apart
UNKNOWN_INSTANCE = "unknown"
KINDS = {
    lifecycle.DETAIL_TYPE: "lifecycle",
    spot.DETAIL_TYPE: "spot",
    rebalance.DETAIL_TYPE: "rebalance",
}
OTHER_KIND = "event"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def instance_of(event: Any) -> str:
    """The instance the event names (Auto Scaling `EC2InstanceId`, EC2 `instance-id`), or
    `unknown` when it names none that is an instance id."""
    detail = _mapping(_mapping(event).get("detail"))
    for key in ("EC2InstanceId", "instance-id"):
        value = detail.get(key)
        if isinstance(value, str) and INSTANCE_ID.fullmatch(value):
            return value
    return UNKNOWN_INSTANCE


def kind_of(event: Any) -> str:
    return KINDS.get(str(_mapping(event).get("detail-type")), OTHER_KIND)


def event_id(event: Any) -> str:
    """The event's `id` with only safe characters; without one, a digest of the whole event
    (still the same for the same event)."""
    raw = _mapping(event).get("id")
    safe = _UNSAFE.sub("", raw) if isinstance(raw, str) else ""
    if safe:
        return safe
    return hashlib.sha256(json.dumps(event, sort_keys=True, default=str).encode()).hexdigest()


def execution_name(event: Any, *, full_id: bool = False) -> str:
    """`<instance>-<kind>-<first 8 characters of the event id>`, e.g.
    `i-0abc12345678def01-spot-3f1c9a2e`. With `full_id`, the whole id (as much as fits in 80
    characters): the fallback when another event of the same instance and kind already took
    the short name."""
    prefix = f"{instance_of(event)}-{kind_of(event)}-"
    identifier = event_id(event)
    room = MAX_NAME - len(prefix)
    return prefix + identifier[: room if full_id else min(SHORT_ID, room)]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
