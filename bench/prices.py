"""List prices (us-east-1) and the per-invocation assumptions the cost column rests on."""

from __future__ import annotations

from dataclasses import dataclass

# Step Functions Standard: $0.025 per 1,000 state transitions; retries count too
# (AWS Step Functions pricing page, https://aws.amazon.com/step-functions/pricing/).
SFN_PER_TRANSITION = 0.025 / 1000
# Lambda: $0.20 per million requests (AWS Lambda pricing page).
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
# Lambda duration, first pricing tier: arm64 $0.0000133334 and x86_64 $0.0000166667 per GB-s
# (AWS Lambda pricing page, as reproduced in cloudchipr.com/blog/aws-lambda-pricing).
LAMBDA_PER_GB_SECOND = {"arm64": 0.0000133334, "x86_64": 0.0000166667}
# SNS standard topic: $0.50 per million publishes; deliveries to Lambda are not charged
# (Amazon SNS pricing page, as summarised in factualminds.com "Amazon SNS pricing").
SNS_PER_PUBLISH = 0.50 / 1_000_000
# EventBridge rules on events from AWS services (aws.autoscaling, aws.ec2) are free.

# Assumed billed duration of one drainer Lambda invocation: a warm function making at most
# three AWS API calls. The harness runs the handlers in-process, so this is not measured.
DRAINER_BILLED_MS = 100
# ecs-cid-sample: a looping invocation sleeps 5 s before re-publishing (cform/ecs.yaml,
# time.sleep(5)), plus the same assumed 100 ms of API calls.
SAMPLE_API_MS = 100
SAMPLE_SLEEP_MS = 5000


@dataclass(frozen=True)
class LambdaProfile:
    """How one function is deployed: memory and architecture decide the GB-s price."""

    memory_mb: int
    architecture: str

    def duration_cost(self, billed_ms: float) -> float:
        gb_seconds = self.memory_mb / 1024 * billed_ms / 1000
        return gb_seconds * LAMBDA_PER_GB_SECOND[self.architecture]

    def invocation_cost(self, billed_ms: float) -> float:
        return LAMBDA_PER_REQUEST + self.duration_cost(billed_ms)


def drainer_cost(transitions: int, invocations: int, profile: LambdaProfile) -> float:
    """Step Functions transitions plus Lambda requests and duration, in USD."""
    return transitions * SFN_PER_TRANSITION + invocations * profile.invocation_cost(
        DRAINER_BILLED_MS
    )


def assumptions(profile: LambdaProfile) -> list[str]:
    """The sentences printed under the tables."""
    return [
        f"Step Functions Standard ${SFN_PER_TRANSITION * 1000:.3f} per 1,000 state transitions "
        "(retried Task attempts are billed as transitions too).",
        f"Lambda ${LAMBDA_PER_REQUEST * 1e6:.2f} per million requests plus duration at "
        f"${LAMBDA_PER_GB_SECOND[profile.architecture]} per GB-s ({profile.architecture}); "
        f"drainer functions: {profile.memory_mb} MB (stack config lambda_memory_mb), "
        f"{DRAINER_BILLED_MS} ms billed per invocation (assumed, warm).",
        "ecs-cid-sample: its template's function, 128 MB x86_64 "
        f"(${LAMBDA_PER_GB_SECOND['x86_64']} per GB-s); a looping invocation bills its "
        f"{SAMPLE_SLEEP_MS} ms sleep plus {SAMPLE_API_MS} ms; SNS ${SNS_PER_PUBLISH * 1e6:.2f} "
        "per million publishes, deliveries to Lambda free.",
        "EventBridge rules on AWS service events are free. Not counted: the drainer's two "
        "DynamoDB writes and one SNS outcome publish per drain (< $0.000005), CloudWatch Logs.",
    ]
