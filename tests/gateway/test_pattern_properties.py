"""Properties of path matching and binding, over every template form (the conformance API)
and the shop's routes: any request path is either routed, with each variable bound, or
refused in the ways the gateway turns into a clear 4xx (no route: 404/405; not UTF-8:
400; a value its field cannot take: a `RequestError` naming the variable), never another
exception; and a path built from a template with arbitrary values routes back to the
template's route with those values."""

from __future__ import annotations

import functools
from urllib.parse import quote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.errors import RequestError
from gateway.pattern import Kind
from gateway.routes import NoRoute, Route, Router, routes_of
from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from tests.gateway.conformance.protos import load

SETTINGS = settings(max_examples=300, derandomize=True, deadline=None, database=None)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


@functools.cache
def router() -> Router:
    services = [
        load().service,
        user_pb2.DESCRIPTOR.services_by_name["UserService"],
        order_pb2.DESCRIPTOR.services_by_name["OrderService"],
    ]
    return Router(routes_of(services))


def words() -> list[str]:
    """The literal segments and verbs of the routes: paths near the real ones."""
    found = {"v1", "v2", "", ".", "..", "%", "%2F", "%2f", "%3A", "%zz", "%C3%A9", "%FF", "%C3"}
    for route in router().routes:
        found.update(s.literal for s in route.pattern.segments if s.kind is Kind.LITERAL)
        if route.pattern.verb:
            found.add(f"x:{route.pattern.verb}")
    return sorted(found)


SEGMENTS = st.one_of(
    st.sampled_from(words()),
    st.text(max_size=12),
    st.text(alphabet="%0123456789abcdefABCDEFxz:/.", max_size=12),
    st.integers(min_value=500, max_value=5000).map(lambda n: "a" * n),
)


@st.composite
def near_requests(draw: st.DrawFn) -> tuple[str, str]:
    """A route's method, and its template with arbitrary raw text (unencoded: `%`, `/`,
    `:`, unicode) where its wildcards are, now and then a segment more or less."""
    route = draw(st.sampled_from(router().routes))
    pattern = route.pattern
    parts: list[str] = []
    for segment in pattern.segments:
        if segment.kind is Kind.LITERAL:
            parts.append(segment.literal)
        elif segment.kind is Kind.ANY:
            parts.append(draw(SEGMENTS))
        else:
            parts.extend(draw(st.lists(SEGMENTS, max_size=3)))
    if draw(st.integers(0, 9)) == 0:
        parts.append(draw(SEGMENTS))
    elif parts and draw(st.integers(0, 9)) == 0:
        parts.pop()
    verb = f":{pattern.verb}" if pattern.verb else ""
    return route.http_method, "/" + "/".join(parts) + verb


REQUESTS = st.one_of(
    st.tuples(
        st.sampled_from(METHODS),
        st.lists(SEGMENTS, max_size=8).map(lambda parts: "/" + "/".join(parts)),
    ),
    near_requests(),
    near_requests(),
)


def routed(method: str, path: str) -> tuple[Route, object] | None:
    """What the gateway makes of a request line: its route and message, or None where it
    answers 404, 405 or 400 (INVALID_PATH) without looking further."""
    try:
        route, captures = router().match(method, path)
    except (NoRoute, UnicodeDecodeError):
        return None
    message = route.request_class()
    route.bind_path(message, captures)
    return route, message


@SETTINGS
@given(REQUESTS)
@example(("GET", "/v1/typed/COLOR_RED/2024-01-02T03:04:05Z/1s/%C3%A9/1/true"))  # was a 500
@example(("GET", "/v1/items/%"))
@example(("GET", "/v1/items/%C3"))
@example(("GET", "/v1/shelves/%FF/books/b"))
@example(("GET", "/v1/typed/COLOR_RED/x/1s/aGk/18446744073709551616/true"))
@example(("POST", "/v1/things/a%3Acancel:cancel"))
@example(("GET", "/v1/items/../.."))
@example(("GET", "/v1/items/" + "é" * 3000))
def test_any_path_is_routed_or_refused_with_a_request_error(request_line: tuple[str, str]) -> None:
    method, path = request_line
    try:
        routed(method, path)
    except RequestError as error:
        refused = error
    else:
        return
    assert refused.reason == "INVALID_PATH_PARAMETER"
    route, _ = router().match(method, path)
    assert refused.field in {binding.path for binding in route.path_bindings}


def _text_routes() -> list[Route]:
    """Routes whose variables all bind string fields: any text is a value of theirs."""
    return [
        route
        for route in router().routes
        if route.path_bindings
        and all(b.field.type == b.field.TYPE_STRING for b in route.path_bindings)
    ]


@st.composite
def filled(draw: st.DrawFn) -> tuple[Route, str, list[str]]:
    """A route, a path made from its template with arbitrary values (each segment
    percent-encoded), and the value each variable should get back."""
    route = draw(st.sampled_from(_text_routes()))
    pattern = route.pattern
    starts = {variable.start: variable for variable in pattern.variables}
    parts: list[str] = []
    values: list[str] = []
    i = 0
    while i < len(pattern.segments):
        variable = starts.get(i)
        end = i + 1 if variable is None else variable.end or len(pattern.segments)
        pieces: list[str] = []
        for segment in pattern.segments[i:end]:
            if segment.kind is Kind.LITERAL:
                pieces.append(segment.literal)
            elif segment.kind is Kind.ANY:
                pieces.append(draw(st.text(min_size=1, max_size=10)))
            else:  # `**`: any number of segments, empty ones too
                pieces.extend(draw(st.lists(st.text(max_size=6), max_size=3)))
        parts.extend(quote(piece, safe="") for piece in pieces)
        if variable is not None:
            if variable.end is None or variable.end - variable.start > 1:
                # Of a variable of several segments, an encoded slash stays encoded.
                pieces = [piece.replace("/", "%2F") for piece in pieces]
            values.append("/".join(pieces))
        i = end
    verb = f":{pattern.verb}" if pattern.verb else ""
    return route, "/" + "/".join(parts) + verb, values


@SETTINGS
@given(filled())
def test_a_path_filled_from_a_template_binds_back_its_values(
    case: tuple[Route, str, list[str]],
) -> None:
    route, path, values = case
    alone = Router([route])  # else a more specific route may take it ("special")
    matched, captures = alone.match(route.http_method, path)
    assert matched is route
    assert captures == values
    message = route.request_class()
    route.bind_path(message, captures)
    for binding, value in zip(route.path_bindings, values, strict=True):
        held = message
        for field in binding.fields:
            held = getattr(held, field.name)
        assert held == value


def test_the_round_trip_covers_every_template_form() -> None:
    kinds = {s.kind for route in _text_routes() for s in route.pattern.segments}
    assert kinds == set(Kind)
    assert any(route.pattern.verb for route in _text_routes())
    assert any(len(b.fields) > 1 for route in _text_routes() for b in route.path_bindings)


@pytest.mark.parametrize(
    ("path", "value"), [("/v1/users/%C3%A9t%C3%A9", "été"), ("/v1/users/%2F..%2F", "/../")]
)
def test_a_decoded_value_reaches_the_field(path: str, value: str) -> None:
    assert routed("GET", path) == (route_named("GetUser"), user_pb2.GetUserRequest(id=value))


def route_named(name: str) -> Route:
    return next(route for route in router().routes if route.method.name == name)
