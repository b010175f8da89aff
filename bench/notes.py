"""The words of a run: its configuration summary, assumptions, how it was simulated and what it
found."""

from __future__ import annotations

from typing import Any

from bench import baselines, detection, modes, scenarios, sim
from bench.modes import POLL
from bench.refresh import RefreshResult
from bench.result import FIXED, BenchResult
from bench.result import product as label
from stacks.config import DrainerConfig

# ECS token buckets assumed for every operation, one bucket per operation: burst 50, refill
# 20/s. Sources: the ECS API reference "Request throttling for the Amazon ECS API" (token bucket
# per operation; its example gives cluster read actions a bucket of 50 tokens) and
# aws-solutions/workload-discovery-on-aws PR #355 (DescribeContainerInstances and DescribeTasks
# "approx 20 TPS", citing that page). The page's per-action table could not be retrieved here;
# if AWS grants task reads more, this setting is the conservative side.
ECS_RATE_PER_S = 20.0
ECS_BURST = 50.0


# --- text -------------------------------------------------------------------------------------
def configuration(config: DrainerConfig) -> dict[str, object]:
    summary = (
        f"poll every {config.poll_interval_seconds} s, after {config.backoff_after_seconds} s "
        f"backing off ×{config.backoff_rate} up to {config.max_poll_interval_seconds} s; Spot "
        f"poll {config.spot_poll_interval_seconds} s; hook heartbeat timeout "
        f"{config.heartbeat_timeout_seconds} s (a heartbeat every "
        f"{config.heartbeat_timeout_seconds // 3} s); ceiling {config.max_drain_seconds} s; "
        f"Lambda {config.lambda_memory_mb} MB {config.lambda_architecture}"
    )
    return {
        "summary": summary,
        **config.model_dump(include=set(type(config).model_fields) - {"notification_emails"}),
    }


def throttling_assumptions() -> list[str]:
    return [
        f"ECS API throttling in the refresh: one token bucket per operation, burst "
        f"{ECS_BURST:g}, refill {ECS_RATE_PER_S:g}/s (ECS API reference, 'Request throttling for "
        "the Amazon ECS API': token buckets per operation, cluster reads 50 tokens in its "
        "example; aws-solutions/workload-discovery-on-aws PR #355: DescribeContainerInstances "
        "and DescribeTasks about 20 TPS). Auto Scaling not throttled.",
        "ecs-cid-sample: aws-samples/ecs-cid-sample at 0d60dd5 (2018-08-01), cform/ecs.yaml "
        "LambdaFunctionForASG and ASGTerminateHook (HeartbeatTimeout 900, DefaultResult "
        "ABANDON, no heartbeat recorded). Lambda recursive loop detection (default since July "
        '2023) stops its SNS loop after 16 invocations (Lambda developer guide, "Recursive '
        'loop detection"; ecs-cid-sample #30, boto3 #3899); a failed invocation is retried '
        "twice (asynchronous invocation).",
    ]


def simulation_notes(plan: Any, deregistration: float) -> list[str]:
    web = scenarios.SERVICE
    return [
        "The shipped drainer.toml, with the simulated world's cluster and group names "
        f"({scenarios.CLUSTER}, {scenarios.GROUP}).",
        "Drain kinds: three instances with one web task each (behind a load balancer: start "
        f"{web['start_seconds']} s, deregistration {web['deregistration_delay_seconds']} s, stop "
        f"{web['stop_seconds']} s); the drained instance also runs a standalone batch task whose "
        "exit sets the drain's length (5 min: the last task stops 300 s after the lifecycle "
        "action starts; 48 h: it never exits, so the drain reaches the ceiling). A task that "
        "stops at the very instant of a poll is seen by the next poll. Spot: the web task only, "
        "warned two minutes before the interruption.",
        f"5-minute drains: the same 5-minute drain on {plan.five_minute_drains} instances at "
        "once, so each polls at its own phase.",
        f"Latency: {plan.latency_drains} drains at once, one per instance, lengths drawn from "
        f"1–55 min (one per equal slice, random.Random({sim.SEED})).",
        f"Refresh: {', '.join(f'{n:,}' for n in plan.refresh_sizes)} old instances (one web "
        f"task each behind a load balancer: start 10 s, deregistration {deregistration:g} s, "
        "stop 5 s) leave together while as many replacements are already in service; the "
        "product's configuration is unchanged. Each refresh runs in a process of its own beside "
        "the other scenarios (peak memory is that process's). A refresh size the run does not "
        "include is read from results/refresh-SIZE.json when `make bench-refresh-SIZE` wrote "
        "one. ECS calls per drain: each call counted for the instance its parameters name "
        "(container instance, task, or the ec2InstanceId filter); DescribeServices, which names "
        "services only and is asked once per cluster and hour by whichever drain's poll finds "
        "the answer out of date, is counted apart ('+ naming no instance'). Time to notice: "
        "the instance's last task stopping → its lifecycle action ending.",
        f"Detection over drain lengths: {plan.detection_drains} drains at once, lengths from "
        f"1 min to 47 h (one per slice of equal ratio, random.Random({sim.SEED})), once per "
        "delay model of the bus (sandbox/eventbridge.py DeliveryModel): default "
        f"{_model(detection.PRESETS['default'])}, pessimistic "
        f"{_model(detection.PRESETS['pessimistic'])}. The floor: p95 ≤ the model's maximum "
        f"delay + {detection.DETECTION_MARGIN_SECONDS:g} s.",
        f"Lost task events: {plan.loss_drains} drains of 1–55 min with "
        f"{detection.LOSS:.0%} of the ECS Task State Change events lost (DeliveryModel loss, "
        "task events only; events mode only: in poll mode no rule receives them).",
        f"Unrelated events: {plan.unrelated_stops:,} standalone tasks exit on "
        f"{detection.UNRELATED_INSTANCES} ACTIVE instances over ten minutes, none draining; "
        "their events go through the stack's real rules.",
        "Rows marked 'computed' come from drainer.history.drain_cost, the same per-poll counts "
        "configuration validation uses (checked against the measured 48 h drain in a full run).",
        "Wall-time speedups of the simulation (no change to what it simulates; bench/sim.py): "
        "the ASL parse cached per definition and deep-copied per execution, one boto3 Lambda "
        "client per region for moto's Task states, memoised JSONPath parsing, "
        "linecache.checkcache disabled. (The virtual clock wakes one sleeping execution per "
        "event, not all of them: simulated_aws/clock.py.)",
    ]


def _model(model: Any) -> str:
    jitter = (
        f"uniform 0–{model.jitter_seconds:g} s"
        if model.jitter == "uniform"
        else f"exponential of mean {model.jitter_seconds:g} s capped at "
        f"{model.max_jitter_seconds:g} s"
    )
    return f"({model.delay_seconds:g} s + {jitter}: at most {model.max_delay_seconds:g} s)"


def mode_notes(result: BenchResult) -> list[str]:
    return [
        f"{mode} mode: {status}"
        + ("" if mode != modes.default_mode() else " (the shipped default)")
        for mode, status in result.modes.items()
    ]


def findings(result: BenchResult, product: DrainerConfig, refusal: str | None) -> list[str]:
    found = []
    by = {(d.drainer, d.kind): d for d in result.drains}
    PRODUCT = label(POLL)  # the poll mode: what the baselines compare with
    measured = by.get((PRODUCT, "48 h ceiling"))
    computed = baselines.computed_ceiling_drain(PRODUCT, product)
    if measured is not None and measured.status == "measured":
        found.append(
            "drainer.history.drain_cost (what configuration validation checks) against the "
            f"measured 48 h drain: {computed.history_events:,} history events predicted, "
            f"{measured.history_events:,} measured; {computed.transitions:,} transitions "
            f"predicted, {measured.transitions:,} measured."
        )
    if refusal:
        found.append(f"Configuration validation refuses the fixed 30-s poll baseline: {refusal}")
    fixed_ceiling = by[(FIXED, "48 h ceiling")]
    if fixed_ceiling.status.startswith("fails"):
        found.append(f"Fixed 30-s poll, 48 h: {fixed_ceiling.note}.")
    if measured is not None and measured.cost_usd and fixed_ceiling.cost_usd:
        found.append(
            f"A 48 h drain costs {_usd(measured.cost_usd)} with back-off against "
            f"{_usd(fixed_ceiling.cost_usd)} for a fixed 30-s poll "
            f"({fixed_ceiling.cost_usd / measured.cost_usd:.1f}× — had it not failed); below an "
            "hour both poll alike, so cost and latency are the same."
        )
    found.append(
        f"Back-off: after {product.backoff_after_seconds} s the poll interval grows "
        f"×{product.backoff_rate} up to {product.max_poll_interval_seconds} s, so a drain longer "
        f"than an hour can wait up to {product.max_poll_interval_seconds} s to be seen (the fixed "
        "poll: 30 s); that is what keeps a 48 h drain under the history quota."
    )
    spot, fixed_spot = by[(PRODUCT, "Spot")], by[(FIXED, "Spot")]
    found.append(
        f"Spot: polling every {product.spot_poll_interval_seconds} s sees the drain end "
        f"{_s(spot.latency_seconds)} s after the last task stopped, against "
        f"{_s(fixed_spot.latency_seconds)} s at a fixed 30 s, for {_usd(spot.cost_usd or 0)} "
        f"instead of {_usd(fixed_spot.cost_usd or 0)} per interruption."
    )
    sample = next(s for s in result.latency if s.drainer == baselines.SAMPLE)
    limit = baselines.LOOP_DETECTION_LIMIT
    last_turn = (limit - 1) * baselines.LOOP_PERIOD_SECONDS
    found.append(
        f"ecs-cid-sample today: recursive loop detection ends its loop after {limit} "
        f"invocations (the last ~{last_turn:.0f} s after the action started); "
        f"longer drains wait for the 900 s heartbeat timeout (ABANDON) and drains past 15 min "
        f"are cut: {sample.cut} of {len(sample.samples)} latency drains lost tasks. It also "
        "completes as soon as runningTasksCount is 0, while tasks still deregister or stop."
    )
    for refresh in result.refreshes:
        found.append(refresh_finding(refresh, product))
    return found


def refresh_finding(refresh: RefreshResult, config: DrainerConfig) -> str:
    offered = 2 * refresh.instances / config.poll_interval_seconds  # two ListTasks per poll
    if refresh.throttled:
        throttled = ", ".join(f"{op} {n:,}" for op, n in sorted(refresh.throttled.items()))
        text = (
            f"Refresh of {refresh.instances}, {refresh.mode} mode: "
            f"{sum(refresh.throttled.values()):,} ECS calls "
            f"throttled ({throttled}). All drains locate their instance "
            "(ListContainerInstances) at the same moment, and each poll makes two ListTasks "
            f"calls: {offered:.0f}/s for {refresh.instances} drains polling every "
            f"{config.poll_interval_seconds} s, against a refill of {refresh.rate_per_s:g}/s."
        )
    else:
        text = f"Refresh of {refresh.instances}, {refresh.mode} mode: no ECS call was throttled."
    if refresh.failed_executions:
        text += (
            f" {refresh.failed_executions} drains failed: throttling reached their outcome (the "
            f"rescue path completed their lifecycle actions, {refresh.tasks_killed} tasks "
            "killed)."
        )
    else:
        text += " No throttling reached an outcome: every drain ended 'drained'."
    return text


def _usd(value: float) -> str:
    return f"${value:.4f}"


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"
