"""Benchmark of the drain orchestrator against two baselines, in virtual time (`make bench`).

Importing the package prepares the process first, before any module imports `drainer.aws` or
creates a boto3 session: the project and lambdas/ on sys.path, fake credentials (nothing here
may reach AWS), and one SDK attempt so throttling reaches the state machine's Retry, as in the
tests.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "lambdas"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    DRAINER_SDK_MAX_ATTEMPTS="1",
)
for _variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(_variable, None)
