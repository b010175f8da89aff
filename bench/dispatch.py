"""What starting drains through the dispatch function adds before DRAINING on the Spot path.

A model, not a measurement: the simulation runs every Lambda in-process in no virtual time, so
it cannot see this delay. Before, EventBridge called StartExecution itself; now it invokes the
dispatch function asynchronously, which calls StartExecution. The steps added, each with its
figure and where the figure comes from; the handler's import time is the one this benchmark
measures (Cold start table). A Spot interruption comes two minutes after its warning (EC2 User
Guide, "Spot Instance interruption notices"); the budget for this step is one second.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.coldstart import ColdStart

HANDLER = "dispatch"
BUDGET_SECONDS = 1.0
# Assumed figures (seconds). Lambda publishes no typical delay of its asynchronous queue; its
# AsyncEventAge metric shows the real one per function (Lambda developer guide, "Monitoring
# asynchronous invocations": https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html).
ASYNC_QUEUE_SECONDS = 0.10
# One in-Region API call: StartExecution from the function (EventBridge used to make it; it is
# counted here in full, the conservative side).
START_EXECUTION_SECONDS = 0.05
# Handler work besides the call: building the name and the input document.
HANDLER_SECONDS = 0.01
# A cold start's runtime start before the handler module is imported (Python runtime, a
# 31 KiB package). Lambda: "Understanding the Lambda execution environment lifecycle",
# https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html (the Init phase).
RUNTIME_START_SECONDS = 0.25


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float
    cold_only: bool
    source: str


@dataclass(frozen=True)
class DispatchModel:
    steps: list[Step]

    @property
    def warm_seconds(self) -> float:
        return sum(step.seconds for step in self.steps if not step.cold_only)

    @property
    def cold_seconds(self) -> float:
        return sum(step.seconds for step in self.steps)

    @property
    def within_budget(self) -> bool:
        return self.cold_seconds < BUDGET_SECONDS


def model(cold: ColdStart) -> DispatchModel:
    (handler,) = [item for item in cold.handlers if item.module == HANDLER]
    return DispatchModel(
        [
            Step(
                "EventBridge → Lambda asynchronous queue → dispatch function",
                ASYNC_QUEUE_SECONDS,
                False,
                "assumed (Lambda's AsyncEventAge metric measures it)",
            ),
            Step("dispatch handler: name and input", HANDLER_SECONDS, False, "assumed"),
            Step("StartExecution", START_EXECUTION_SECONDS, False, "assumed, one API round trip"),
            Step(
                "cold start: runtime start",
                RUNTIME_START_SECONDS,
                True,
                "assumed (Lambda Init phase)",
            ),
            Step(
                "cold start: import lambdas/dispatch.py",
                handler.median_us / 1e6,
                True,
                f"measured here, median of {cold.repetitions} (Cold start table)",
            ),
        ]
    )
