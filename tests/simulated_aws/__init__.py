"""The simulated world's own tests: ECS, Auto Scaling, IAM, Spot, routing, the virtual clock and
moto's Step Functions waits on it."""
