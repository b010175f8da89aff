"""`EC2 Instance Rebalance Recommendation` → DrainRequest.

Source: EC2 User Guide, "EC2 instance rebalance recommendations": a signal of elevated
interruption risk, usually ahead of an interruption and far more frequent than interruptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from drainer.clock import iso
from drainer.parsers.fields import INSTANCE_ID, checked, optional_text, text_field
from drainer.request import REBALANCE, DrainRequest

DETAIL_TYPE = "EC2 Instance Rebalance Recommendation"
SOURCE = "aws.ec2"


def parse(event: Mapping[str, Any], when: datetime) -> DrainRequest:
    detail = event["detail"]
    return DrainRequest(
        kind=REBALANCE,
        instance_id=checked(detail, "instance-id", INSTANCE_ID, "an EC2 instance id like i-0abc…"),
        reason="rebalance-recommendation",
        event_id=optional_text(event, "id"),
        event_time=iso(when),
        source=text_field(event, "source"),
        detail_type=DETAIL_TYPE,
    )
