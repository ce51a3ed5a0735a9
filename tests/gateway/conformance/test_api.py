"""The conformance API itself: compiled from its .proto at test time into the default pool,
and every rule and additional binding of it routed by some test."""

from __future__ import annotations

from google.api import annotations_pb2
from google.protobuf import descriptor_pool

from gateway.routes import Router, routes_of
from tests.gateway.conformance.protos import FILE, Conformance
from tests.gateway.conformance.test_routing import ROUTES

ELSEWHERE = {"Typed", "Watch", "Unwrap", "MethodName"}
"""RPCs routed by test_values.py and test_bodies.py rather than by `ROUTES`."""


def test_the_proto_is_in_the_default_pool_without_generated_code(api: Conformance) -> None:
    file = descriptor_pool.Default().FindFileByName(FILE)
    assert file.services_by_name["ConformanceService"] is api.service
    assert "google/api/annotations.proto" in [d.name for d in file.dependencies]


def test_every_rule_and_additional_binding_is_routed_by_a_test(api: Conformance) -> None:
    rules = sum(
        1 + len(method.GetOptions().Extensions[annotations_pb2.http].additional_bindings)
        for method in api.service.methods
    )
    router = Router(routes_of([api.service]))
    assert len(router.routes) == rules
    routed = {id(router.match(method, path)[0]) for method, path, _, _ in ROUTES}
    untested = [
        str(route)
        for route in router.routes
        if id(route) not in routed and route.method.name not in ELSEWHERE
    ]
    assert untested == []
