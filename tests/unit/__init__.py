"""Plain functions, no AWS: parsers, poll verdicts, the heartbeat schedule, configuration and the
definition file the builder writes."""
