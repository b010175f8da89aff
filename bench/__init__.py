"""Benchmark of the drain orchestrator against two baselines, in virtual time (`make bench`).

Importing the package prepares the process first, before any module imports `drainer.aws` or
creates a boto3 session: the project and lambdas/ on sys.path, fake credentials (nothing here
may reach AWS), and one SDK attempt so throttling reaches the state machine's Retry, as in the
tests.
"""

from tools.offline import ROOT, prepare_process

prepare_process()

__all__ = ["ROOT"]
