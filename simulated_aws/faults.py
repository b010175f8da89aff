"""API errors, throttling buckets and injected faults of the simulated world."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulated_aws.clock import VirtualClock


class ApiError(Exception):
    """An AWS error answer: botocore turns it into ClientError(code, message)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def not_implemented(service: str, operation: str, detail: str = "") -> ApiError:
    # A loud, unmistakable code so gaps in the world never pass for AWS behaviour.
    what = f"{service}:{operation}" + (f" ({detail})" if detail else "")
    return ApiError(
        "WorldNotImplemented", f"simulated_aws does not implement {what}; add it there", 501
    )


class TokenBucket:
    """Burst = bucket size, rate = refill per second, on the virtual clock.

    ECS documents exactly this model (API reference, "Request throttling for the Amazon ECS
    API": bucket maximum capacity = burst, refill rate = sustained rate).
    """

    def __init__(self, clock: VirtualClock, rate_per_s: float, burst: float) -> None:
        self.clock = clock
        self.rate = rate_per_s
        self.burst = burst
        self.tokens = burst
        self.stamp = clock.timestamp()

    def take(self) -> bool:
        now = self.clock.timestamp()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Throttle:
    """Off until `configure`; one bucket per operation, or one shared by all operations."""

    def __init__(self, clock: VirtualClock, code: str) -> None:
        self.clock = clock
        self.code = code
        self.rate: float | None = None
        self.burst = 0.0
        self.per_operation = True
        self.buckets: dict[str, TokenBucket] = {}

    def configure(self, rate_per_s: float | None, burst: float, per_operation: bool) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self.per_operation = per_operation
        self.buckets = {}

    def check(self, operation: str) -> None:
        if self.rate is None:
            return
        key = operation if self.per_operation else "*"
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket(self.clock, self.rate, self.burst)
        if not bucket.take():
            raise ApiError(self.code, "Rate exceeded", 400)


@dataclass(eq=False)
class Fault:
    """Makes matching calls fail; `count=None` means every matching call."""

    service: str
    operation: str  # "*" matches every operation of the service
    code: str
    status: int
    message: str
    count: int | None = 1
    predicate: Callable[[dict[str, Any]], bool] | None = None
    hits: int = field(default=0)

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.hits >= self.count

    def matches(self, service: str, operation: str, params: dict[str, Any]) -> bool:
        if self.exhausted or service != self.service:
            return False
        if self.operation not in ("*", operation):
            return False
        return self.predicate is None or self.predicate(params)

    def cancel(self) -> None:
        self.count = self.hits
