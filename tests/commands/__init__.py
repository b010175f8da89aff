"""The user-facing commands through their entry points: the sandbox endpoint and its quotas,
`python -m drains` and the benchmark."""
