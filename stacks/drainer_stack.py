"""The deployable stack: rules → state machine → Lambdas, hooks, claims, alarms, notifications."""

from __future__ import annotations

import hashlib
from typing import Any

import aws_cdk as cdk
import constructs
import jsii
from aws_cdk import (
    ArnFormat,
    CfnOutput,
    Duration,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from drainer.settings import STATE_MACHINE_VARIABLE
from stacks import LAMBDA_DIR, observability, permissions
from stacks.config import LOG_RETENTION_DAYS, DrainerConfig
from stacks.definition import DEFINITION_FILE, substitutions
from stacks.event_patterns import (
    event_patterns,
    execution_failure_pattern,
    instance_draining_pattern,
    instance_return_pattern,
    task_stopped_pattern,
)
from stacks.functions import (
    ALL_FUNCTIONS,
    DISPATCH_FUNCTION,
    FUNCTIONS,
    REACTIVATE_FUNCTION,
    RESCUE_FUNCTION,
    WAKE_FUNCTION,
    Function,
)
from stacks.iam_limits import oversized

# EventBridge retries delivery to a target for up to a day, then dead-letters.
RULE_RETRY_ATTEMPTS = 185
RULE_MAX_EVENT_AGE = Duration.hours(24)
# Once EventBridge has handed an event to a function (dispatch, rescue, reactivate), Lambda owns
# it: a function error is retried twice (the most Lambda allows), throttling and service errors
# for up to six hours, then the event goes to the dead-letter queue (Lambda developer guide,
# "How Lambda handles
# errors and retries with asynchronous invocation",
# https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html, and
# "Capturing records of Lambda asynchronous invocations",
# https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html).
ASYNC_RETRY_ATTEMPTS = 2
ASYNC_MAX_EVENT_AGE = Duration.hours(6)
RULE_NAME_LIMIT = 64  # EventBridge rule names: 1–64 characters
# The two alarms, by construct id. Their names are fixed (stack name + id) so that the topic and key
# policies can name their ARNs: a reference to the alarm would make the key depend on itself.
FAILED_ALARM, UNDELIVERED_ALARM = "DrainFailedAlarm", "UndeliveredEventsAlarm"
CLOUDWATCH = "cloudwatch.amazonaws.com"
# config.removal_policy: DeletionPolicy and UpdateReplacePolicy Delete, or Retain.
REMOVAL_POLICIES = {"destroy": RemovalPolicy.DESTROY, "retain": RemovalPolicy.RETAIN}


class DrainerStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: DrainerConfig, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        retention = _retention(config.log_retention_days)
        # The log groups' and the table's (config.removal_policy); the key keeps CDK's RETAIN.
        self.removal_policy = removal = REMOVAL_POLICIES[config.removal_policy]

        self.claims = dynamodb.TableV2(
            self,
            "Claims",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            time_to_live_attribute="expiresAt",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=removal,
        )

        self.alarm_names = {
            alarm: f"{self.stack_name}-{alarm}" for alarm in (FAILED_ALARM, UNDELIVERED_ALARM)
        }
        # Customer-managed key: CloudWatch alarms can publish to an encrypted topic only with
        # a key policy that lets cloudwatch.amazonaws.com use the key.
        topic_key = kms.Key(
            self,
            "OutcomeTopicKey",
            enable_key_rotation=True,
            description="Encrypts the ECS drainer's outcome topic",
        )
        # Only what SNS needs to encrypt the alarm's message for the publisher, on behalf of this
        # stack's alarms (SNS, "Managing Amazon SNS encryption keys", compatibility with AWS
        # services: https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html).
        topic_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowThisStacksAlarmsToUseTheKey",
                principals=[iam.ServicePrincipal(CLOUDWATCH)],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions=self._from_this_stacks_alarms(),
            )
        )
        self.topic = sns.Topic(
            self,
            "Outcomes",
            display_name="ECS drain outcomes",
            master_key=topic_key,
            enforce_ssl=True,
        )
        # enforce_ssl writes a topic policy, which replaces SNS's default one: without this Allow
        # the alarms' publish is refused and nobody hears of a failed drain (AWS knowledge center,
        # https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger; SNS,
        # https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html).
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowThisStacksAlarmsToPublish",
                principals=[iam.ServicePrincipal(CLOUDWATCH)],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=self._from_this_stacks_alarms(),
            )
        )
        for address in config.notification_emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(address))

        # The rules' dead-letter queue, and the one for what Lambda gave up on in the functions
        # they invoke.
        self.dead_letters = sqs.Queue(
            self,
            "RuleDeadLetters",
            retention_period=Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        settings = config.lambda_settings(self.claims.table_name, self.topic.topic_arn)
        code = lambda_.Code.from_asset(str(LAMBDA_DIR), exclude=["**/__pycache__", "**/*.pyc"])
        # Each function's facts and grants are declared in stacks/functions.py.
        self.functions = {
            function.name: self._function(function, code, settings, retention)
            for function in FUNCTIONS
        }
        # The catch-all behind the state machine's own rescue path (see rescue_execution.py).
        self.rescue_function = self._function(RESCUE_FUNCTION, code, settings, retention)
        self.reactivate_function = self._function(REACTIVATE_FUNCTION, code, settings, retention)
        self.wake_function = self._function(WAKE_FUNCTION, code, settings, retention)

        self.machine_logs = machine_logs = logs.LogGroup(
            self, "StateMachineLogs", retention=retention, removal_policy=removal
        )
        self.state_machine = sfn.StateMachine(
            self,
            "Drainer",
            # The file itself, uploaded as an asset: nothing rebuilds the definition in code.
            definition_body=sfn.DefinitionBody.from_file(str(DEFINITION_FILE)),
            # Published versions: an execution keeps the code it started with through a deploy
            # (README, "Upgrading while drains run").
            definition_substitutions=substitutions(
                {
                    name: function.current_version.function_arn
                    for name, function in self.functions.items()
                }
            ),
            state_machine_type=sfn.StateMachineType.STANDARD,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=machine_logs, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
        )
        permissions.allow_invoking_every_version(self.state_machine, self.functions.values())
        # Starts each drain under a name made from its event (a classic rule target cannot).
        self.dispatch_function = self._function(
            DISPATCH_FUNCTION,
            code,
            settings,
            retention,
            # Only the state machine: it reads no settings (and the settings may fill Lambda's
            # 4 KB of environment on their own).
            environment={STATE_MACHINE_VARIABLE: self.state_machine.state_machine_arn},
        )
        self.targets = permissions.Resources(
            self, config, self.claims, self.topic, self.state_machine, self.dead_letters
        )
        self.all_functions = {
            **self.functions,
            RESCUE_FUNCTION.name: self.rescue_function,
            REACTIVATE_FUNCTION.name: self.reactivate_function,
            DISPATCH_FUNCTION.name: self.dispatch_function,
            WAKE_FUNCTION.name: self.wake_function,
        }
        for declaration in ALL_FUNCTIONS:
            permissions.grant(self.targets, declaration, self.all_functions[declaration.name])

        patterns = event_patterns(config)
        self.rules = {}
        for name, pattern in patterns.items():
            # Lambda's permission for EventBridge names this rule as its source.
            self.rules[name] = self._function_rule(
                f"{name}Rule",
                pattern,
                f"ECS drainer: {name}",
                self.dispatch_function,
                rule_name=_rule_name(self.stack_name, name),
            )

        self._function_rule(
            "ExecutionFailedRule",
            execution_failure_pattern(self.state_machine.state_machine_arn),
            "ECS drainer: complete the action of a failed drain execution",
            self.rescue_function,
        )

        self._reactivation()
        self.task_stopped_rule = self._wake_ups() if config.ends_drains_on_events else None

        if config.manage_lifecycle_hooks:
            for index, group in enumerate(config.auto_scaling_group_names):
                autoscaling.CfnLifecycleHook(
                    self,
                    f"TerminateHook{index}",
                    auto_scaling_group_name=group,
                    lifecycle_hook_name=config.lifecycle_hook_name,
                    lifecycle_transition="autoscaling:EC2_INSTANCE_TERMINATING",
                    heartbeat_timeout=config.heartbeat_timeout_seconds,
                    # On terminate both results terminate; ABANDON would skip other hooks.
                    default_result="CONTINUE",
                )

        self._alarms()
        # The dashboard, saved queries and the outputs an on-call engineer starts from.
        self.dashboard = observability.build(self)
        CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine_arn)
        CfnOutput(self, "OutcomeTopicArn", value=self.topic.topic_arn)
        CfnOutput(self, "TestEventSource", value=config.test_event_source or "(disabled)")
        self._acknowledge_nag_findings()
        self.node.add_validation(_PolicySizeCheck(self))

    # --- Lambdas -------------------------------------------------------------------------
    def _function(
        self,
        function: Function,
        code: lambda_.Code,
        settings: str,
        retention: logs.RetentionDays,
        environment: dict[str, str] | None = None,
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self,
            f"{function.name}Logs",
            retention=retention,
            removal_policy=self.removal_policy,
        )
        role = iam.Role(
            self,
            f"{function.name}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"ECS drainer {function.name} Lambda",
        )
        log_group.grant_write(role)
        # A function EventBridge invokes is invoked asynchronously and Lambda may give up on an
        # event: it retries, then sends it to the dead-letter queue (ASYNC_RETRY_ATTEMPTS).
        # The queue (SSE-SQS, no key policy) needs no policy: Lambda sends with the function's
        # role, which its declaration grants sqs:SendMessage on the queue.
        asynchronous: dict[str, Any] = (
            {
                "dead_letter_queue": self.dead_letters,
                "retry_attempts": ASYNC_RETRY_ATTEMPTS,
                "max_event_age": ASYNC_MAX_EVENT_AGE,
            }
            if function.invoked_by_events
            else {}
        )
        return lambda_.Function(
            self,
            function.name,
            description=f"ECS drainer: {function.description}",
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=(
                lambda_.Architecture.ARM_64
                if self.config.lambda_architecture == "arm64"
                else lambda_.Architecture.X86_64
            ),
            handler=function.handler,
            code=code,
            memory_size=self.config.lambda_memory_mb,
            timeout=Duration.seconds(function.timeout_seconds),
            environment=environment or {"DRAINER_SETTINGS": settings},
            role=role,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.TEXT,
            # A deploy publishes a new version; the old ones stay for the executions still
            # running on them (README, "Upgrading while drains run").
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.RETAIN),
            **asynchronous,
        )

    def _function_rule(
        self,
        construct_id: str,
        pattern: dict[str, Any],
        description: str,
        function: lambda_.IFunction,
        rule_name: str | None = None,
    ) -> events.Rule:
        """A rule on the default bus with one Lambda target: EventBridge retries for up to a
        day, then dead-letters."""
        rule = events.Rule(
            self,
            construct_id,
            rule_name=rule_name,
            event_pattern=_pattern(pattern),
            description=description,
        )
        rule.add_target(
            targets.LambdaFunction(
                function,
                dead_letter_queue=self.dead_letters,
                retry_attempts=RULE_RETRY_ATTEMPTS,
                max_event_age=RULE_MAX_EVENT_AGE,
            )
        )
        return rule

    def _reactivation(self) -> None:
        """Spot stop/hibernate: a parked instance is set ACTIVE again when it comes back
        (lambdas/drainer/parking.py)."""
        self.instance_returned_rule = self._function_rule(
            "InstanceReturnedRule",
            instance_return_pattern(self.config),
            "ECS drainer: set a parked Spot instance ACTIVE when it comes back",
            self.reactivate_function,
        )

    def _wake_ups(self) -> events.Rule:
        """drain_end_detection = "events": every task of the configured clusters that stops
        reaches the wake function, which ends a draining instance's wait
        (lambdas/drainer/watch.py)."""
        rule = self._function_rule(
            "TaskStoppedRule",
            task_stopped_pattern(self.config),
            "ECS drainer: a task stopped; wake the drain of its instance",
            self.wake_function,
        )
        # ECS's own moment of DRAINING, so that a drain's first snapshot can tell which tasks
        # ECS counted then and skip its confirming listing (lambdas/poll_tasks.py counted_at).
        self._function_rule(
            "InstanceDrainingRule",
            instance_draining_pattern(self.config),
            "ECS drainer: a container instance is DRAINING; note when it began",
            self.wake_function,
        )
        return rule

    # --- Operations ----------------------------------------------------------------------
    def _from_this_stacks_alarms(self) -> dict[str, Any]:
        """Conditions that confine the CloudWatch service principal to this stack's alarms."""
        alarm_arns = [
            self.format_arn(
                service="cloudwatch",
                resource="alarm",
                resource_name=name,
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            for name in self.alarm_names.values()
        ]
        return {
            "StringEquals": {"aws:SourceAccount": self.account},
            "ArnEquals": {"aws:SourceArn": alarm_arns},
        }

    def _alarms(self) -> None:
        machine = self.state_machine
        period = Duration.minutes(5)
        failed = cloudwatch.MathExpression(
            expression="failed + timedOut + aborted",
            using_metrics={
                "failed": machine.metric_failed(period=period, statistic="Sum"),
                "timedOut": machine.metric_timed_out(period=period, statistic="Sum"),
                "aborted": machine.metric_aborted(period=period, statistic="Sum"),
            },
            label="Failed, timed-out or aborted drains",
            period=period,
        )
        self.failed_alarm = self._alarm_on_any(
            failed,
            FAILED_ALARM,
            "An ECS drain execution failed, timed out or was aborted. Its lifecycle action was "
            "completed by the rescue path; see docs/RUNBOOK.md.",
        )
        self.dead_letter_alarm = self._alarm_on_any(
            self.dead_letters.metric_approximate_number_of_messages_visible(
                period=period, statistic="Maximum"
            ),
            UNDELIVERED_ALARM,
            "An event was not handled: EventBridge could not deliver it, or the function it "
            "invoked failed after Lambda's retries (the dispatch function could not start a "
            "drain, the rescue function could not complete a failed drain's lifecycle action, "
            "or the reactivate function could not set a parked Spot instance ACTIVE). The event "
            "is in the dead-letter queue. See docs/RUNBOOK.md.",
        )

    def _alarm_on_any(
        self,
        metric: cloudwatch.Metric | cloudwatch.MathExpression,
        construct_id: str,
        description: str,
    ) -> cloudwatch.Alarm:
        """An alarm that fires on the first occurrence and notifies the outcome topic."""
        alarm = metric.create_alarm(
            self,
            construct_id,
            alarm_name=self.alarm_names[construct_id],
            alarm_description=description,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.topic))
        return alarm

    def _acknowledge_nag_findings(self) -> None:
        """cdk-nag AwsSolutions findings of the stack's own resources, with their reasons (the
        functions' are acknowledged with their grants: stacks/permissions.py)."""
        permissions.acknowledge(
            self.state_machine.role,
            "Resource::*",
            "X-Ray tracing and CloudWatch Logs delivery actions support no "
            "resource-level permissions.",
        )
        cdk.Validations.of(self.dead_letters).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions::AwsSolutions-SQS3",
                reason="This queue is itself the dead-letter queue of the rules and of the "
                "functions they invoke.",
            )
        )


@jsii.implements(constructs.IValidation)
class _PolicySizeCheck:
    """Refuses synthesis when a role or policy would exceed IAM's size quotas (iam_limits.py)."""

    def __init__(self, stack: DrainerStack) -> None:
        self._stack = stack

    def validate(self) -> list[str]:
        stack = self._stack
        resources = {}
        for construct in stack.node.find_all():
            if isinstance(construct, iam.CfnRole):
                properties = {"AssumeRolePolicyDocument": construct.assume_role_policy_document}
            elif isinstance(construct, iam.CfnPolicy | iam.CfnManagedPolicy):
                properties = {"PolicyDocument": construct.policy_document, "Roles": construct.roles}
            else:
                continue
            logical_id = stack.resolve(stack.get_logical_id(construct))
            resources[logical_id] = {
                "Type": construct.cfn_resource_type,
                "Properties": stack.resolve(properties),
            }
        return [
            f"{problem}. Every configured cluster and group is granted by its own ARN: configure "
            "fewer or shorter cluster_names / auto_scaling_group_names."
            for problem in oversized(resources, stack.stack_name)
        ]


def _rule_name(stack_name: str, name: str) -> str:
    """`<stack>-<name>Rule` (as the sandbox names them), shortened with a hash of the full name
    when it would pass EventBridge's 64 characters."""
    full = f"{stack_name}-{name}Rule"
    if len(full) <= RULE_NAME_LIMIT:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: RULE_NAME_LIMIT - len(digest) - 1]}-{digest}"


def _pattern(pattern: dict) -> events.EventPattern:
    return events.EventPattern(
        source=pattern["source"],
        detail_type=pattern["detail-type"],
        detail=pattern.get("detail"),
    )


def _retention(days: int) -> logs.RetentionDays:
    """The RetentionDays member for `days`. jsii enum values are names, in ascending order of
    the CloudWatch Logs values that config.LOG_RETENTION_DAYS lists."""
    finite = [member for member in logs.RetentionDays if member.name != "INFINITE"]
    return dict(zip(LOG_RETENTION_DAYS, finite, strict=True))[days]
