"""The route table: every `google.api.http` rule of the served services, read from their
descriptors at start-up, and the match of a request's method and path against them.

Patterns are tried from the most specific (literal before `*` before `**`, segment by
segment), not in registration order. A path ending in `:verb`, for a verb some rule
declares, goes to the rules with that verb. A path that matches but not for the method
is a 405 with the methods it has.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from gateway import pattern as patterns
from gateway.bindings import Binding, binding, resolve
from gateway.codec import BodyDecoder, ResponseEncoder
from gateway.convert import BindingError, is_text_field
from gateway.errors import RequestError
from gateway.query import QueryParser

HTTP_METHODS = ("get", "put", "post", "delete", "patch")


class RouteError(ValueError):
    """A rule the gateway refuses to serve (invalid, or ambiguous with another)."""


class NoRoute(LookupError):
    """No route for the request: `allowed` lists the methods the path has (none: 404)."""

    def __init__(self, allowed: frozenset[str] = frozenset()) -> None:
        super().__init__(", ".join(sorted(allowed)) or "no route")
        self.allowed = allowed


@dataclass(frozen=True, slots=True, eq=False)
class Route:
    """One HTTP binding of one RPC, with everything a request needs precomputed."""

    http_method: str
    pattern: patterns.Pattern
    method: MethodDescriptor
    full_method: str
    """`/package.Service/Method`, the gRPC path."""
    request_class: type[Message]
    response_class: type[Message]
    server_streaming: bool
    path_bindings: tuple[Binding, ...]
    body_field: str
    """The rule's `body`: "" (none), "*" (the whole request) or a top-level field name."""
    response_body: str
    """The rule's `response_body`: "" (the whole response) or a top-level field name."""
    body: BodyDecoder | None
    query: QueryParser | None
    encoder: ResponseEncoder

    def bind_path(self, message: Message, captures: Sequence[str]) -> None:
        """Sets the path variables; a bad value raises `RequestError` naming the variable."""
        for bound, text in zip(self.path_bindings, captures, strict=True):
            try:
                bound.set(message, text)
            except BindingError as error:
                raise RequestError("INVALID_PATH_PARAMETER", bound.path, str(error)) from None

    def bound_in(self, message: Message) -> str | None:
        """The first path-bound field that `message` already has a value for."""
        for bound in self.path_bindings:
            parent = message
            for field_ in bound.fields[:-1]:
                if not parent.HasField(field_.name):
                    break
                parent = getattr(parent, field_.name)
            else:
                last = bound.fields[-1]
                if last.message_type is not None:
                    if parent.HasField(last.name):
                        return bound.path
                elif getattr(parent, last.name) != last.default_value:
                    return bound.path
        return None

    def __str__(self) -> str:
        return f"{self.http_method} {self.pattern.template} → {self.full_method[1:]}"


def routes_of(
    services: Iterable[ServiceDescriptor], *, strict: bool = False, proto_names: bool = False
) -> list[Route]:
    """A route for each HTTP rule (and additional binding) of the services' methods."""
    found: list[Route] = []
    for service in services:
        for method in service.methods:
            options = method.GetOptions()
            if not options.HasExtension(annotations_pb2.http):
                continue
            rule = options.Extensions[annotations_pb2.http]
            for each in (rule, *rule.additional_bindings):
                found.append(route_for(method, each, strict=strict, proto_names=proto_names))
    return found


def route_for(
    method: MethodDescriptor,
    rule: http_pb2.HttpRule,
    *,
    strict: bool = False,
    proto_names: bool = False,
) -> Route:
    """The route of one rule of `method`; `RouteError` says what is wrong with the rule."""
    try:
        return _route(method, rule, strict, proto_names)
    except RouteError as error:
        raise RouteError(f"{method.full_name}: {error}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise RouteError(f"{method.full_name}: {error}") from error


def _route(
    method: MethodDescriptor, rule: http_pb2.HttpRule, strict: bool, proto_names: bool
) -> Route:
    if method.client_streaming:
        raise RouteError("client-streaming methods cannot be served over HTTP/JSON")
    kind = rule.WhichOneof("pattern")
    if kind in HTTP_METHODS:
        http_method, template = kind.upper(), getattr(rule, kind)
    elif kind == "custom":
        http_method, template = rule.custom.kind.upper(), rule.custom.path
    else:
        raise RouteError("the rule has no pattern")
    pattern = patterns.parse(template)
    request = method.input_type
    bindings: list[Binding] = []
    for variable in pattern.variables:
        fields = resolve(request, variable.field_path)
        if not is_text_field(fields[-1]) or fields[-1].is_repeated:
            raise RouteError(f"path variable {variable.name} must be a singular scalar field")
        bindings.append(binding(fields))
    body = BodyDecoder(request, rule.body, ignore_unknown_fields=not strict) if rule.body else None
    bound = {b.path for b in bindings} | ({rule.body} if rule.body else set())
    query = QueryParser(request, bound, strict=strict)
    return Route(
        http_method=http_method,
        pattern=pattern,
        method=method,
        full_method=f"/{method.containing_service.full_name}/{method.name}",
        request_class=GetMessageClass(request),
        response_class=GetMessageClass(method.output_type),
        server_streaming=method.server_streaming,
        path_bindings=tuple(bindings),
        body_field=rule.body,
        response_body=rule.response_body,
        body=body,
        query=None if query.empty else query,
        encoder=ResponseEncoder(method.output_type, rule.response_body, proto_names=proto_names),
    )


@dataclass(slots=True)
class _Entry:
    """The routes of one path shape, by HTTP method."""

    pattern: patterns.Pattern
    by_method: dict[str, Route] = field(default_factory=dict)

    @property
    def head(self) -> Route | None:
        """The route a HEAD takes: the GET's, answered without its body (RFC 9110 9.3.2);
        a stream has no end to measure, so it has none."""
        get = self.by_method.get("GET")
        return get if get is not None and not get.server_streaming else None


class Router:
    """Matches a method and a raw (percent-encoded) path to a route and its captures."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = tuple(routes)
        shapes: dict[object, _Entry] = {}
        for route in self.routes:
            entry = shapes.setdefault(route.pattern.shape, _Entry(route.pattern))
            other = entry.by_method.get(route.http_method)
            if other is not None:
                raise RouteError(f"{route} is ambiguous with {other}")
            entry.by_method[route.http_method] = route
        ordered = sorted(shapes.values(), key=lambda e: e.pattern.specificity)
        self._plain = [e for e in ordered if not e.pattern.verb]
        self._by_verb: dict[str, list[_Entry]] = {}
        for entry in ordered:
            if entry.pattern.verb:
                self._by_verb.setdefault(entry.pattern.verb, []).append(entry)

    def match(self, method: str, path: str) -> tuple[Route, list[str]]:
        """Raises `NoRoute`; `UnicodeDecodeError` for a path that is not UTF-8.

        The verb is found on the raw path (an encoded `%3A` is data, not a verb's colon),
        then each segment is decoded."""
        raw = path[1:].split("/")
        allowed: set[str] = set()
        last = raw[-1]
        colon = last.rfind(":")
        if colon >= 0:
            entries = self._by_verb.get(last[colon + 1 :])
            if entries is not None:
                trimmed = [*raw[:-1], last[:colon]]
                found = _find(entries, method, trimmed, allowed)
                if found is not None:
                    return found
                if allowed:
                    raise NoRoute(frozenset(allowed))
        found = _find(self._plain, method, raw, allowed)
        if found is not None:
            return found
        raise NoRoute(frozenset(allowed))

    def methods(self, path: str) -> frozenset[str]:
        """Every method some route has for `path` (empty: no route)."""
        try:
            self.match("", path)  # no route has the empty method
        except NoRoute as missing:
            return missing.allowed
        raise AssertionError("a route for the empty method")


def _find(
    entries: list[_Entry], method: str, raw: list[str], allowed: set[str]
) -> tuple[Route, list[str]] | None:
    escaped = any("%" in p for p in raw)
    parts = [unquote(p, errors="strict") if "%" in p else p for p in raw] if escaped else raw
    for entry in entries:
        if entry.pattern.matches(parts):
            route = entry.by_method.get(method)
            if route is None and method == "HEAD":
                route = entry.head
            if route is not None:
                return route, route.pattern.captures(parts, raw if escaped else None)
            allowed.update(entry.by_method)
            if entry.head is not None:
                allowed.add("HEAD")
    return None
