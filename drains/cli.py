"""`python -m drains list|show`: what happened to my drains.

Reads the Step Functions API with the caller's credentials and Region (boto3's default chain:
environment, profile, SSO, instance role). The state machine is the one named by the stack's
`StateMachineArn` output (the stack of `stack_name` in drainer.toml), or `--state-machine-arn`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from drainer.parsers.fields import INSTANCE_ID
from drains import render
from drains.executions import DrainView, list_window, parse_json, read
from drains.timeline import fold, read_history, steps

STATE_MACHINE_OUTPUT = "StateMachineArn"  # the stack's output (stacks/drainer_stack.py)
DEFAULT_SINCE = "24h"
READERS = 8  # describe_execution calls in flight (Step Functions' bucket refills 50 per second)
# Throttling in a 500-instance refresh is expected: the SDK backs off and tries again.
SDK_CONFIG = Config(retries={"mode": "standard", "max_attempts": 10})
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SPAN = re.compile(r"(?:\d+[smhdw])+")
EXECUTION_ARN = re.compile(r"arn:[\w-]+:states:[\w-]+:\d{12}:execution:[^:]+:[^:]+")
T = TypeVar("T")


class CommandError(Exception):
    """A problem the user can fix; its message says how."""


def parse_since(text: str) -> timedelta | datetime:
    """`24h`, `90m`, `1h30m`, `7d`, `2w` (before the API's now), or an ISO 8601 moment (UTC
    unless it names an offset)."""
    if SPAN.fullmatch(text):
        return timedelta(
            seconds=sum(int(n) * UNITS[u] for n, u in re.findall(r"(\d+)([smhdw])", text))
        )
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a span such as 24h, 90m, 1h30m, 7d, or a moment such as "
            "2026-01-05T09:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def execution_arn(state_machine_arn: str, name: str) -> str:
    """A Standard execution's ARN: the state machine's, `stateMachine` → `execution`, + name."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


def state_machine_of(session: boto3.session.Session, args: argparse.Namespace) -> str:
    if args.state_machine_arn:
        return str(args.state_machine_arn)
    stack = args.stack_name or _configured_stack_name()
    cloudformation = _client(session, "cloudformation", args)
    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as error:
        raise CommandError(
            f"stack {stack!r} not found in {cloudformation.meta.region_name} "
            f"({error.response['Error'].get('Message', error)}). Pass --stack-name, --region, "
            "or --state-machine-arn (the sandbox has no stack: use its STATE_MACHINE_ARN)"
        ) from None
    for output in described.get("Outputs") or []:
        if output["OutputKey"] == STATE_MACHINE_OUTPUT:
            return str(output["OutputValue"])
    raise CommandError(f"stack {stack!r} has no {STATE_MACHINE_OUTPUT} output")


def _configured_stack_name() -> str:
    from stacks.config import ConfigError, load_config  # pydantic: only when it is needed

    try:
        return load_config().stack_name
    except ConfigError as problem:
        raise CommandError(f"{problem} (or pass --stack-name / --state-machine-arn)") from None


def _client(session: boto3.session.Session, service: str, args: argparse.Namespace) -> Any:
    return session.client(service, endpoint_url=args.endpoint_url, config=SDK_CONFIG)


def _each(items: Sequence[T], work: Callable[[T], Any]) -> list[Any]:
    """`work` over `items`, a few at a time, results in order."""
    with ThreadPoolExecutor(READERS) as pool:
        return list(pool.map(work, items))


def list_drains(
    sfn: Any, machine: str, since: timedelta | datetime
) -> tuple[list[DrainView], datetime]:
    """The drains started in the window, oldest first: one describe_execution each, plus the
    recent history of the running and failed ones (the state they are in)."""
    listing = list_window(sfn, machine, since)
    arns = [item["executionArn"] for item in listing.executions]
    views = _each(arns, lambda arn: read(sfn, arn, state_of_succeeded=False))
    start = listing.now - since if isinstance(since, timedelta) else since
    return views, start


def find_executions(sfn: Any, machine: str, target: str, since: timedelta | datetime) -> list[str]:
    """The executions `target` names: an execution ARN, an execution name, or an instance id
    (the executions in the window whose name or event names it)."""
    if EXECUTION_ARN.fullmatch(target):
        return [target]
    if not INSTANCE_ID.fullmatch(target):
        return [execution_arn(machine, target)]
    executions = list_window(sfn, machine, since).executions
    # Executions named `<instance>-<kind>-<event id>` are found by name alone.
    named = [e["executionArn"] for e in executions if e["name"].startswith(f"{target}-")]
    if named:
        return named

    def names_it(arn: str) -> bool:
        event = parse_json(sfn.describe_execution(executionArn=arn).get("input")) or {}
        detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
        return target in (detail.get("EC2InstanceId"), detail.get("instance-id"))

    arns = [e["executionArn"] for e in executions]
    return [arn for arn, found in zip(arns, _each(arns, names_it), strict=True) if found]


def run_list(sfn: Any, machine: str, args: argparse.Namespace) -> int:
    views, start = list_drains(sfn, machine, args.since)
    if args.json:
        print(json.dumps([render.as_json(view) for view in views], indent=1))
        return 0
    if views:
        for line in render.table([render.row(view) for view in views]):
            print(line)
    print(f"{len(views)} drain(s) started since {render.when(start)} UTC")
    return 0


def run_show(sfn: Any, machine: str, args: argparse.Namespace) -> int:
    arns = find_executions(sfn, machine, args.target, args.since)
    if not arns:
        print(
            f"drains: no drain of {args.target} in the window; try a longer --since (e.g. 7d)",
            file=sys.stderr,
        )
        return 1
    shown = []
    for arn in arns:
        try:
            view = read(sfn, arn)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ExecutionDoesNotExist":
                raise
            raise CommandError(f"no execution {args.target!r} of {machine}") from None
        found = steps(read_history(sfn, arn))
        shown.append((view, found if args.all else fold(found)))
    if args.json:
        print(
            json.dumps(
                [
                    {**render.as_json(view), "timeline": render.timeline_json(found)}
                    for view, found in shown
                ],
                indent=1,
            )
        )
        return 0
    for index, (view, found) in enumerate(shown):
        if index:
            print()
        for line in [*render.summary(view), "  timeline (UTC, time since the start):"]:
            print(line)
        for line in render.timeline(found, view.started):
            print(line)
    return 0


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--since",
        type=parse_since,
        default=parse_since(DEFAULT_SINCE),
        help=f"24h, 90m, 7d, or 2026-01-05T09:00:00Z (default {DEFAULT_SINCE})",
    )
    common.add_argument("--json", action="store_true", help="JSON for scripts")
    common.add_argument("--region", help="default: the SDK's (AWS_REGION, profile)")
    common.add_argument("--profile", help="default: the SDK's (AWS_PROFILE, default profile)")
    common.add_argument("--endpoint-url", help="another Step Functions endpoint (the sandbox)")
    common.add_argument("--state-machine-arn", help="default: the stack's StateMachineArn output")
    common.add_argument("--stack-name", help="default: stack_name in drainer.toml")
    parse = argparse.ArgumentParser(
        prog="python -m drains", description="What happened to my ECS drains."
    )
    commands = parse.add_subparsers(dest="command", required=True)
    commands.add_parser("list", parents=[common], help="one line per drain started in the window")
    show = commands.add_parser(
        "show", parents=[common], help="one drain's timeline (all drains of an instance)"
    )
    show.add_argument("target", help="an instance id, an execution ARN or an execution name")
    show.add_argument("--all", action="store_true", help="every state, nothing folded")
    return parse


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
        machine = state_machine_of(session, args)
        sfn = _client(session, "stepfunctions", args)
        command = run_list if args.command == "list" else run_show
        return command(sfn, machine, args)
    except CommandError as problem:
        print(f"drains: {problem}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as error:
        print(f"drains: {error}", file=sys.stderr)
        return 2
