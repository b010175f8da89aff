"""Which services of a cluster are daemon services, remembered per cluster in the claims table.

A drain asks ECS (DescribeServices) only about service names neither its own state nor this
cache knows: in a refresh of 500 instances of one service, the first poll to see "web" asks and
the others read the answer (one DynamoDB read) instead of 500 DescribeServices against ECS's
token bucket. Entries live CACHE_SECONDS: a service's schedulingStrategy cannot change, but a
service deleted and created again under its name may have another one. DynamoDB's TTL deletes
expired items only eventually, so `expiresAt` is checked on read. The cache is a hint: whatever
goes wrong with it, the drain asks ECS as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from drainer import log
from drainer.aws import AWS_FAILURES, call
from drainer.tasks import Classifier, describe_daemon_services

CACHE_SECONDS = 3600


@dataclass
class Cached:
    """A cluster's cache entry as read (a docstring: dataclass() would render one from the
    signature on every cold start)."""

    daemons: set[str] = field(default_factory=set)
    others: set[str] = field(default_factory=set)
    fresh: bool = False


def cache_key(cluster: str) -> str:
    return f"services#{cluster}"


def classifier(table: str, now: datetime) -> Classifier:
    """A classifier for drainer.tasks.snapshot that reads and fills the cluster's cache."""

    def classify(cluster: str, names: list[str]) -> set[str]:
        cached = _read(table, cluster, now)
        daemons = {name for name in names if name in cached.daemons}
        missing = [name for name in names if name not in cached.daemons | cached.others]
        if missing:
            found = describe_daemon_services(cluster, missing)
            daemons |= found
            _remember(table, cluster, found, set(missing) - found, cached.fresh, now)
        return daemons

    return classify


def _read(table: str, cluster: str, now: datetime) -> Cached:
    try:
        item = call(
            "dynamodb", "get_item", TableName=table, Key={"pk": {"S": cache_key(cluster)}}
        ).get("Item", {})
    except AWS_FAILURES as error:
        log.warning("service cache unreadable; asking ECS", error=str(error))
        return Cached()
    if int(item.get("expiresAt", {}).get("N", "0")) <= now.timestamp():
        return Cached()
    return Cached(
        set(item.get("daemons", {}).get("SS", [])), set(item.get("others", {}).get("SS", [])), True
    )


def _remember(
    table: str, cluster: str, daemons: set[str], others: set[str], fresh: bool, now: datetime
) -> None:
    """Add to a fresh item (its expiry unchanged); replace a missing or expired one."""
    sets = {name: values for name, values in (("daemons", daemons), ("others", others)) if values}
    key = {"pk": {"S": cache_key(cluster)}}
    try:
        if fresh:
            call(
                "dynamodb",
                "update_item",
                TableName=table,
                Key=key,
                UpdateExpression="ADD " + ", ".join(f"{name} :{name}" for name in sets),
                ExpressionAttributeValues={
                    f":{name}": {"SS": sorted(v)} for name, v in sets.items()
                },
            )
        else:
            expires = int(now.timestamp()) + CACHE_SECONDS
            item = {"pk": key["pk"], "expiresAt": {"N": str(expires)}}
            item.update({name: {"SS": sorted(values)} for name, values in sets.items()})
            call("dynamodb", "put_item", TableName=table, Item=item)
    except AWS_FAILURES as error:
        log.warning("service cache not written", error=str(error))
