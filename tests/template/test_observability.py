"""What an on-call engineer opens, on the synthesized template: the drains dashboard (each widget
and its metrics, every custom one a metric the reports really emit), the saved Logs Insights
queries (whose fields the real log lines carry), and the stack's outputs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from drainer import reporting
from sandbox.harness import Harness
from stacks.config import load_config, validate
from stacks.functions import ALL_FUNCTIONS
from stacks.permissions import reference_text
from tests.conftest import ROOT
from tests.executions import log_lines
from tests.template.synthesis import synth
from tests.worlds import GROUP, drain_world, with_settings

CLUSTERS, GROUPS = ["prod-a", "prod-b"], ["asg-a", "asg-b"]


@pytest.fixture(scope="module")
def synthesized():
    config = load_config(ROOT / "drainer.toml")
    config = validate(
        {
            **config.model_dump(),
            "cluster_names": CLUSTERS,
            "auto_scaling_group_names": GROUPS,
            "metrics_namespace": "Team/Drains",
        }
    )
    stack, template = synth(config)
    return config, stack, template


def _widgets(template) -> dict[str, dict[str, Any]]:
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.loads(reference_text(dashboard["Properties"]["DashboardBody"]))
    return {
        widget["properties"].get("title", widget["type"]): widget["properties"]
        for widget in body["widgets"]
    }


def _metrics(widget: dict[str, Any]) -> list[tuple[str, str, dict[str, str], str]]:
    """(namespace, name, dimensions, statistic) of each plain metric of a graph widget."""
    found = []
    for row in widget.get("metrics", []):
        options = row[-1] if isinstance(row[-1], dict) else {}
        names = [part for part in row if isinstance(part, str)]
        if len(names) < 2:
            continue  # an expression
        namespace, name, *pairs = names
        dimensions = dict(zip(pairs[::2], pairs[1::2], strict=True))
        found.append((namespace, name, dimensions, options.get("stat", "")))
    return found


def _expressions(widget: dict[str, Any]) -> list[str]:
    return [row[0]["expression"] for row in widget.get("metrics", []) if "expression" in row[0]]


def test_the_dashboard_has_a_widget_for_each_question(synthesized):
    config, stack, template = synthesized
    widgets = _widgets(template)
    assert {
        "Alarms",
        "Drains in flight",
        "Drains started, by kind",
        "Drains finished, by kind and outcome",
        "Drain duration (s): p50, p95, max",
        "Tasks cut short, by outcome",
        "Heartbeats and throttled polls, by cluster",
        "Failed executions and rescues",
        "Drains and tasks cut short, by cluster",
        "Drains, and other terminate hooks met, by Auto Scaling group",
        "Undelivered events (dead-letter queue depth)",
    } <= set(widgets)
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == f"{config.stack_name}-drains"

    machine = f"<{stack.get_logical_id(stack.state_machine.node.default_child)}>"
    in_flight = widgets["Drains in flight"]
    assert _expressions(in_flight) == [
        "RUNNING_SUM(started - succeeded - failed - aborted - timedOut)"
    ]
    of_machine = [
        name for _, name, dims, _ in _metrics(in_flight) if dims == {"StateMachineArn": machine}
    ]
    assert set(of_machine) == {
        "ExecutionsStarted",
        "ExecutionsSucceeded",
        "ExecutionsFailed",
        "ExecutionsAborted",
        "ExecutionsTimedOut",
    }
    started = _metrics(widgets["Drains started, by kind"])
    assert {dims.get("Kind") for _, name, dims, _ in started if name == "DrainsStarted"} == {
        "lifecycle",
        "spot",
        "rebalance",
    }
    assert _expressions(widgets["Drains finished, by kind and outcome"]) == [
        "SEARCH('{Team/Drains,Kind,Outcome} MetricName=\"Drains\"', 'Sum', 300)"
    ]
    durations = _metrics(widgets["Drain duration (s): p50, p95, max"])
    assert {(dims["Kind"], dims["Outcome"], stat) for _, _, dims, stat in durations} == {
        (kind, outcome, stat)
        for kind, outcome in (("lifecycle", "drained"), ("spot", "spot-drained"))
        for stat in ("p50", "p95", "Maximum")
    }
    per_cluster = _metrics(widgets["Heartbeats and throttled polls, by cluster"])
    assert {(name, dims["Cluster"]) for _, name, dims, _ in per_cluster} == {
        (name, cluster) for name in ("Heartbeats", "ThrottledPolls") for cluster in CLUSTERS
    }
    per_group = _metrics(widgets["Drains, and other terminate hooks met, by Auto Scaling group"])
    # Another terminate hook on a group (ECS managed draining's) shows beside its drains.
    assert {(name, dims["AutoScalingGroup"]) for _, name, dims, _ in per_group} == {
        (name, group) for name in ("Drains", "OtherTerminateHooks") for group in GROUPS
    }
    failures = {name for _, name, _, _ in _metrics(widgets["Failed executions and rescues"])}
    assert failures == {
        "ExecutionsFailed",
        "ExecutionsTimedOut",
        "ExecutionsAborted",
        "Drains",
        "Invocations",
        "Errors",
    }
    ((namespace, name, _, stat),) = _metrics(
        widgets["Undelivered events (dead-letter queue depth)"]
    )
    assert (namespace, name, stat) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum")
    alarms = widgets["Alarms"]["alarms"]
    assert alarms == [
        f"<{stack.get_logical_id(alarm.node.default_child)}.Arn>"
        for alarm in (stack.failed_alarm, stack.dead_letter_alarm)
    ]


def test_every_custom_metric_on_the_dashboard_is_one_the_reports_emit(synthesized):
    """Same name and dimension names as a directive of drainer/reporting.py: a dashboard line
    for a metric nobody writes would stay empty forever."""
    _, _, template = synthesized
    emitted = {
        (name, tuple(sorted(dimensions)))
        for directives in (reporting.FINISHED_METRICS, reporting.STARTED_METRICS)
        for names, sets in directives
        for name in names
        for dimensions in sets
    }
    plotted = [
        (name, tuple(sorted(dims)))
        for widget in _widgets(template).values()
        for namespace, name, dims, _ in _metrics(widget)
        if namespace == "Team/Drains"
    ]
    assert plotted
    assert set(plotted) <= emitted
    searched = [
        expression
        for widget in _widgets(template).values()
        for expression in _expressions(widget)
        if expression.startswith("SEARCH")
    ]
    for expression in searched:
        schema = re.search(r"\{Team/Drains,([^}]*)\}", expression).group(1)
        name = re.search(r'MetricName="(\w+)"', expression).group(1)
        assert (name, tuple(sorted(schema.split(",")))) in emitted, expression


def _queries(template) -> dict[str, dict[str, Any]]:
    return {
        query["Properties"]["Name"]: query["Properties"]
        for query in template.find_resources("AWS::Logs::QueryDefinition").values()
    }


def test_saved_queries_cover_drains_one_instance_and_failures(synthesized):
    config, stack, template = synthesized
    queries = _queries(template)
    assert all(name.startswith(f"{config.stack_name}/") for name in queries)  # one folder
    by_kind = {
        kind: next(query for name, query in queries.items() if kind in name)
        for kind in ("every drain", "one instance", "failures")
    }

    def groups(query: dict[str, Any]) -> set[str]:
        return {reference_text(group) for group in query["LogGroupNames"]}

    function_logs = {
        f"<{stack.get_logical_id(function.log_group.node.default_child)}>"
        for function in stack.all_functions.values()
    }
    assert len(function_logs) == len(ALL_FUNCTIONS)
    machine_logs = f"<{stack.get_logical_id(stack.machine_logs.node.default_child)}>"
    reporters = {
        f"<{stack.get_logical_id(function.log_group.node.default_child)}>"
        for function in (stack.functions["ReportOutcome"], stack.rescue_function)
    }

    drains = by_kind["every drain"]
    assert groups(drains) == reporters
    assert 'filter message = "drain finished"' in drains["QueryString"]
    instance = by_kind["one instance"]
    assert groups(instance) == function_logs
    assert re.search(r'filter instanceId = "i-[0-9a-f]{17}"', instance["QueryString"])
    failures = by_kind["failures"]
    assert groups(failures) == function_logs | {machine_logs}
    assert 'level = "ERROR"' in failures["QueryString"]
    assert "error.Error" in failures["QueryString"]


def test_the_queries_fields_are_in_the_real_log_lines(config, capsys):
    """Run a drain; its "drain finished" line has every field the drains query shows, and every
    line of the drain carries the instance id the instance query filters on."""
    world, (victim,) = drain_world(config)
    with Harness(world, config) as harness:
        world.asg.scale_in(GROUP, victim)
        harness.run()
    lines = [line for line in log_lines(capsys.readouterr().out) if "message" in line]
    (finished,) = [line for line in lines if line["message"] == "drain finished"]
    _, template = synth(config)
    (drains,) = [q for name, q in _queries(template).items() if "every drain" in name]
    fields = drains["QueryString"].splitlines()[0].removeprefix("fields ").split(", ")
    assert set(fields) - {"@timestamp"} <= set(finished)
    assert all(line.get("instanceId") == victim for line in lines)


def test_the_outputs_an_engineer_starts_from(synthesized):
    config, stack, template = synthesized
    outputs = {
        name: reference_text(output["Value"]) for name, output in template.find_outputs("*").items()
    }
    ref = stack.get_logical_id
    assert outputs["StateMachineArn"] == f"<{ref(stack.state_machine.node.default_child)}>"
    assert outputs["OutcomeTopicArn"] == f"<{ref(stack.topic.node.default_child)}>"
    assert outputs["ClaimsTableName"] == f"<{ref(stack.claims.node.default_child)}>"
    assert outputs["StateMachineLogGroup"] == f"<{ref(stack.machine_logs.node.default_child)}>"
    assert outputs["FunctionLogGroups"].split(" ") == [
        f"<{ref(function.log_group.node.default_child)}>"
        for function in stack.all_functions.values()
    ]
    assert outputs["DashboardUrl"] == (
        "https://console.aws.amazon.com/cloudwatch/home?region=<AWS::Region>"
        f"#dashboards/dashboard/{config.stack_name}-drains"
    )


@pytest.mark.parametrize(
    ("notify", "started_notice"),
    [(None, False), (["failed", "drain-started"], True), (["all"], False)],
)
def test_notification_settings_in_the_template(config, notify, started_notice):
    """The functions that start a drain may publish to the topic only when the drain-started
    notice is on; every function that reports may put the drainer's own events, on the default
    bus, with that source only."""
    if notify is not None:
        config = with_settings(config, notify_outcomes=notify)
    stack, template = synth(config)
    roles = {
        stack.get_logical_id(function.role.node.default_child): name
        for name, function in stack.all_functions.items()
    }
    held: dict[str, list[dict[str, Any]]] = {name: [] for name in roles.values()}
    for policy in template.find_resources("AWS::IAM::Policy").values():
        for role in policy["Properties"]["Roles"]:
            if role["Ref"] in roles:
                held[roles[role["Ref"]]] += policy["Properties"]["PolicyDocument"]["Statement"]

    def statements(name: str, action: str) -> list[dict[str, Any]]:
        return [s for s in held[name] if action in json.dumps(s["Action"])]

    for name in ("StartDrain",):
        assert bool(statements(name, "sns:Publish")) is started_notice, name
    emitters = {name for name in held if statements(name, "events:PutEvents")}
    assert emitters == {"StartDrain", "ReportOutcome", "RescueExecution"}
    for name in emitters:
        (statement,) = statements(name, "events:PutEvents")
        assert statement["Action"] == "events:PutEvents"
        assert reference_text(statement["Resource"]) == (
            "arn:<AWS::Partition>:events:us-east-1:123456789012:event-bus/default"
        )
        assert statement["Condition"] == {"StringEquals": {"events:source": "ecs-drainer"}}
