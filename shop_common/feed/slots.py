"""Who may open one more watch: at most so many per caller, per client connection, and in
the process, so that one caller or one client cannot take every watch a server can hold.

A connection is known by its peer address (`context.peer()`, e.g. `ipv4:10.0.0.7:53122`):
each TCP connection of a client has a port of its own, and a client's channels share one
connection unless it asks otherwise. A caller is known by the key the serving layer gives
(`Feed.caller_key`: a user's subject, the shared anonymous key), or None for a caller not
counted (the system's own services, the development admin): a caller's watches count
whatever connections they come on, a gateway's single connection included.

The count is exact: a slot is taken before the watch starts and given back when its call
ends, however it ends (finished, failed, cancelled by its client, cut off by its deadline
or by shutdown). A refused watch takes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from shop_common.domain import ResourceExhausted


class WatchSlots:
    def __init__(self, per_connection: int, total: int, per_caller: int | None = None) -> None:
        self.per_connection = per_connection
        self.total = total
        self.per_caller = per_caller
        """None: callers are not counted (only connections and the process)."""
        self._open: dict[str, int] = {}
        self._by_caller: dict[str, int] = {}
        self._count = 0

    @contextlib.contextmanager
    def take(self, peer: str, caller: str | None = None) -> Iterator[None]:
        """Holds one slot of `peer`'s (and of `caller`'s, unless None) while the block runs;
        raises ResourceExhausted (`TOO_MANY_WATCHES_FOR_CALLER`, `TOO_MANY_WATCHES`,
        `WATCH_CAPACITY_REACHED`) when there is none."""
        counted = caller if self.per_caller is not None else None
        if counted is not None:
            mine = self._by_caller.get(counted, 0)
            if self.per_caller is not None and mine >= self.per_caller:
                raise ResourceExhausted(
                    f"you have {mine} watches open, the most one caller may have: end one "
                    "before opening another",
                    reason="TOO_MANY_WATCHES_FOR_CALLER",
                    metadata={"max_watches_per_caller": str(self.per_caller)},
                )
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
        if counted is not None:
            self._by_caller[counted] = self._by_caller.get(counted, 0) + 1
        self._count += 1
        try:
            yield
        finally:
            self._count -= 1
            _give_back(self._open, peer)
            if counted is not None:
                _give_back(self._by_caller, counted)

    def open_on(self, peer: str) -> int:
        """Watches open on `peer`'s connection."""
        return self._open.get(peer, 0)

    def open_for(self, caller: str) -> int:
        """Watches open for `caller` (counted ones only)."""
        return self._by_caller.get(caller, 0)

    @property
    def open(self) -> int:
        """Watches open in the process."""
        return self._count


def _give_back(counts: dict[str, int], key: str) -> None:
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]  # no entry for a key with nothing open: memory follows what is open
