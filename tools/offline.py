"""Prepare a process that runs the drainer offline (tests, benchmark): nothing may reach AWS.

Call before anything imports `drainer.aws` or creates a boto3 session.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def prepare_process() -> None:
    """The project and lambdas/ on sys.path (the handlers import `drainer`), fake credentials
    and one region, and one SDK attempt so throttling reaches the state machine's Retry as it
    does once the SDK's own attempts are spent."""
    for path in (ROOT, ROOT / "lambdas"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        DRAINER_SDK_MAX_ATTEMPTS="1",
    )
    for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(variable, None)
