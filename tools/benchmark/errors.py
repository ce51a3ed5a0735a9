"""Why the benchmark stops."""


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


class FeedError(Exception):
    """The feed benchmark cannot go on; the message says why."""
