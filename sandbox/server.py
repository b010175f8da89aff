"""`make sandbox`: the orchestrator behind a local AWS endpoint, seeded with the demo cluster.

One process: moto's ThreadedMotoServer on 127.0.0.1 (Step Functions with its ASL interpreter,
Lambda, DynamoDB, SNS, EventBridge, CloudWatch Logs), the simulated world answering ECS and Auto
Scaling in-process, and the clock driver. Talk to it with the AWS CLI and `--endpoint-url`.

How requests flow:
- `aws events put-events` reaches moto's events backend, whose PutEvents is routed to
  sandbox.eventbridge: `aws.*` sources refused as AWS does, accepted events enveloped on the
  virtual clock and delivered to the rules' targets (moto itself does not start executions).
- moto's interpreter invokes Lambdas with a boto3 client aimed at http://localhost:$MOTO_PORT:
  that request comes back to this server, whose Lambda backend runs the real handler in-process
  (sandbox.lambda_seam). The handler's DynamoDB/SNS calls go to this endpoint (AWS_ENDPOINT_URL),
  its ECS/Auto Scaling calls never leave the process (simulated_aws/routing.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TextIO

from moto.events.models import EventsBackend
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

import simulated_aws  # noqa: F401  (before any boto3 session: routes ECS/Auto Scaling to the world)
from drains.executions import duration, list_executions, read
from sandbox import endpoint, quotas
from sandbox.deployed_roles import deployed_authorizer
from sandbox.deployment import (
    DEPLOYED_FUNCTIONS,
    MOTO_CONFIG,
    Deployment,
    activate,
    deploy,
    log_group,
    running_executions,
)
from sandbox.driver import ClockDriver
from sandbox.eventbridge import Dispatched, EventBridge
from sandbox.lambda_seam import LambdaSeam
from sandbox.world_setup import (
    ECS_MANAGED_HOOK,
    AwsSideOfTestEvents,
    demo_world,
    describe,
    events_files,
    sandbox_config,
)
from simulated_aws.iam.authorization import installed
from stacks import ROOT
from stacks.config import DrainerConfig, load_config

DEFAULT_SPEED = 60.0  # virtual seconds per wall second
WATCH_SECONDS = 0.2  # how often the server looks at executions (log lines, status events)
STATUS_CHANGE = "Step Functions Execution Status Change"
# Every event the bus hands to its rules, one JSON line each (AWS shows no such log: the
# sandbox's own, for seeing what reached the rules; `aws logs filter-log-events` reads it).
BUS_LOG_GROUP = "/sandbox/eventbridge"
AWS_CLI = ROOT / ".venv" / "bin" / "aws"


class Sandbox:
    """The endpoint, provisioned and seeded; `with Sandbox(...) as sandbox:` runs it.

    It owns its process: it points every AWS setting of the environment at itself, installs the
    world's routing and virtual clock process-wide, and patches moto's Lambda and PutEvents.
    """

    def __init__(
        self,
        config: DrainerConfig,
        port: int = endpoint.DEFAULT_PORT,
        speed: float = DEFAULT_SPEED,
        out: TextIO | None = None,
        other_hook: str | None = None,
    ) -> None:
        self.config = sandbox_config(config)  # the events files' test source on
        self.other_hook = other_hook
        self.port = port
        self.speed = speed
        self.out = out or sys.stdout
        self.endpoint = endpoint.url(port)
        self._stack = ExitStack()
        self._log_streams: set[str] = set()
        self._lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        try:
            self.start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        if endpoint.port_in_use(self.port):
            raise SystemExit(
                f"sandbox: {endpoint.HOST}:{self.port} is in use (another sandbox?). "
                f"Pick another port: --port N or {endpoint.PORT_VARIABLE}=N"
            )
        _use_only(self.endpoint, self.port)
        self.world = demo_world(self.config, self.other_hook)
        server = ThreadedMotoServer(ip_address=endpoint.HOST, port=self.port, verbose=False)
        server.start()
        self._stack.callback(server.stop)
        self._stack.enter_context(quotas.enforced())  # what moto accepts and AWS refuses
        _post_json(f"{self.endpoint}/moto-api/config", MOTO_CONFIG)
        self._stack.enter_context(self.world.install())
        self._logs = self.client("logs")
        self._logs.create_log_group(logGroupName=BUS_LOG_GROUP)
        self._logs.create_log_stream(logGroupName=BUS_LOG_GROUP, logStreamName="default")
        # Each handler runs as its function's role from the synthesized stack: a call the
        # stack does not grant fails with AccessDenied, as it would in AWS.
        authorizer = self._stack.enter_context(installed(deployed_authorizer(self.config)))
        seam = LambdaSeam(
            DEPLOYED_FUNCTIONS, log_sink=self._lambda_log, run_as=authorizer.acting_as
        )
        self._stack.enter_context(seam.installed())
        self.deployment: Deployment = deploy(self.config, self.client)
        activate(self.deployment)
        self.effects = AwsSideOfTestEvents(self.world)
        self.eventbridge = EventBridge(
            self.world.clock,
            self.deployment.rules,
            self.client("stepfunctions"),
            self.client("lambda"),
            endpoint.ACCOUNT,
            endpoint.REGION,
            on_accepted=self.effects,
            on_dispatched=self._bus_log,
        )
        self._stack.enter_context(_put_events_routed_to(self.eventbridge))
        self.world.subscribe(self.effects.forward(self.eventbridge.deliver))
        driver = ClockDriver(self.world.clock, self.busy, self.actors, self.speed)
        driver.start()
        self._stack.callback(driver.stop)
        watcher = ExecutionWatcher(self)
        watcher.start()
        self._stack.callback(watcher.stop)

    def client(self, service: str) -> Any:
        return endpoint.client(service, self.endpoint)

    def actors(self) -> int:
        """What time waits for: running executions, the dispatch function starting one (a
        Spot interruption must not come before its drain starts) and the wake function ending a
        drain's wait (its wait must not time out under it). Not the rescue function: it waits
        its grace on this machine's clock while virtual time moves on."""
        bus = self.eventbridge
        return running_executions() + bus.drains_starting + bus.drains_waking

    def busy(self) -> bool:
        return running_executions() > 0 or self.eventbridge.in_flight > 0 or self.effects.pending

    @property
    def state_machine_arn(self) -> str:
        return self.deployment.state_machine_arn

    # --- CloudWatch Logs for the handlers' output ---------------------------------------
    def _lambda_log(self, function_name: str, text: str) -> None:
        function = next(f for f in DEPLOYED_FUNCTIONS.values() if f.name == function_name)
        group, stream = log_group(function), "sandbox"
        with self._lock:
            if group not in self._log_streams:
                self._logs.create_log_stream(logGroupName=group, logStreamName=stream)
                self._log_streams.add(group)
            now_ms = int(self.world.clock.timestamp() * 1000)
            self._logs.put_log_events(
                logGroupName=group,
                logStreamName=stream,
                logEvents=[{"timestamp": now_ms, "message": line} for line in text.splitlines()],
            )

    def _bus_log(self, dispatched: Dispatched) -> None:
        event = dispatched.event
        line = {
            "id": event["id"],
            "source": event["source"],
            "detail-type": event["detail-type"],
            "resources": event["resources"],
            "rules": list(dispatched.rules),
            "duplicate": dispatched.duplicate,
        }
        with self._lock:
            self._logs.put_log_events(
                logGroupName=BUS_LOG_GROUP,
                logStreamName="default",
                logEvents=[
                    {
                        "timestamp": int(dispatched.time.timestamp() * 1000),
                        "message": json.dumps(line),
                    }
                ],
            )

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)


class ExecutionWatcher:
    """Prints a line when an execution starts or ends, and sends Step Functions' status-change
    events to EventBridge (the stack's rescue rule listens for the failed ones)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.sfn = sandbox.client("stepfunctions")
        self.seen: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="execution-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(WATCH_SECONDS):
            try:
                self._look()
            except Exception as error:  # keep watching; say what went wrong
                print(f"sandbox: watcher: {type(error).__name__}: {error}", file=sys.stderr)

    def _look(self) -> None:
        for item in list_executions(self.sfn, self.sandbox.state_machine_arn):
            arn, status = item["executionArn"], item["status"]
            before = self.seen.get(arn)
            if before == status:
                continue
            self.seen[arn] = status
            described = self.sfn.describe_execution(executionArn=arn)
            if before is None:
                self._status_change(described, "RUNNING")
                view = read(self.sfn, arn)
                self.sandbox.say(
                    f"{view.started:%H:%M:%S} started   {view.kind:<9} {view.instance}  {arn}"
                )
            if status != "RUNNING":
                self._status_change(described, status)
                view = read(self.sfn, arn)
                self.sandbox.say(
                    f"{view.latest:%H:%M:%S} {status:<9} {view.kind:<9} {view.instance}  "
                    f"{view.outcome or '-'} after {duration(view.elapsed)}, "
                    f"{view.heartbeats} heartbeat(s)"
                )

    def _status_change(self, described: dict[str, Any], status: str) -> None:
        detail = {
            "executionArn": described["executionArn"],
            "stateMachineArn": described["stateMachineArn"],
            "name": described["name"],
            "status": status,
            "startDate": int(described["startDate"].timestamp() * 1000),
            "stopDate": (
                int(described["stopDate"].timestamp() * 1000)
                if status != "RUNNING" and described.get("stopDate")
                else None
            ),
            "input": described.get("input"),
            "output": described.get("output") if status != "RUNNING" else None,
            "error": described.get("error"),
            "cause": described.get("cause"),
        }
        self.sandbox.eventbridge.deliver(
            {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": STATUS_CHANGE,
                "source": "aws.states",
                "account": endpoint.ACCOUNT,
                "time": self.sandbox.world.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": endpoint.REGION,
                "resources": [described["executionArn"]],
                "detail": detail,
            }
        )


@contextmanager
def _put_events_routed_to(eventbridge: EventBridge) -> Iterator[None]:
    """moto's PutEvents answers through `eventbridge` (what AWS refuses, what AWS delivers)."""
    original = EventsBackend.put_events

    def put_events(backend: EventsBackend, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(events) > 10:  # moto raises AWS's ValidationException for this
            return original(backend, events)
        return eventbridge.put_events(events)

    EventsBackend.put_events = put_events  # type: ignore[method-assign]
    try:
        yield
    finally:
        EventsBackend.put_events = original  # type: ignore[method-assign]


def _use_only(url: str, port: int) -> None:
    """This process talks to the sandbox only: fake credentials, the local endpoint for every
    boto3 client (the handlers' too), and moto's interpreter aimed at this port."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(endpoint.aws_environment(url, base={}))
    os.environ["MOTO_PORT"] = str(port)  # moto's interpreter invokes Lambda at localhost:MOTO_PORT


def _post_json(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


# --- the copy-paste commands ----------------------------------------------------------------
def commands(endpoint_url: str, state_machine_arn: str, cwd: Path | None = None) -> list[str]:
    """Shell lines that drive the sandbox with the project's AWS CLI; each works as printed."""
    here = Path(cwd or Path.cwd()).resolve()
    inside = here == ROOT
    aws = ".venv/bin/aws" if inside else shlex.quote(str(AWS_CLI))
    events_dir = Path("events") if inside else ROOT / "events"
    cli = f"{aws} --endpoint-url {endpoint_url}"
    lines = [
        "# fake credentials for this shell; every command names the local endpoint",
        "export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION="
        f"{endpoint.REGION}",
        f"STATE_MACHINE_ARN={state_machine_arn}",
        "# plain `aws` in this shell talks to the sandbox too (the README's commands use it)",
        f'aws() {{ {cli} "$@"; }}',
        "",
        "# fire an event (the events files use the test source; aws.* sources are refused)",
    ]
    lines += [
        f"{cli} events put-events --entries {shlex.quote(f'file://{events_dir / stem}.json')}"
        for stem in events_files()
    ]
    lines += [
        "",
        "# watch the drains",
        f'{cli} stepfunctions list-executions --state-machine-arn "$STATE_MACHINE_ARN" '
        "--query 'executions[].[startDate,status,name]' --output table",
        f"EXECUTION_ARN=$({cli} stepfunctions list-executions "
        "--state-machine-arn \"$STATE_MACHINE_ARN\" --query 'executions[0].executionArn' "
        "--output text)",
        f'{cli} stepfunctions describe-execution --execution-arn "$EXECUTION_ARN" '
        "--query '[status,output]' --output text",
        f'{cli} stepfunctions get-execution-history --execution-arn "$EXECUTION_ARN" '
        "--query 'events[].[timestamp,type,stateEnteredEventDetails.name]' --output text",
        f"{cli} logs filter-log-events --log-group-name /aws/lambda/ecs-drainer-PollTasks "
        "--query 'events[].message' --output text",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=endpoint.default_port())
    parser.add_argument(
        "--speed",
        type=float,
        default=DEFAULT_SPEED,
        help="virtual seconds per wall second while a drain runs; 0 = as fast as possible",
    )
    parser.add_argument("--config", help="configuration file (default drainer.toml)")
    parser.add_argument(
        "--lifetime", type=float, default=None, help="stop after this many wall seconds"
    )
    parser.add_argument(
        "--other-hook",
        nargs="?",
        const=ECS_MANAGED_HOOK,
        metavar="NAME",
        help=f"add a second terminate hook to the group, completed by nobody (default name "
        f"{ECS_MANAGED_HOOK})",
    )
    args = parser.parse_args(argv)
    config = load_config(args.config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Sandbox(config, args.port, args.speed, other_hook=args.other_hook) as sandbox:
        sandbox.say(f"sandbox: AWS endpoint   {sandbox.endpoint}  (region {endpoint.REGION})")
        sandbox.say(f"sandbox: state machine  {sandbox.state_machine_arn}")
        pace = f"{args.speed:g}x" if args.speed > 0 else "as fast as possible"
        sandbox.say(
            f"sandbox: virtual time   {sandbox.world.clock.now():%Y-%m-%d %H:%M:%S}, "
            f"moves {pace} while a drain runs"
        )
        for line in describe(sandbox.world):
            sandbox.say(f"sandbox: {line}")
        sandbox.say("")
        for line in commands(sandbox.endpoint, sandbox.state_machine_arn):
            sandbox.say(f"  {line}" if line else "")
        sandbox.say("")
        sandbox.say(f"{endpoint.READY_LINE} Ctrl-C stops it.")
        deadline = None if args.lifetime is None else time.monotonic() + args.lifetime
        try:
            while not stop.wait(0.5):
                if deadline is not None and time.monotonic() > deadline:
                    break
        except KeyboardInterrupt:
            pass
        sandbox.say("sandbox: stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
