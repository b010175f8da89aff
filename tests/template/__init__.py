"""The synthesized CloudFormation template (cdk-nag on): the resources, least privilege, IAM as
AWS evaluates it, each function's declaration, configuration files and test events through synth."""
