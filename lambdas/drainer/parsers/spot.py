"""`EC2 Spot Instance Interruption Warning` → DrainRequest.

Source: EC2 User Guide, "Spot Instance interruption notices": the instance is interrupted two
minutes after the event's time; a lifecycle hook cannot delay it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from drainer.clock import iso
from drainer.parsers.fields import INSTANCE_ID, checked, optional_text, text_field
from drainer.request import SPOT, DrainRequest

DETAIL_TYPE = "EC2 Spot Instance Interruption Warning"
SOURCE = "aws.ec2"
INTERRUPTION_NOTICE_SECONDS = 120


def parse(event: Mapping[str, Any], when: datetime) -> DrainRequest:
    detail = event["detail"]
    return DrainRequest(
        kind=SPOT,
        instance_id=checked(detail, "instance-id", INSTANCE_ID, "an EC2 instance id like i-0abc…"),
        reason="spot-interruption",
        event_id=optional_text(event, "id"),
        event_time=iso(when),
        source=text_field(event, "source"),
        detail_type=DETAIL_TYPE,
        deadline=iso(when + timedelta(seconds=INTERRUPTION_NOTICE_SECONDS)),
        spot_action=optional_text(detail, "instance-action", where="detail."),
    )
