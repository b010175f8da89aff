"""Which instances a Spot or rebalance event from the test source may act on.

Anyone allowed `events:PutEvents` on the default bus can send a test-source event (AWS refuses
only `aws.*` sources), and a Spot warning or rebalance recommendation names no lifecycle action
that Auto Scaling could vouch for. So a test event acts only on an instance that opted in with
an EC2 tag, which only someone allowed to tag the instance can add. Events from AWS's own
sources are never asked: the real two-minute path makes no extra call before DRAINING.
"""

from __future__ import annotations

from drainer.aws import call

TEST_EVENTS_TAG = "ecs-drainer:test-events"
TEST_EVENTS_ALLOWED = "allow"


def accepts_test_events(instance_id: str | None) -> bool:
    """The instance carries the tag `ecs-drainer:test-events = allow`.

    ec2:DescribeTags (read-only; it supports no resource-level permissions, Service
    Authorization Reference, Amazon EC2) with filters on the instance and the tag key.
    """
    if not instance_id:
        return False
    found = call(
        "ec2",
        "describe_tags",
        Filters=[
            {"Name": "resource-id", "Values": [instance_id]},
            {"Name": "key", "Values": [TEST_EVENTS_TAG]},
        ],
    )
    return any(tag.get("Value") == TEST_EVENTS_ALLOWED for tag in found.get("Tags", []))
