"""Query parameters → the fields of a request message not bound by the path or the body.

Keys are field paths with dots (`filter.user_id`), each part in its proto name or its
lowerCamelCase JSON name; a repeated field takes the key once per value; a map takes one
key per entry, `labels[key]=value`. The lookup tree is built once per route.

A key that sets nothing (unknown, bound by the path or the body, a message rather than
one of its fields) is ignored, as grpc-gateway does; in strict mode it is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from urllib.parse import parse_qsl, unquote_plus

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.bindings import Binding, MapBinding, binding, map_binding
from gateway.convert import BindingError, is_text_field
from gateway.errors import RequestError
from gateway.wellknown import is_map

MAX_DEPTH = 8
"""Longest field path a key may name (recursive messages nest without end)."""

UNKNOWN = "unknown query parameter"
INVALID = "INVALID_QUERY_PARAMETER"


class _Node:
    """A field path prefix: what a key naming it sets (a field, or map entries), or its
    children, grown lazily (a recursive message would otherwise grow a tree of every depth
    up front). `note` says why a key naming it sets nothing; a `bound` node is a field the
    path or the body sets, and so is everything under it."""

    __slots__ = ("_children", "_grow", "binding", "bound", "entries", "note")

    def __init__(
        self,
        *,
        binding: Binding | None = None,
        entries: MapBinding | None = None,
        grow: Callable[[], dict[str, _Node]] | None = None,
        note: str = "",
        bound: bool = False,
    ) -> None:
        self.binding = binding
        self.entries = entries
        self.note = note
        self.bound = bound
        self._grow = grow
        self._children: dict[str, _Node] | None = None if grow else {}

    @property
    def children(self) -> dict[str, _Node]:
        if self._children is None:
            assert self._grow is not None
            self._children = self._grow()
        return self._children

    @property
    def settable(self) -> bool:
        return self.binding is not None or self.entries is not None or self._grow is not None


Found = Binding | tuple[MapBinding, str] | str
"""What a key sets: a field, a map's entry (with the key's text), or why nothing."""


class QueryParser:
    """Fills a message of one type from a raw query string."""

    def __init__(
        self, message: Descriptor, exclude: Collection[str] = (), *, strict: bool = False
    ) -> None:
        """`exclude`: proto field paths (`user.id`) bound elsewhere; `*` excludes all.
        `strict`: refuse keys that set nothing instead of ignoring them."""
        excluded = frozenset(exclude)
        self.strict = strict
        if "*" in excluded:
            self._root = _Node(bound=True, note="the body is the whole request")
        else:
            self._root = _Node(grow=lambda: _children(message, (), excluded))

    @property
    def empty(self) -> bool:
        """Whether `parse` would do nothing (no field to set, and not strict): a route
        may skip it."""
        if self.strict:
            return False
        return not any(node.settable for node in self._root.children.values())

    def bindings(self) -> Iterator[Binding]:
        """Every field a query may set (each once, whatever its spellings); maps excepted."""
        for node in self._nodes():
            if node.binding is not None:
                yield node.binding

    def maps(self) -> Iterator[MapBinding]:
        """Every map field whose entries a query may set (`labels[key]=value`)."""
        for node in self._nodes():
            if node.entries is not None:
                yield node.entries

    def _nodes(self) -> Iterator[_Node]:
        stack = [self._root]
        while stack:
            node = stack.pop()
            yield node
            # Both spellings of a field lead to the same node: visit it once.
            stack.extend({id(child): child for child in node.children.values()}.values())

    def lookup(self, key: str) -> Binding | None:
        """The field a (bracket-less) key sets, if any."""
        found = self.find(key)
        return found if isinstance(found, Binding) else None

    def find(self, key: str) -> Found:
        """What `key` sets: a field, a map entry with the entry key's text (`labels[k]`),
        or, as a string, why it sets nothing."""
        name, bracket, rest = key.partition("[")
        node = self._root
        for part in name.split("."):
            if node.bound:
                return f"{UNKNOWN}: {node.note}"
            child = node.children.get(part)
            if child is None:
                return UNKNOWN
            node = child
        if node.bound:
            return f"{UNKNOWN}: {node.note}"
        if bracket:
            if node.entries is None:
                return f"{UNKNOWN}: {node.note or f'{name} is not a map'}"
            if not rest.endswith("]"):
                return f"{UNKNOWN}: a map entry is {name}[key]"
            return node.entries, rest[:-1]
        if node.entries is not None:
            return f"{UNKNOWN}: a map takes one {name}[key]=value per entry"
        if node.binding is None:
            return f"{UNKNOWN}: {node.note}" if node.note else UNKNOWN
        return node.binding

    def parse(self, query: bytes, message: Message) -> None:
        """Sets the fields named in `query`; a bad key or value raises `RequestError` naming
        the key as the client spelled it."""
        try:
            pairs = parse_qsl(query.decode(), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            key = _not_utf8(query)
            what = "the value" if key else "the query string"
            raise RequestError(INVALID, key, f"{what} is not UTF-8") from None
        seen: set[object] = set()
        for key, value in pairs:
            found = self.find(key)
            if isinstance(found, str):
                if self.strict:
                    raise RequestError(INVALID, key, found)
                continue
            try:
                if isinstance(found, Binding):
                    if not found.repeated:
                        _once(seen, found.path, key)
                    found.set(message, value)
                else:
                    entries, text = found
                    entry = entries.key(text)
                    _once(seen, (entries.path, entry), key)
                    entries.set(message, entry, value)
            except BindingError as error:
                raise RequestError(INVALID, key, str(error)) from None


def _not_utf8(query: bytes) -> str:
    """The key whose value is not UTF-8 (once percent-decoded), as sent; "" when a key
    is not, or the query itself."""
    for pair in query.split(b"&"):
        raw_key, _, raw_value = pair.partition(b"=")
        try:
            key = unquote_plus(raw_key.decode(), errors="strict")
        except UnicodeDecodeError:
            return ""
        try:
            unquote_plus(raw_value.decode(), errors="strict")
        except UnicodeDecodeError:
            return key
    return ""


def _once(seen: set[object], mark: object, key: str) -> None:
    if mark in seen:
        raise RequestError(INVALID, key, "given more than once")
    seen.add(mark)


def _children(
    message: Descriptor, chain: tuple[FieldDescriptor, ...], exclude: frozenset[str]
) -> dict[str, _Node]:
    children: dict[str, _Node] = {}
    for descriptor in message.fields:
        path = (*chain, descriptor)
        name = ".".join(f.name for f in path)
        if name in exclude:
            child = _Node(bound=True, note=f"{name} is bound by the path or the body")
        else:
            child = _child(path, name, exclude)
        children[descriptor.name] = child
        children[descriptor.json_name] = child
    return children


def _child(path: tuple[FieldDescriptor, ...], name: str, exclude: frozenset[str]) -> _Node:
    descriptor = path[-1]
    if is_map(descriptor):
        try:
            return _Node(entries=map_binding(path), note=f"{name} is a map")
        except TypeError:
            return _Node(note=f"{name} is a map of messages, which a query cannot set")
    if is_text_field(descriptor):
        return _Node(binding=binding(path))
    inner = descriptor.message_type
    assert inner is not None
    if descriptor.is_repeated:
        return _Node(note=f"{name} is a list of messages, which a query cannot set")
    if len(path) >= MAX_DEPTH:
        return _Node(note=f"{name} is nested too deep for a query")
    return _Node(
        grow=lambda: _children(inner, path, exclude),
        note=f"{name} is a message: name one of its fields ({name}.field)",
    )
