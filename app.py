#!/usr/bin/env python3
"""CDK app: `cdk synth` / `cdk deploy` (optionally `-c config=FILE`, default drainer.toml).

Settings come from the file only: `-c dry_run=true` and the like are refused (README,
"Configuration").
"""

import sys

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.config import ConfigError, check_context, load_config
from stacks.drainer_stack import DrainerStack


def main() -> None:
    app = cdk.App()
    try:
        check_context(app.node.try_get_context)
        config = load_config(app.node.try_get_context("config"))
    except ConfigError as problem:
        sys.exit(f"ecs-drainer: {problem}")
    DrainerStack(
        app,
        config.stack_name,
        config=config,
        description="ECS drain orchestrator: drains EC2 container instances before they go",
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()


if __name__ == "__main__":
    main()
