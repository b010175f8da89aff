"""EventBridge as the orchestrator meets it: PutEvents, and rule → target delivery.

moto's events backend accepts `aws.*` sources and oversized requests that AWS refuses, and never
delivers to Step Functions targets. This module does both as AWS does, once, for the tests
(sandbox/harness.py) and for the sandbox server (which routes moto's PutEvents here).
"""

from __future__ import annotations

import json
import threading
import uuid
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
class Rule:
    """A rule on the default bus with its one target, as the stack creates them."""

    name: str  # the pattern's name in stacks.event_patterns, e.g. "LifecycleTerminate"
    pattern: dict[str, Any]
    target_arn: str  # a state machine or a Lambda function
    # The target is the dispatch function: what it answers names the drain execution it started
    # (the sandbox reads the answer; in AWS an asynchronous invocation returns none).
    starts_drains: bool = False


@dataclass
class Delivery:
    """One event delivered to the state machine (through the dispatch function): the execution
    it started, or the one of the same event it found (a redelivery makes no second one)."""

    rule: str
    event: dict[str, Any]
    execution_arn: str


@dataclass
class Undelivered:
    """An event its target refused, or a drain the dispatch function failed to start (in AWS:
    the dead-letter queue receives it, from the rule or after Lambda's retries)."""

    rule: str
    event: dict[str, Any]
    error: str


class EventBridge:
    """The default event bus: `put_events` for callers, `deliver` for AWS's own events.

    Delivery is asynchronous, as in AWS: an event emitted inside an API call (a Lambda's
    TerminateInstanceInAutoScalingGroup starting a lifecycle action) reaches the targets after
    that call, on the virtual clock's next turn. `in_flight` counts events not yet delivered.
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
        self._lock = threading.Lock()
        self._in_flight = 0
        self._functions_running = 0
        self._drains_starting = 0

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
        """Hand an event to the bus; its rules' targets receive it on the clock's next turn."""
        with self._lock:
            self._in_flight += 1
        self.clock.call_later(0, lambda: self._dispatch(event), "EventBridge")

    def _dispatch(self, event: dict[str, Any]) -> None:
        try:
            for rule, pattern in self.rules:
                if pattern.matches_event(event):
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
        with self._lock:
            self._in_flight += 1
            self._functions_running += 1
            self._drains_starting += starting

        def invoke() -> None:
            try:
                answer = self.lambdas.invoke(
                    FunctionName=rule.target_arn, InvocationType="Event", Payload=payload
                )
                if rule.starts_drains:
                    self._record_dispatch(rule, event, answer)
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self._functions_running -= 1
                    self._drains_starting -= starting

        threading.Thread(target=invoke, name="lambda-target", daemon=True).start()

    def _record_dispatch(self, rule: Rule, event: dict[str, Any], answer: dict[str, Any]) -> None:
        """The dispatch function's answer: the drain's execution, or its error. An error stands
        for what AWS does after Lambda's two retries of a failed asynchronous invocation: the
        event lands in the dead-letter queue (the sandbox does not wait the retries out)."""
        body = json.loads(answer["Payload"].read() or b"null")
        if answer.get("FunctionError") or not isinstance(body, dict):
            error = body if isinstance(body, dict) else {}
            reason = f"{error.get('errorType')}: {error.get('errorMessage')}"
            self.undelivered.append(Undelivered(rule.name, event, reason))
            return
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
