"""Reliability and security. Nothing a user, AWS or an attacker sends may kill running
tasks or strand an instance. The figures these tests measure are printed at the end of the run."""
