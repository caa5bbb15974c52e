"""Rendering of Events: sanitised text, JSON lines, aggregation tables.

Output renders :class:`undertow.events.Event` records only; it knows nothing of
backends. Everything that reaches a terminal goes through :func:`text.escape`.
"""
