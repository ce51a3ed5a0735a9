"""The shapes of compiled plans, in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

from google.protobuf.message import Message

Convert: TypeAlias = Callable[[Any], Any]
"""One value: JSON → Python field value (input), or the reverse (output)."""
Encode: TypeAlias = Callable[[Message], Any]
"""A message → its proto3 JSON as Python values (dict, list, str, int, float, bool, None)."""
Decode: TypeAlias = Callable[[object, Message], None]
"""Merges a JSON value into a message (or into one field of it)."""
Merge: TypeAlias = Callable[[Any, Message, int], None]
"""Merges a JSON value into a message at the given depth (the top message is 1)."""
Store: TypeAlias = Callable[[Message, Any, int], None]
"""Sets one field of a message, at the given depth, from the field's JSON value."""
Paths: TypeAlias = Callable[[object], list[str]]
"""A JSON object → the proto paths of the fields it sets."""
