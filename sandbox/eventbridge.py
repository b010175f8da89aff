"""EventBridge as the orchestrator meets it: PutEvents, and rule → target delivery.

moto's events backend accepts `aws.*` sources and oversized requests that AWS refuses, and never
delivers to Step Functions targets. This module does both as AWS does, once, for the tests
(sandbox/harness.py) and for the sandbox server (which routes moto's PutEvents here).
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from moto.events.exceptions import ValidationException
from moto.events.models import EventPattern

from simulated_aws.clock import VirtualClock

STATE_MACHINE_ARN_PART = ":states:"
EVENT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # EventBridge writes whole seconds
# PutEvents: the entries of one request may total 256 KB, counted as AWS documents it
# (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html). Over it,
# the whole request fails (public report of the error: awslabs/aws-service-catalog-puppet#563).
MAX_ENTRIES_BYTES = 262_144
TIME_BYTES = 14  # a given Time counts 14 bytes, whatever its value
TOO_LARGE = "Total size of the entries in the request is over the limit."


@dataclass(frozen=True)
class DeliveryModel:
    """How late, how often and in which order the bus hands an event to the rules' targets.

    What AWS documents: EventBridge delivers to targets at least once and retries (EventBridge
    user guide, "How EventBridge retries delivering events",
    https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-retry-policy.html); the
    default bus does not order events; ECS sends its events with "durable" delivery
    (EventBridge events reference, https://docs.aws.amazon.com/eventbridge/latest/ref/
    events-ref-ecs.html), while a "best effort" service may in rare cases lose one
    (https://docs.aws.amazon.com/eventbridge/latest/ref/event-delivery-level.html); ECS events
    "can be sent multiple times", a duplicate carrying the same detail `version` (ECS developer
    guide, https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_cwe_events.html).
    No latency figure is documented; EventBridge only measures it (the CloudWatch metrics
    IngestionToInvocationStartLatency and IngestionToInvocationSuccessLatency,
    https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-monitoring.html).

    The model: each event is lost with probability `loss`; otherwise it reaches the rules after
    `delay_seconds` plus a jitter (`uniform` on [0, jitter_seconds], or `exponential` of mean
    jitter_seconds capped at `max_jitter_seconds`); with probability `duplication` it reaches
    them a second time (same `id`, same detail) after a delay of its own. Events reach the
    targets in the order of their sampled delays, not of their emission. `seed` makes a run
    reproducible. The default is an assumption: half a second to one and a half.
    """

    delay_seconds: float = 0.5
    jitter_seconds: float = 1.0
    jitter: str = "uniform"  # or "exponential"
    max_jitter_seconds: float = 60.0
    loss: float = 0.0
    duplication: float = 0.0
    seed: int = 0
    # Only events of these detail-types may be lost (empty: any event), e.g. the task events
    # alone, so a drain's own lifecycle event still arrives.
    lossy_detail_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.jitter not in ("uniform", "exponential"):
            raise ValueError(f"jitter must be uniform or exponential, not {self.jitter!r}")
        if self.delay_seconds < 0 or self.jitter_seconds < 0:
            raise ValueError("delays cannot be negative")
        if not (0 <= self.loss <= 1 and 0 <= self.duplication <= 1):
            raise ValueError("loss and duplication are probabilities")

    @property
    def max_delay_seconds(self) -> float:
        if self.jitter == "uniform":
            return self.delay_seconds + self.jitter_seconds
        return self.delay_seconds + self.max_jitter_seconds

    def may_lose(self, event: dict[str, Any]) -> bool:
        return bool(self.loss) and (
            not self.lossy_detail_types or event.get("detail-type") in self.lossy_detail_types
        )

    def sample_delay(self, rng: random.Random) -> float:
        """Whole milliseconds, the finest time Step Functions and the events show."""
        if self.jitter_seconds == 0:
            extra = 0.0
        elif self.jitter == "uniform":
            extra = rng.uniform(0, self.jitter_seconds)
        else:
            extra = min(rng.expovariate(1 / self.jitter_seconds), self.max_jitter_seconds)
        return round(self.delay_seconds + extra, 3)


IMMEDIATE = DeliveryModel(delay_seconds=0, jitter_seconds=0)
# A pessimistic bus, for measuring what a slow delivery costs: 2 s, plus 10 s on average.
PESSIMISTIC = DeliveryModel(delay_seconds=2, jitter_seconds=10, jitter="exponential")


@dataclass(frozen=True)
class Dispatched:
    """One event the bus handed to its rules (the delivery log): when, to which rules."""

    time: datetime
    event: dict[str, Any]
    rules: tuple[str, ...]
    duplicate: bool


@dataclass(frozen=True)
class Rule:
    """A rule on the default bus with its one target, as the stack creates them."""

    name: str  # the pattern's name in stacks.event_patterns, e.g. "LifecycleTerminate"
    pattern: dict[str, Any]
    target_arn: str  # a state machine or a Lambda function
    # The target is the dispatch function: what it answers names the drain execution it started
    # (the sandbox reads the answer; in AWS an asynchronous invocation returns none).
    starts_drains: bool = False
    # The target is the wake function: a drain's wait may end by what it sends, so time waits
    # for it as for a drain starting (the task-stopped rule, events mode).
    wakes_drains: bool = False


@dataclass
class Delivery:
    """One event delivered to the state machine (through the dispatch function): the execution
    it started, or the one of the same event it found (a redelivery makes no second one)."""

    rule: str
    event: dict[str, Any]
    execution_arn: str


@dataclass
class Undelivered:
    """An event its target refused, or one the function it invoked failed on: a drain not
    started, a rescue or reactivation not done (in AWS: the dead-letter queue receives it, from
    the rule or after Lambda's retries)."""

    rule: str
    event: dict[str, Any]
    error: str


class EventBridge:
    """The default event bus: `put_events` for callers, `deliver` for AWS's own events.

    Delivery is asynchronous, as in AWS: an event emitted inside an API call (a Lambda's
    TerminateInstanceInAutoScalingGroup starting a lifecycle action) reaches the targets after
    that call, as late as `delivery` (a DeliveryModel) says. `in_flight` counts events not yet
    delivered; `log` lists every event handed to the rules, `lost` every event lost.
    """

    def __init__(
        self,
        clock: VirtualClock,
        rules: list[Rule],
        sfn: Any,
        lambdas: Any,
        account: str,
        region: str,
        deliveries: list[Delivery] | None = None,
        on_accepted: Callable[[dict[str, Any]], object] | None = None,
        delivery: DeliveryModel | None = None,
        on_dispatched: Callable[[Dispatched], object] | None = None,
    ) -> None:
        self.clock = clock
        self.rules = [(rule, EventPattern.load(json.dumps(rule.pattern))) for rule in rules]
        self.sfn = sfn
        self.lambdas = lambdas
        self.account = account
        self.region = region
        self.deliveries = deliveries if deliveries is not None else []
        self.on_accepted = on_accepted
        self.undelivered: list[Undelivered] = []
        self.delivery = delivery or DeliveryModel()
        self.log: list[Dispatched] = []
        self.lost: list[dict[str, Any]] = []
        self.on_dispatched = on_dispatched
        self._seen: Counter[str] = Counter()  # how often each event's content came (_fate)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._functions_running = 0
        self._drains_starting = 0
        self._drains_waking = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def functions_running(self) -> int:
        """Lambda targets invoked and not yet returned: actors of the virtual clock, like running
        executions (time may move only while each of them waits on the clock)."""
        return self._functions_running

    @property
    def drains_starting(self) -> int:
        """Dispatch invocations not yet returned: a drain whose execution is being started."""
        return self._drains_starting

    @property
    def drains_waking(self) -> int:
        """Wake invocations not yet returned: a drain's wait about to end."""
        return self._drains_waking

    # --- PutEvents -------------------------------------------------------------------------
    def put_events(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """PutEvents' result entries: `aws.*` sources refused, accepted events enveloped and
        delivered. A refused entry does not fail the call (FailedEntryCount counts it); entries
        over 256 KB in total fail the whole request, as in AWS (ValidationException)."""
        if sum(entry_size(entry) for entry in entries) > MAX_ENTRIES_BYTES:
            raise ValidationException(TOO_LARGE)
        results = []
        for entry in entries:
            problem = _refusal(entry)
            if problem is not None:
                results.append(problem)
                continue
            event = self.envelope(entry)
            if self.on_accepted is not None:
                self.on_accepted(event)
            self.deliver(event)
            results.append({"EventId": event["id"]})
        return results

    def envelope(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The event as rules and targets see it: the entry plus id, time, account, region."""
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": entry["DetailType"],
            "source": entry["Source"],
            "account": self.account,
            "time": _event_time(entry.get("Time"), self.clock.now()),
            "region": self.region,
            "resources": list(entry.get("Resources") or []),
            "detail": json.loads(entry["Detail"]),
        }

    # --- delivery --------------------------------------------------------------------------
    def deliver(self, event: dict[str, Any]) -> None:
        """Hand an event to the bus; its rules' targets receive it as `delivery` says."""
        model = self.delivery
        with self._lock:
            fate = self._fate(event)
            if model.may_lose(event) and fate.random() < model.loss:
                self.lost.append(event)
                return
            delays = [model.sample_delay(fate)]
            if model.duplication and fate.random() < model.duplication:
                delays.append(model.sample_delay(fate))
            self._in_flight += len(delays)
        for copy, delay in enumerate(delays):
            self.clock.call_later(
                delay, lambda duplicate=bool(copy): self._dispatch(event, duplicate), "EventBridge"
            )

    def _fate(self, event: dict[str, Any]) -> random.Random:
        """The generator an event's loss, delay and duplication are drawn from: seeded by the
        model's seed, the event's content (without its id, which PutEvents makes anew) and how
        often that content came before. So one event's fate does not depend on which other
        events the world's threads happened to emit first, and runs repeat exactly."""
        content = json.dumps(
            {key: value for key, value in event.items() if key != "id"}, sort_keys=True, default=str
        )
        occurrence = self._seen[content]
        self._seen[content] += 1
        return random.Random(f"{self.delivery.seed}|{occurrence}|{content}")

    def _dispatch(self, event: dict[str, Any], duplicate: bool = False) -> None:
        try:
            matched = [rule for rule, pattern in self.rules if pattern.matches_event(event)]
            names = tuple(rule.name for rule in matched)
            dispatched = Dispatched(self.clock.now(), event, names, duplicate)
            self.log.append(dispatched)
            if self.on_dispatched is not None:
                self.on_dispatched(dispatched)
            for rule in matched:
                self._send(rule, event)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _send(self, rule: Rule, event: dict[str, Any]) -> None:
        payload = json.dumps(event)
        if STATE_MACHINE_ARN_PART in rule.target_arn:
            # A classic rule target cannot name executions: AWS names them at random
            # (moto would name them all "None" and refuse the second one).
            try:
                arn = self.sfn.start_execution(
                    stateMachineArn=rule.target_arn, name=str(uuid.uuid4()), input=payload
                )["executionArn"]
            except ClientError as refused:  # e.g. input over 256 KiB: the envelope adds bytes
                error = refused.response.get("Error", {})
                reason = f"{error.get('Code')}: {error.get('Message')}"
                self.undelivered.append(Undelivered(rule.name, event, reason))
                return
            self.deliveries.append(Delivery(rule.name, event, arn))
        else:  # a Lambda function: EventBridge invokes it asynchronously
            self._invoke_async(rule, event, payload)

    def _invoke_async(self, rule: Rule, event: dict[str, Any], payload: str) -> None:
        """`InvocationType=Event` as AWS runs it: the bus does not wait for the function, and
        time goes on while it runs (the rescue function waits a grace for ECS on this clock).
        The invocation counts as in flight until it returns."""
        starting = 1 if rule.starts_drains else 0
        waking = 1 if rule.wakes_drains else 0
        with self._lock:
            self._in_flight += 1
            self._functions_running += 1
            self._drains_starting += starting
            self._drains_waking += waking

        def invoke() -> None:
            try:
                answer = self.lambdas.invoke(
                    FunctionName=rule.target_arn, InvocationType="Event", Payload=payload
                )
                self._record_answer(rule, event, answer)
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self._functions_running -= 1
                    self._drains_starting -= starting
                    self._drains_waking -= waking

        threading.Thread(target=invoke, name="lambda-target", daemon=True).start()

    def _record_answer(self, rule: Rule, event: dict[str, Any], answer: dict[str, Any]) -> None:
        """A Lambda target's answer. An error stands for what AWS does after Lambda's two retries
        of a failed asynchronous invocation: the event lands in the function's dead-letter queue
        (the sandbox does not wait the retries out). This holds for every function a rule invokes
        (dispatch, rescue, reactivate); the dispatch function's answer also tells the tests which
        execution an event started (in AWS an asynchronous invocation returns nothing)."""
        body = json.loads(answer["Payload"].read() or b"null")
        failed = bool(answer.get("FunctionError"))
        if failed or (rule.starts_drains and not isinstance(body, dict)):
            error = body if isinstance(body, dict) else {}
            reason = f"{error.get('errorType')}: {error.get('errorMessage')}"
            self.undelivered.append(Undelivered(rule.name, event, reason))
            return
        if rule.starts_drains:
            self.deliveries.append(Delivery(rule.name, event, body["executionArn"]))


def _refusal(entry: dict[str, Any]) -> dict[str, str] | None:
    """The failed result entry for an entry AWS would not accept, else None."""
    for field in ("Source", "DetailType", "Detail"):
        if not entry.get(field):
            return {
                "ErrorCode": "InvalidArgument",
                "ErrorMessage": f"Parameter {field} is not valid. Reason: {field} is a required "
                "argument.",
            }
    if str(entry["Source"]).startswith("aws."):
        # Only AWS services put `aws.*` events; the call itself succeeds, the entry fails
        # (API_PutEventsResultEntry in the EventBridge API reference).
        return {
            "ErrorCode": "NotAuthorizedForSourceException",
            "ErrorMessage": "Not authorized for the source.",
        }
    try:
        detail = json.loads(entry["Detail"])
    except (TypeError, ValueError):
        detail = None
    if not isinstance(detail, dict):
        return {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
    return None


def entry_size(entry: dict[str, Any]) -> int:
    """An entry's size as EventBridge counts it: UTF-8 bytes of Source, DetailType, Detail and
    each resource, plus 14 bytes for a Time."""
    texts = [entry.get("Source"), entry.get("DetailType"), entry.get("Detail")]
    texts += list(entry.get("Resources") or [])
    size = sum(len(str(text).encode()) for text in texts if text is not None)
    return size + (TIME_BYTES if entry.get("Time") is not None else 0)


def _event_time(value: Any, now: datetime) -> str:
    """PutEvents' optional Time (a datetime, or epoch seconds on the wire), else now."""
    if isinstance(value, datetime):
        now = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, int | float):
        now = datetime.fromtimestamp(value, UTC)
    return now.astimezone(UTC).strftime(EVENT_TIME_FORMAT)
