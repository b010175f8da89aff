"""What an on-call engineer opens: the drains dashboard, saved Logs Insights queries, outputs.

The metrics are the ones lambdas/drainer/reporting.py writes (embedded metric format) and Step
Functions', Lambda's and SQS's own. Every custom metric the dashboard plots is one the drainer
emits anyway: the dashboard adds no metric, only its own monthly price (README, "Cost and
quotas").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Aws, CfnOutput, Duration, Fn
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_logs as logs

if TYPE_CHECKING:
    from stacks.drainer_stack import DrainerStack

PERIOD = Duration.minutes(5)
KINDS = ("lifecycle", "spot", "rebalance")
# The outcomes whose duration is the drain's (the others end in seconds, by design).
DURATIONS = (("lifecycle", "drained"), ("spot", "spot-drained"))
EXAMPLE_INSTANCE = "i-0123456789abcdef0"  # replaced by the engineer before running the query
QUERY_LIMIT = 10000  # Logs Insights returns at most 10,000 rows


def dashboard_name(stack_name: str) -> str:
    return f"{stack_name}-drains"


def build(stack: DrainerStack) -> cloudwatch.Dashboard:
    """The dashboard, the saved queries and the stack's outputs."""
    dashboard = cloudwatch.Dashboard(
        stack,
        "DrainsDashboard",
        dashboard_name=dashboard_name(stack.stack_name),
        default_interval=Duration.days(1),
        widgets=_widgets(stack),
    )
    _queries(stack)
    _outputs(stack, dashboard)
    return dashboard


# --- dashboard --------------------------------------------------------------------------------
def _metric(stack: DrainerStack, name: str, statistic: str = "Sum", **dimensions: str):
    return cloudwatch.Metric(
        namespace=stack.config.metrics_namespace,
        metric_name=name,
        dimensions_map=dimensions,
        statistic=statistic,
        period=PERIOD,
        label=" ".join(dimensions.values()) or name,
    )


def _search(stack: DrainerStack, name: str, dimensions: str, label: str) -> cloudwatch.IMetric:
    """Every value of `dimensions` that has data: the outcomes and kinds seen, without listing
    them (a dry run's metrics carry DryRun too, so this schema leaves them out)."""
    namespace = stack.config.metrics_namespace
    return cloudwatch.MathExpression(
        expression=f"SEARCH('{{{namespace},{dimensions}}} MetricName=\"{name}\"', 'Sum', 300)",
        label=label,
        period=PERIOD,
    )


def _graph(title: str, metrics: list, width: int = 8, **options) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(title=title, left=metrics, width=width, height=6, **options)


def _widgets(stack: DrainerStack) -> list[list[cloudwatch.IWidget]]:
    machine, config = stack.state_machine, stack.config
    ended = {
        "succeeded": machine.metric_succeeded(period=PERIOD, statistic="Sum"),
        "failed": machine.metric_failed(period=PERIOD, statistic="Sum"),
        "aborted": machine.metric_aborted(period=PERIOD, statistic="Sum"),
        "timedOut": machine.metric_timed_out(period=PERIOD, statistic="Sum"),
    }
    in_flight = cloudwatch.MathExpression(
        # No metric counts running executions: started minus ended since the range's start
        # (exact when the range starts with none running; `python -m drains list` is exact).
        expression="RUNNING_SUM(started - succeeded - failed - aborted - timedOut)",
        using_metrics={"started": machine.metric_started(period=PERIOD, statistic="Sum"), **ended},
        label="Executions in flight (started minus ended in the range)",
        period=PERIOD,
    )
    header = cloudwatch.TextWidget(
        markdown=(
            f"# ECS drains: {stack.stack_name}\n"
            "Drains by kind and outcome, per cluster and group; what to do about each "
            "outcome and alarm: docs/RUNBOOK.md. Saved Logs Insights queries: "
            f"`{stack.stack_name}/…` (every drain, one instance, failures)."
        ),
        width=24,
        height=2,
    )
    per_cluster = [
        _metric(stack, name, Cluster=cluster)
        for name in ("Drains", "TasksCutShort", "Heartbeats", "ThrottledPolls")
        for cluster in config.cluster_names
    ]
    return [
        [header],
        [
            cloudwatch.AlarmStatusWidget(
                title="Alarms",
                alarms=[stack.failed_alarm, stack.dead_letter_alarm],
                width=8,
                height=6,
            ),
            _graph("Drains in flight", [in_flight], live_data=True),
            _graph(
                "Drains started, by kind",
                [_metric(stack, "DrainsStarted", Kind=kind) for kind in KINDS],
                right=[machine.metric_started(period=PERIOD, statistic="Sum", label="executions")],
            ),
        ],
        [
            _graph(
                "Drains finished, by kind and outcome",
                [_search(stack, "Drains", "Kind,Outcome", "")],
                width=12,
                stacked=True,
            ),
            _graph(
                "Drain duration (s): p50, p95, max",
                [
                    _metric(
                        stack, "DrainDurationSeconds", statistic, Kind=kind, Outcome=outcome
                    ).with_(label=f"{kind} {outcome} {statistic}")
                    for kind, outcome in DURATIONS
                    for statistic in ("p50", "p95", "Maximum")
                ],
                width=12,
            ),
        ],
        [
            _graph(
                "Tasks cut short, by outcome",
                [_search(stack, "TasksCutShort", "Outcome", "")],
            ),
            _graph(
                "Heartbeats and throttled polls, by cluster",
                [m for m in per_cluster if m.metric_name in ("Heartbeats", "ThrottledPolls")],
            ),
            _graph(
                "Failed executions and rescues",
                [
                    ended["failed"].with_(label="executions failed"),
                    ended["timedOut"].with_(label="executions timed out"),
                    ended["aborted"].with_(label="executions aborted"),
                    _metric(stack, "Drains", Outcome="failed").with_(label="outcome failed"),
                    stack.rescue_function.metric_invocations(
                        period=PERIOD, statistic="Sum", label="rescue function runs"
                    ),
                    stack.rescue_function.metric_errors(
                        period=PERIOD, statistic="Sum", label="rescue function errors"
                    ),
                ],
            ),
        ],
        [
            _graph(
                "Drains and tasks cut short, by cluster",
                [m for m in per_cluster if m.metric_name in ("Drains", "TasksCutShort")],
            ),
            _graph(
                "Drains, and other terminate hooks met, by Auto Scaling group",
                [
                    _metric(stack, name, AutoScalingGroup=group).with_(label=f"{group} {label}")
                    for group in config.auto_scaling_group_names
                    # Another party's hook on the group (e.g. ECS managed draining): the instance
                    # goes only when that hook's action is complete too.
                    for name, label in (
                        ("Drains", "drains"),
                        ("OtherTerminateHooks", "other terminate hooks"),
                    )
                ],
            ),
            _graph(
                "Undelivered events (dead-letter queue depth)",
                [
                    stack.dead_letters.metric_approximate_number_of_messages_visible(
                        period=PERIOD, statistic="Maximum", label="messages"
                    )
                ],
            ),
        ],
    ]


# --- saved Logs Insights queries --------------------------------------------------------------
def _queries(stack: DrainerStack) -> None:
    """Saved queries (AWS::Logs::QueryDefinition), in the console's folder named after the stack.
    Every line a function writes is JSON with instanceId and executionArn (drainer/log.py)."""
    reporters = [stack.functions["ReportOutcome"].log_group, stack.rescue_function.log_group]
    everything = [function.log_group for function in stack.all_functions.values()]
    queries = {
        "DrainsQuery": (
            "every drain in the time range, with its outcome",
            reporters,
            logs.QueryString(
                fields=[
                    "@timestamp",
                    "instanceId",
                    "kind",
                    "outcome",
                    "durationSeconds",
                    "tasksCutShort",
                    "heartbeats",
                    "cluster",
                    "autoScalingGroupName",
                    "dryRun",
                    "executionArn",
                ],
                filter_statements=['message = "drain finished"'],
                sort="@timestamp desc",
                limit=QUERY_LIMIT,
            ),
        ),
        "InstanceQuery": (
            f"one instance (replace {EXAMPLE_INSTANCE}) across all functions and executions",
            everything,
            logs.QueryString(
                fields=["@timestamp", "@log", "level", "message", "executionArn", "@message"],
                filter_statements=[f'instanceId = "{EXAMPLE_INSTANCE}"'],
                sort="@timestamp asc",
                limit=QUERY_LIMIT,
            ),
        ),
        "FailuresQuery": (
            "failures with their error",
            [*everything, stack.machine_logs],
            logs.QueryString(
                fields=[
                    "@timestamp",
                    "@log",
                    "instanceId",
                    "message",
                    "outcome",
                    "error.Error",
                    "error.Cause",
                    "type",
                    "details.error",
                    "details.cause",
                    "executionArn",
                    "execution_arn",
                ],
                filter_statements=[
                    # the drainer's ERROR lines (failed outcomes included), a handler's crash or
                    # timeout (Lambda's own text lines), the state machine's failure events
                    'level = "ERROR" or @message like /\\[ERROR\\]|Task timed out/ '
                    "or type like /Failed|TimedOut|Aborted/"
                ],
                sort="@timestamp desc",
                limit=QUERY_LIMIT,
            ),
        ),
    }
    stack.queries = {}
    for construct_id, (title, groups, query) in queries.items():
        stack.queries[construct_id] = logs.QueryDefinition(
            stack,
            construct_id,
            query_definition_name=f"{stack.stack_name}/{title}",
            query_string=query,
            log_groups=groups,
        )


# --- outputs ----------------------------------------------------------------------------------
def _outputs(stack: DrainerStack, dashboard: cloudwatch.Dashboard) -> None:
    CfnOutput(
        stack,
        "DashboardUrl",
        value=(
            f"https://console.aws.amazon.com/cloudwatch/home?region={Aws.REGION}"
            f"#dashboards/dashboard/{dashboard_name(stack.stack_name)}"
        ),
        description="The drains dashboard",
    )
    CfnOutput(
        stack,
        "StateMachineLogGroup",
        value=stack.machine_logs.log_group_name,
        description="The state machine's execution log",
    )
    CfnOutput(
        stack,
        "FunctionLogGroups",
        # Space-separated: `aws logs start-query --log-group-names $(…)` takes them as they are.
        value=Fn.join(
            " ", [function.log_group.log_group_name for function in stack.all_functions.values()]
        ),
        description="Every function's log group",
    )
    CfnOutput(
        stack,
        "ClaimsTableName",
        value=stack.claims.table_name,
        description="DynamoDB claims (one per drain; parked Spot instances)",
    )
