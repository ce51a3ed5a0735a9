"""The ASGI types the gateway speaks, in one place (as starlette's `types.py`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, TypeAlias

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
MetadataPairs: TypeAlias = Iterable[tuple[str, str | bytes]]
"""gRPC metadata as (key, value) pairs; `-bin` keys carry bytes."""
Headers: TypeAlias = list[tuple[bytes, bytes]]
"""Response headers as ASGI sends them: lower-case names, latin-1 bytes."""
