"""A cap on the streams (NDJSON or SSE watches) one caller (`callers`) has open through the
gateway at once: one more is refused 429 (RESOURCE_EXHAUSTED, `TOO_MANY_STREAMS`) before
the backend is called. A slot is held from before the call until the stream has ended,
however it ends (finished, failed, the client gone, the gateway stopping), and a caller
with nothing open takes no memory.

The services cap watches per caller too (`SHOP_MAX_WATCHES_PER_CALLER`); this cap stops an
anonymous or a fast client at the edge, before it reaches them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc

from gateway.errors import RequestError


class StreamSlots:
    def __init__(self, per_caller: int) -> None:
        self.per_caller = per_caller
        self._open: dict[str, int] = {}

    @contextlib.contextmanager
    def take(self, key: str) -> Iterator[None]:
        """Holds one of `key`'s slots while the block runs; RequestError when it has none."""
        held = self._open.get(key, 0)
        if held >= self.per_caller:
            raise RequestError(
                "TOO_MANY_STREAMS",
                None,
                f"you have {held} streams open, the most one caller may have: end one "
                "before opening another",
                code=grpc.StatusCode.RESOURCE_EXHAUSTED,
                metadata={"max_streams_per_caller": str(self.per_caller)},
            )
        self._open[key] = held + 1
        try:
            yield
        finally:
            left = self._open[key] - 1
            if left:
                self._open[key] = left
            else:
                del self._open[key]

    def open_for(self, key: str) -> int:
        return self._open.get(key, 0)

    def __len__(self) -> int:
        """Callers with a stream open."""
        return len(self._open)
