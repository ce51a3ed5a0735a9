"""Query parameters → the fields of a request message not bound by the path or the body.

Keys are field paths with dots (`filter.user_id`), each part in its proto name or its
lowerCamelCase JSON name; a repeated field takes the key once per value. The lookup tree
is built once per route; unknown keys are ignored, as grpc-gateway does.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from urllib.parse import parse_qsl

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.fields import Binding, BindingError, binding, is_text_field

MAX_DEPTH = 8
"""Longest field path a key may name (recursive messages nest without end)."""


class QueryError(ValueError):
    """A query parameter that cannot be taken: `key` is as the client spelled it."""

    def __init__(self, key: str, description: str) -> None:
        super().__init__(f"{key}: {description}")
        self.key = key
        self.description = description


class _Node:
    """A field path prefix: its binding when text sets it, or its children, grown lazily
    (a recursive message would otherwise grow a tree of every depth up front)."""

    __slots__ = ("_children", "_grow", "binding")

    def __init__(
        self,
        binding: Binding | None = None,
        grow: Callable[[], dict[str, _Node]] | None = None,
    ) -> None:
        self.binding = binding
        self._grow = grow
        self._children: dict[str, _Node] | None = None if grow else {}

    @property
    def children(self) -> dict[str, _Node]:
        if self._children is None:
            assert self._grow is not None
            self._children = self._grow()
        return self._children


class QueryParser:
    """Fills a message of one type from a raw query string."""

    def __init__(self, message: Descriptor, exclude: Collection[str] = ()) -> None:
        """`exclude`: proto field paths (`user.id`) bound elsewhere; `*` excludes all."""
        excluded = frozenset(exclude)
        self._root = _Node()
        if "*" not in excluded:
            self._root = _Node(grow=lambda: _children(message, (), excluded))

    @property
    def empty(self) -> bool:
        return not self._root.children

    def bindings(self) -> Iterator[Binding]:
        """Every field a query may set (each once, whatever its spellings)."""
        stack = [self._root]
        while stack:
            node = stack.pop()
            if node.binding is not None:
                yield node.binding
            # Both spellings of a field lead to the same node: visit it once.
            stack.extend({id(child): child for child in node.children.values()}.values())

    def lookup(self, key: str) -> Binding | None:
        node: _Node | None = self._root
        for part in key.split("."):
            assert node is not None
            node = node.children.get(part)
            if node is None:
                return None
        return node.binding if node is not None else None

    def parse(self, query: bytes, message: Message) -> None:
        """Sets the fields named in `query`; raises `QueryError` on a bad key or value."""
        try:
            pairs = parse_qsl(query.decode(), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            raise QueryError("", "the query string is not UTF-8") from None
        seen: set[str] = set()
        for key, value in pairs:
            found = self.lookup(key)
            if found is None:
                continue
            if not found.repeated:
                if found.path in seen:
                    raise QueryError(key, "given more than once")
                seen.add(found.path)
            try:
                found.set(message, value)
            except BindingError as error:
                raise QueryError(key, str(error)) from None


def _children(
    message: Descriptor, chain: tuple[FieldDescriptor, ...], exclude: frozenset[str]
) -> dict[str, _Node]:
    children: dict[str, _Node] = {}
    for descriptor in message.fields:
        path = (*chain, descriptor)
        if ".".join(f.name for f in path) in exclude:
            continue
        child = _child(path, exclude)
        if child is not None:
            children[descriptor.name] = child
            children[descriptor.json_name] = child
    return children


def _child(path: tuple[FieldDescriptor, ...], exclude: frozenset[str]) -> _Node | None:
    descriptor = path[-1]
    inner = descriptor.message_type
    if inner is not None and inner.GetOptions().map_entry:
        return None  # `m[k]=v` is for a later change
    if is_text_field(descriptor):
        return _Node(binding=binding(path))
    assert inner is not None
    if descriptor.is_repeated or len(path) >= MAX_DEPTH:
        return None
    return _Node(grow=lambda: _children(inner, path, exclude))
