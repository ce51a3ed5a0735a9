"""How a service serves its change feed: retention, buffers, polling."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """How a service serves its change feed."""

    retention_seconds: float = 86_400.0
    """History older than this is compacted (the newest revision always stays)."""
    progress_seconds: float = 5.0
    """An idle watch that asked for it gets a progress notification this often."""
    buffer_revisions: int = 4_096
    """Revisions queued for one watcher before it is cut off as too slow."""
    poll_seconds: float = 1.0
    """The changelog is read at least this often, even when nothing wakes the feed."""
    memory_revisions: int = 8_192
    """Recent revisions kept in memory, so that a watcher a little behind needs no query."""
    max_watches_per_connection: int = 900
    """Watches one client connection may have open at once; the next is refused with
    RESOURCE_EXHAUSTED. A proxy (the gateway) carries all its clients' watches over one
    connection: this bounds how many watch through it."""
    max_watches_per_caller: int = 32
    """Watches one caller may have open at once, whatever their connections (the gateway
    carries everyone's over one); the next is refused with RESOURCE_EXHAUSTED. A caller is
    a user's subject, or all anonymous callers together; the system's services and the
    development admin are not counted (`serving.identity.limit_key`)."""
    max_watches: int = 10_000
    """Watches open at once in the process, whatever their connections."""

    @property
    def compaction_interval(self) -> float:
        """How often history is compacted: often enough to keep near the retention."""
        return min(300.0, max(1.0, self.retention_seconds / 2))
