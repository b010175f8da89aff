"""The orchestrator on this machine, no AWS account needed (docs/SANDBOX.md).

`make demo` (sandbox.demo) and `make sandbox` (sandbox.server) run a local AWS endpoint: moto in
server mode plus the simulated ECS / Auto Scaling / Spot world (simulated_aws/), on a virtual
clock. The first four modules also provision the orchestrator in one process for harness.py,
which the tests and the benchmark drive:

- deployment.py   the stack's resources, from the stack's own sources (ASL file, patterns, code)
- lambda_seam.py  moto's Lambda invocations reach the real handlers in-process
- eventbridge.py  PutEvents as AWS answers it, and the rule → target delivery moto lacks
- endpoint.py     where the endpoint listens; clients and environments that cannot reach AWS
- harness.py      the real state machine and handlers on moto and the world, no server
- world_setup.py  the demo cluster, and what AWS does around the events a user puts by hand
- driver.py       moves the virtual clock while there is work, paced for a human or flat out
- server.py       `make sandbox`: the endpoint, provisioned and seeded
- view.py, demo.py   `make demo`: a client of the server, as a user would be (it reads the
  drains as the `drains` command does: drains/executions.py)
"""

import stacks  # noqa: F401  (puts lambdas/ on sys.path: the handlers import `drainer`)

# events/*.json in the order the demo fires them and the server lists them.
EVENT_FILES = ("lifecycle-terminate", "spot-interruption", "rebalance-recommendation")
