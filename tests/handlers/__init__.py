"""One Lambda handler at a time, on the payload its Task sends, against moto (DynamoDB, SNS) and
the simulated world (ECS, Auto Scaling)."""
