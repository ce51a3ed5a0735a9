"""The route table read from the descriptors, and matching requests against it."""

from __future__ import annotations

import pytest
from google.api import http_pb2

from gateway.errors import RequestError
from gateway.routes import NoRoute, Route, RouteError, Router, route_for, routes_of
from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from tests.gateway import sample

USER = user_pb2.DESCRIPTOR.services_by_name["UserService"]
ORDER = order_pb2.DESCRIPTOR.services_by_name["OrderService"]


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(routes_of([USER, ORDER]))


@pytest.fixture(scope="module")
def samples() -> Router:
    return Router(routes_of([sample.SERVICE]))


def test_every_rule_of_both_services_is_routed(router: Router) -> None:
    table = {(r.http_method, r.pattern.template): r.full_method for r in router.routes}
    assert table == {
        ("POST", "/v1/users"): "/shop.user.v1.UserService/CreateUser",
        ("GET", "/v1/users/{id}"): "/shop.user.v1.UserService/GetUser",
        ("GET", "/v1/users"): "/shop.user.v1.UserService/ListUsers",
        ("PATCH", "/v1/users/{user.id}"): "/shop.user.v1.UserService/UpdateUser",
        ("DELETE", "/v1/users/{id}"): "/shop.user.v1.UserService/DeleteUser",
        ("GET", "/v1/users:watch"): "/shop.user.v1.UserService/WatchUsers",
        ("POST", "/v1/orders"): "/shop.order.v1.OrderService/CreateOrder",
        ("GET", "/v1/orders/{id}"): "/shop.order.v1.OrderService/GetOrder",
        ("GET", "/v1/orders"): "/shop.order.v1.OrderService/ListOrders",
        ("POST", "/v1/orders/{id}:cancel"): "/shop.order.v1.OrderService/CancelOrder",
        ("GET", "/v1/orders:watch"): "/shop.order.v1.OrderService/WatchOrders",
    }


def test_every_rpc_of_both_services_has_a_route(router: Router) -> None:
    rpcs = {f"/{s.full_name}/{m.name}" for s in (USER, ORDER) for m in s.methods}
    assert {r.full_method for r in router.routes} == rpcs


def test_routes_carry_message_classes_and_streaming(router: Router) -> None:
    watch, _ = router.match("GET", "/v1/users:watch")
    assert watch.server_streaming
    assert watch.request_class is user_pb2.WatchUsersRequest
    get, _ = router.match("GET", "/v1/users/x")
    assert not get.server_streaming
    assert get.response_class is user_pb2.GetUserResponse


def matched(router: Router, method: str, path: str) -> tuple[str, list[str]]:
    route, captures = router.match(method, path)
    return route.method.name, captures


@pytest.mark.parametrize(
    ("method", "path", "rpc", "captures"),
    [
        ("GET", "/v1/users/abc", "GetUser", ["abc"]),
        ("DELETE", "/v1/users/abc", "DeleteUser", ["abc"]),
        ("PATCH", "/v1/users/abc", "UpdateUser", ["abc"]),
        ("GET", "/v1/users", "ListUsers", []),
        ("POST", "/v1/users", "CreateUser", []),
        ("GET", "/v1/users:watch", "WatchUsers", []),
        ("POST", "/v1/orders/o1:cancel", "CancelOrder", ["o1"]),
        ("GET", "/v1/orders:watch", "WatchOrders", []),
        # A colon that is not a declared verb belongs to the value.
        ("GET", "/v1/users/a:b", "GetUser", ["a:b"]),
        ("GET", "/v1/users/x:watch", "GetUser", ["x:watch"]),
        # Path segments are percent-decoded, an encoded slash included.
        ("GET", "/v1/users/a%2Fb%20c", "GetUser", ["a/b c"]),
    ],
)
def test_match(router: Router, method: str, path: str, rpc: str, captures: list[str]) -> None:
    assert matched(router, method, path) == (rpc, captures)


@pytest.mark.parametrize("path", ["/", "/v1", "/v1/users/a/b", "/v2/users", "/v1/users/"])
def test_unknown_path_has_no_route(router: Router, path: str) -> None:
    with pytest.raises(NoRoute) as raised:
        router.match("GET", path)
    assert raised.value.allowed == frozenset()


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        # A unary GET also takes HEAD; a stream (below) does not.
        ("PUT", "/v1/users", {"GET", "HEAD", "POST"}),
        ("POST", "/v1/users/abc", {"GET", "HEAD", "PATCH", "DELETE"}),
        ("POST", "/v1/users:watch", {"GET"}),
        # The verb's rule owns the path: no fallback to GET /v1/orders/{id}.
        ("GET", "/v1/orders/o1:cancel", {"POST"}),
    ],
)
def test_known_path_with_another_method_lists_the_allowed(
    router: Router, method: str, path: str, allowed: set[str]
) -> None:
    with pytest.raises(NoRoute) as raised:
        router.match(method, path)
    assert raised.value.allowed == allowed


@pytest.mark.parametrize(
    ("path", "rpc", "captures"),
    [
        ("/v1/things/special", "Literal", []),
        ("/v1/things/other", "Single", ["other"]),
        ("/v1/things/a/b", "Deep", ["things/a/b"]),
        ("/v1/elsewhere", "Deep", ["elsewhere"]),
        ("/v2/shelves/s1/books/42", "Named", ["shelves/s1", "42"]),
        ("/v3/a/x", "Extra", ["x"]),
        ("/v3/b/y", "Extra", ["y"]),
    ],
)
def test_more_specific_wins_whatever_the_order_of_rules(
    samples: Router, path: str, rpc: str, captures: list[str]
) -> None:
    assert matched(samples, "GET", path) == (rpc, captures)
    reversed_router = Router(reversed(samples.routes))
    assert matched(reversed_router, "GET", path) == (rpc, captures)


def test_a_less_specific_rule_serves_a_method_the_more_specific_lacks(samples: Router) -> None:
    # PUT exists only on /v1/things/{text}: the literal GET /v1/things/special does not hide it.
    assert matched(samples, "PUT", "/v1/things/special") == ("Put", ["special"])


def test_custom_method_kind(samples: Router) -> None:
    assert matched(samples, "HEAD", "/v1/things/x") == ("Custom", ["x"])


def test_additional_bindings_bind_their_own_fields(samples: Router) -> None:
    route, captures = samples.match("GET", "/v3/b/y")
    message = route.request_class()
    route.bind_path(message, captures)
    assert message == sample.Sample(inner={"inner_name": "y"})


def test_path_variables_are_converted_to_the_field_type(samples: Router) -> None:
    route, captures = samples.match("GET", "/v2/shelves/s1/books/42")
    message = route.request_class()
    route.bind_path(message, captures)
    assert message == sample.Sample(text="shelves/s1", i64=42)


def test_a_bad_path_value_names_the_variable(samples: Router) -> None:
    route, captures = samples.match("GET", "/v2/shelves/s1/books/forty")
    with pytest.raises(RequestError) as raised:
        route.bind_path(route.request_class(), captures)
    assert raised.value.field == "i64"


def test_a_path_that_is_not_utf8_is_refused(router: Router) -> None:
    with pytest.raises(UnicodeDecodeError):
        router.match("GET", "/v1/users/%ff")


def rule(**fields: str) -> http_pb2.HttpRule:
    return http_pb2.HttpRule(**fields)


GET_USER = USER.methods_by_name["GetUser"]


def test_ambiguous_rules_are_refused() -> None:
    first = route_for(GET_USER, rule(get="/v1/x/{id}"))
    second = route_for(USER.methods_by_name["DeleteUser"], rule(get="/v1/x/{etag}"))
    with pytest.raises(RouteError) as refused:
        Router([first, second])
    message = str(refused.value)
    assert "ambiguous" in message
    assert "GET /v1/x/{id} → shop.user.v1.UserService/GetUser" in message
    assert "GET /v1/x/{etag} → shop.user.v1.UserService/DeleteUser" in message


@pytest.mark.parametrize(
    "bad",
    [
        rule(get="/v1/x/{nope}"),
        rule(get="/v1/x/{id.deeper}"),
        rule(get="/v1/x/{id}", body="nope"),
        rule(get="/v1/x/{id}", response_body="nope"),
        rule(get="v1/x"),
        rule(body="*"),
    ],
)
def test_invalid_rules_are_refused(bad: http_pb2.HttpRule) -> None:
    with pytest.raises(RouteError):
        route_for(GET_USER, bad)


def test_a_path_variable_must_be_a_scalar() -> None:
    update = USER.methods_by_name["UpdateUser"]
    with pytest.raises(RouteError, match="singular scalar"):
        route_for(update, rule(patch="/v1/x/{user}"))


def test_route_describes_itself(router: Router) -> None:
    route: Route = router.match("GET", "/v1/users/x")[0]
    assert str(route) == "GET /v1/users/{id} → shop.user.v1.UserService/GetUser"
