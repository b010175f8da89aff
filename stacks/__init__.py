"""The CDK side: configuration, event patterns, the state machine's substitutions, the stack."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_DIR = ROOT / "lambdas"
# The Lambdas' pure functions (schedule, parsers) are the single source for config validation too.
if str(LAMBDA_DIR) not in sys.path:
    sys.path.insert(0, str(LAMBDA_DIR))
