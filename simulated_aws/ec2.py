"""EC2 as the drain orchestrator sees it: the tags of the world's instances.

DescribeTags per the EC2 API reference (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/
API_DescribeTags.html): filters `resource-id`, `resource-type` and `key` (each with a list of
values, OR within a filter, AND across filters); the answer lists TagDescription items
(Key, ResourceId, ResourceType, Value). Answers follow botocore's ec2 output shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from simulated_aws.faults import ApiError, not_implemented

if TYPE_CHECKING:
    from simulated_aws.world import World

# Filter name -> the TagDescription field it matches.
FILTERS = {
    "resource-id": "ResourceId",
    "resource-type": "ResourceType",
    "key": "Key",
    "value": "Value",
}


class Ec2Model:
    def __init__(self, world: World) -> None:
        self.world = world

    def dispatch(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        handler: Callable[[dict[str, Any]], dict[str, Any]] | None = getattr(
            self, f"api_{operation}", None
        )
        if handler is None:
            raise not_implemented("ec2", operation)
        return handler(params)

    def api_DescribeTags(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted: dict[str, set[str]] = {}
        for entry in params.get("Filters") or []:
            name = entry.get("Name")
            if name not in FILTERS:
                if name in ("tag", "tag-key", "tag-value") or str(name).startswith("tag:"):
                    raise not_implemented("ec2", "DescribeTags", f"filter {name}")
                raise ApiError("InvalidParameterValue", f"The filter '{name}' is invalid")
            wanted[name] = set(entry.get("Values") or [])
        tags = [
            {"Key": key, "ResourceId": ec2.instance_id, "ResourceType": "instance", "Value": value}
            for ec2 in self.world.instances.values()
            if ec2.state != "terminated"
            for key, value in sorted(ec2.tags.items())
        ]
        for name, values in wanted.items():
            tags = [tag for tag in tags if tag[FILTERS[name]] in values]
        return {"Tags": tags}
