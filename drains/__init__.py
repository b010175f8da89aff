"""`python -m drains`: what happened to my drains, read from the Step Functions API.

- executions.py  one execution as a drain (instance, kind, outcome, heartbeats), and the listing
                 of a time window; also what `make demo` shows
- timeline.py    one execution's history as the drain's timeline (states, waits, heartbeats,
                 errors), the poll loop's quiet stretches folded
- render.py      the aligned table, the timeline's lines, the JSON for scripts
- cli.py         the command: credentials, Region and state machine as the user has them
"""

import stacks  # noqa: F401  (puts lambdas/ on sys.path: the event parsers live in `drainer`)
