"""Reading a change feed's stream (WatchUsers or WatchOrders) in revision order."""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any


@dataclass
class Read:
    events: int = 0
    responses: int = 0
    gaps: int = 0
    """Events whose revision was not the one after the event before (there must be none)."""


async def read_in_order(stream: AsyncIterable[Any], first: int, count: int) -> Read:
    """Reads `stream`, a watch from revision `first`, until `count` events have come."""
    read, expect = Read(), first
    async for response in stream:
        read.responses += 1
        for event in response.events:
            if event.revision != expect:
                read.gaps += 1
            expect = event.revision + 1
        read.events += len(response.events)
        if read.events >= count:
            break
    return read
