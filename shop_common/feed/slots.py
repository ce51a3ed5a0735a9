"""Who may open one more watch: at most so many per client connection, and so many in the
process, so that one client cannot take every watch a server can hold.

A connection is known by its peer address (`context.peer()`, e.g. `ipv4:10.0.0.7:53122`):
each TCP connection of a client has a port of its own, and a client's channels share one
connection unless it asks otherwise. The count is exact: a slot is taken before the watch
starts and given back when its call ends, however it ends (finished, failed, cancelled by
its client, cut off by its deadline or by shutdown).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from shop_common.domain import ResourceExhausted


class WatchSlots:
    def __init__(self, per_connection: int, total: int) -> None:
        self.per_connection = per_connection
        self.total = total
        self._open: dict[str, int] = {}
        self._count = 0

    @contextlib.contextmanager
    def take(self, peer: str) -> Iterator[None]:
        """Holds one slot of `peer`'s while the block runs; raises ResourceExhausted
        (`TOO_MANY_WATCHES`, `WATCH_CAPACITY_REACHED`) when there is none."""
        held = self._open.get(peer, 0)
        if held >= self.per_connection:
            raise ResourceExhausted(
                f"this connection has {held} watches open, the most one connection may "
                "have: end one before opening another",
                reason="TOO_MANY_WATCHES",
                metadata={"max_watches_per_connection": str(self.per_connection)},
            )
        if self._count >= self.total:
            raise ResourceExhausted(
                f"the server has {self._count} watches open, the most it serves: try again later",
                reason="WATCH_CAPACITY_REACHED",
                metadata={"max_watches": str(self.total)},
            )
        self._open[peer] = held + 1
        self._count += 1
        try:
            yield
        finally:
            self._count -= 1
            left = self._open[peer] - 1
            if left:
                self._open[peer] = left
            else:
                del self._open[peer]

    def open_on(self, peer: str) -> int:
        """Watches open on `peer`'s connection."""
        return self._open.get(peer, 0)

    @property
    def open(self) -> int:
        """Watches open in the process."""
        return self._count
