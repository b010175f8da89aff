"""Plain functions behind the drainer's Lambda handlers.

Kept free of heavy imports: every handler pays for what this package imports at cold start.
"""
