"""The OpenAPI 3.1 document, built from the live routing table: valid, one operation per
route and no other, parameters as the gateway reads them, bodies without what the path
binds, schemas that the gateway's own JSON satisfies."""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from google.api import http_pb2
from google.protobuf import descriptor_pb2, duration_pb2, field_mask_pb2, timestamp_pb2
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from schemathesis.core.result import Ok

from gateway import RunningGateway, pattern
from gateway.codec import to_dict
from gateway.errors import RequestError, status_dict
from gateway.openapi import comments_of, document, openapi_path, openapi_paths, page, shape_of
from gateway.routes import Route, Router, route_for, routes_of
from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from tests.gateway import sample
from tests.gateway.conformance.protos import load

USER = user_pb2.DESCRIPTOR.services_by_name["UserService"]
ORDER = order_pb2.DESCRIPTOR.services_by_name["OrderService"]
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def shop() -> Router:
    return Router(routes_of([USER, ORDER]))


@pytest.fixture(scope="module")
def samples() -> Router:
    return Router(routes_of([sample.SERVICE]))


@pytest.fixture(scope="module")
def shop_doc(shop: Router) -> Doc:
    return document(shop.routes)


@pytest.fixture(scope="module")
def sample_doc(samples: Router) -> Doc:
    return document(samples.routes)


def operations(doc: Doc) -> dict[tuple[str, str], Doc]:
    return {(verb, path): op for path, item in doc["paths"].items() for verb, op in item.items()}


def parameters(doc: Doc, op: Doc) -> list[Doc]:
    """The operation's parameters, `$ref`s to components resolved."""
    found = []
    for parameter in op["parameters"]:
        ref = parameter.get("$ref")
        found.append(doc["components"]["parameters"][ref.rsplit("/", 1)[1]] if ref else parameter)
    return found


def names(doc: Doc, op: Doc, where: str) -> list[str]:
    return [p["name"] for p in parameters(doc, op) if p["in"] == where]


def validator(doc: Doc, schema: Doc) -> OAS31Validator:
    """Validates against `schema`, its `$ref`s resolved within the document."""
    root = {**schema, "components": doc["components"]}
    return OAS31Validator(root, format_checker=OAS31Validator.FORMAT_CHECKER)


def ref(name: str) -> Doc:
    return {"$ref": f"#/components/schemas/{name}"}


@pytest.mark.parametrize("proto_names", [False, True])
def test_documents_are_valid_openapi_3_1(shop: Router, samples: Router, proto_names: bool) -> None:
    for router in (shop, samples):
        doc = document(router.routes, proto_names=proto_names)
        assert doc["openapi"] == "3.1.0"
        validate(doc)


def test_the_document_has_exactly_one_operation_per_route(samples: Router, sample_doc: Doc) -> None:
    assert set(operations(sample_doc)) == {
        ("get", "/v1/things/special"),
        ("get", "/v1/things/{text}"),
        ("put", "/v1/things/{text}"),
        ("head", "/v1/things/{text}"),
        ("get", "/v1/{text}"),
        ("get", "/v2/{text}/books/{i64}"),
        ("post", "/v1/things/{text}:run"),
        ("get", "/v3/a/{text}"),
        ("get", "/v3/b/{inner_name}"),
    }
    assert len(operations(sample_doc)) == len(samples.routes)
    expected = {
        (r.http_method.lower(), openapi_path(r.pattern)[0]): r.method.name for r in samples.routes
    }
    found = {key: op["operationId"] for key, op in operations(sample_doc).items()}
    assert found == {key: f"SampleService_{name}" for key, name in expected.items()} | {
        ("get", "/v3/b/{inner_name}"): "SampleService_Extra_1"
    }


def test_every_rpc_of_the_shop_is_documented_under_its_service(shop_doc: Doc) -> None:
    ids = {op["operationId"]: op["tags"] for op in operations(shop_doc).values()}
    assert ids == {
        **{f"UserService_{m.name}": ["UserService"] for m in USER.methods},
        **{f"OrderService_{m.name}": ["OrderService"] for m in ORDER.methods},
    }
    assert [tag["name"] for tag in shop_doc["tags"]] == ["UserService", "OrderService"]
    assert shop_doc["info"]["title"] == "shop"
    assert shop_doc["info"]["version"] == "v1"


def test_templates_become_openapi_paths(shop_doc: Doc) -> None:
    assert set(shop_doc["paths"]) == {
        "/v1/users",
        "/v1/users/{id}",
        "/v1/users:watch",
        "/v1/orders",
        "/v1/orders/{id}",
        "/v1/orders/{id}:cancel",
        "/v1/orders:watch",
    }


def every_document(shop: Router, samples: Router) -> list[Doc]:
    """The shop's, the sample's and the conformance API's (every template form)."""
    conformance = routes_of([load().service])
    return [
        document(routes, proto_names=proto_names)
        for routes in (shop.routes, samples.routes, conformance)
        for proto_names in (False, True)
    ]


def test_of_two_routes_one_path_and_method_the_router_tries_first_is_documented(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`/v1/items/{path=**}` and `/v1/items/{id}` are both `GET /v1/items/{}` to OpenAPI."""
    routes = routes_of([load().service])
    doc = document(routes)
    op = operations(doc)[("get", "/v1/items/{path}")]
    assert op["operationId"] == "ConformanceService_Single"
    assert "Deep has the path and method of another route; left out" in caplog.text


def test_no_two_paths_have_one_shape(shop: Router, samples: Router) -> None:
    """OpenAPI 3.1: "Templated paths with the same hierarchy but different templated names
    MUST NOT exist as they are identical" (openapi-spec-validator 0.9 does not check it)."""
    for doc in every_document(shop, samples):
        shapes = [shape_of(path) for path in doc["paths"]]
        assert len(set(shapes)) == len(shapes), sorted(shapes)
        for path, item in doc["paths"].items():
            in_path = re.findall(r"\{([^}]*)\}", path)
            assert len(set(in_path)) == len(in_path), path
            for op in item.values():
                assert names(doc, op, "path") == in_path
                assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) for name in in_path)


def test_schemathesis_loads_every_operation(shop: Router, samples: Router) -> None:
    """A real OpenAPI tool: Schemathesis refused the PATCH of `/v1/users/{user.id}` beside
    `/v1/users/{id}` ("Ensure that the definition complies with the OpenAPI specification")."""
    for doc in every_document(shop, samples):
        loaded = list(schemathesis.openapi.from_dict(doc).get_all_operations())
        assert len(loaded) == len(operations(doc))
        for result in loaded:
            assert isinstance(result, Ok), result.err()
            op = result.ok()
            filled = {parameter.name: "x" for parameter in op.path_parameters}
            assert "{" not in op.Case(path_parameters=filled).formatted_path


def test_routes_of_one_shape_share_one_path_and_its_names(shop: Router) -> None:
    located = openapi_paths(shop.routes)
    by_method = {route.method.name: located[route] for route in shop.routes}
    assert by_method["UpdateUser"][0] == by_method["GetUser"][0] == "/v1/users/{id}"
    (wildcard,) = by_method["UpdateUser"][1]
    assert wildcard.name == "id"
    assert wildcard.variable is not None
    assert wildcard.variable.name == "user.id"
    # The router still binds the request's `user.id` from that segment.
    route, captures = shop.match("PATCH", "/v1/users/u1")
    assert [b.path for b in route.path_bindings] == ["user.id"]
    assert captures == ["u1"]


def test_a_renamed_parameter_says_which_field_it_sets(shop_doc: Doc) -> None:
    parameter = parameters(shop_doc, operations(shop_doc)[("patch", "/v1/users/{id}")])[0]
    assert parameter["description"].startswith("Sets the request's `user.id`.")
    plain = parameters(shop_doc, operations(shop_doc)[("get", "/v1/users/{id}")])[0]
    assert "Sets the request" not in plain.get("description", "")


def test_the_first_route_of_a_shape_names_its_parameters() -> None:
    get = route_for(sample.SERVICE.methods_by_name["Single"], http_pb2.HttpRule(get="/v9/{text}"))
    put = route_for(
        sample.SERVICE.methods_by_name["Put"], http_pb2.HttpRule(put="/v9/{display_name}")
    )
    located = openapi_paths([get, put])
    assert located[get][0] == located[put][0] == "/v9/{text}"
    assert located[put][1][0].variable == put.pattern.variables[0]


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("/v1/{user.id}", "/v1/{id}"),
        ("/v1/{parent.id}/x/{id}", "/v1/{parent_id}/x/{id}"),
        ("/v1/{a.b.c}/{d.c}", "/v1/{a_b_c}/{d_c}"),
        ("/v1/{a.b}/{c.b}/{a_b}", "/v1/{a_b}/{c_b}/{a_b2}"),
        ("/v1/{name=shelves/*}/books/{book.name}", "/v1/{name}/books/{book_name}"),
    ],
)
def test_a_parameter_is_named_by_the_last_part_of_its_field_path(template: str, path: str) -> None:
    assert openapi_path(pattern.parse(template))[0] == path


def test_bare_wildcards_become_parameters_no_field_takes() -> None:
    path, wildcards = openapi_path(pattern.parse("/v1/*/x/{name=a/*}/**:go"))
    assert path == "/v1/{_wildcard1}/x/{name}/{_wildcard2}:go"
    assert [(w.name, w.pattern) for w in wildcards] == [
        ("_wildcard1", "^[^/]+$"),
        ("name", "^a/[^/]+$"),
        ("_wildcard2", "^.*$"),
    ]


@pytest.mark.parametrize(
    ("method", "path", "key"),
    [
        ("GET", "/v2/shelves/s1/books/7", ("get", "/v2/{text}/books/{i64}")),
        ("GET", "/v1/a/b/c", ("get", "/v1/{text}")),
        ("GET", "/v1/things/x", ("get", "/v1/things/{text}")),
        ("GET", "/v3/b/n", ("get", "/v3/b/{inner_name}")),
    ],
)
def test_path_parameters_describe_what_the_router_captures(
    samples: Router, sample_doc: Doc, method: str, path: str, key: tuple[str, str]
) -> None:
    route, captures = samples.match(method, path)
    op = operations(sample_doc)[key]
    documented = [p for p in parameters(sample_doc, op) if p["in"] == "path"]
    assert [p["name"] for p in documented] == [v.field_path[-1] for v in route.pattern.variables]
    for parameter, captured in zip(documented, captures, strict=True):
        assert parameter["required"] is True
        schema = parameter["schema"]
        validator(sample_doc, schema).validate(captured)
        if "pattern" in schema:
            assert re.search(schema["pattern"], captured)


def test_a_multi_segment_variable_has_the_pattern_of_its_segments(sample_doc: Doc) -> None:
    op = operations(sample_doc)[("get", "/v2/{text}/books/{i64}")]
    text, i64 = (p for p in parameters(sample_doc, op) if p["in"] == "path")
    assert text["schema"] == {"type": "string", "pattern": "^shelves/[^/]+$"}
    assert not re.search(text["schema"]["pattern"], "books/1")
    assert i64["schema"]["type"] == "string"
    assert i64["schema"]["pattern"] == "^-?[0-9]+$"
    deep = operations(sample_doc)[("get", "/v1/{text}")]
    assert names(sample_doc, deep, "path") == ["text"]
    assert parameters(sample_doc, deep)[0]["schema"]["pattern"] == "^.*$"


def route_of(router: Router, name: str) -> Route:
    return next(route for route in router.routes if route.method.name == name)


def test_query_parameters_are_the_fields_the_query_parser_takes(
    samples: Router, sample_doc: Doc
) -> None:
    route = route_of(samples, "Single")
    assert route.query is not None
    op = operations(sample_doc)[("get", "/v1/things/{text}")]
    documented = names(sample_doc, op, "query")
    for name in documented:
        assert route.query.lookup(name) is not None, name
    taken = {
        ".".join(f.json_name for f in binding.fields)
        for binding in route.query.bindings()
        if not binding.path.startswith("child.")  # a recursive message: documented once
    }
    assert set(documented) == taken
    assert documented[:3] == ["i32", "i64", "u32"]  # in field order
    assert "text" not in documented  # bound by the path
    assert "inner.innerName" in documented


def test_query_parameters_have_the_types_the_gateway_parses(sample_doc: Doc) -> None:
    op = operations(sample_doc)[("get", "/v1/things/special")]
    by_name = {p["name"]: p for p in parameters(sample_doc, op) if p["in"] == "query"}
    schema = {name: p["schema"] for name, p in by_name.items()}
    assert schema["i32"]["type"] == "integer"
    assert schema["i64"] == {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"}
    assert schema["u64"]["pattern"] == "^[0-9]+$"
    assert schema["flag"] == {"type": "boolean"}
    assert schema["ratio"]["type"] == "number"
    assert schema["blob"] == {"type": "string", "contentEncoding": "base64"}
    assert schema["color"] == {"type": "string", "enum": ["COLOR_UNSPECIFIED", "RED", "GREEN"]}
    assert schema["when"] == {"type": "string", "format": "date-time"}
    assert schema["wait"]["pattern"] == r"^-?[0-9]+(\.[0-9]{1,9})?s$"
    assert schema["mask"]["type"] == "string"
    assert schema["maybe"]["type"] == "integer"  # an Int32Value is its scalar
    assert schema["tags"] == {"type": "array", "items": {"type": "string"}}
    assert (by_name["tags"]["style"], by_name["tags"]["explode"]) == ("form", True)
    assert "labels" not in schema  # maps are not taken from the query (yet)


def test_a_whole_message_body_leaves_out_what_the_path_binds(sample_doc: Doc) -> None:
    op = operations(sample_doc)[("post", "/v1/things/{text}:run")]
    assert names(sample_doc, op, "query") == []
    body = op["requestBody"]["content"]["application/json"]["schema"]
    whole = sample_doc["components"]["schemas"]["gateway.test.v1.Sample"]
    assert set(body["properties"]) == set(whole["properties"]) - {"text"}


def test_a_field_body_is_the_schema_of_the_field(sample_doc: Doc) -> None:
    op = operations(sample_doc)[("put", "/v1/things/{text}")]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert body == ref("gateway.test.v1.Sample.Inner")
    assert "inner.innerName" not in names(sample_doc, op, "query")


def test_a_patch_body_leaves_out_the_path_and_requires_nothing(shop_doc: Doc) -> None:
    op = operations(shop_doc)[("patch", "/v1/users/{id}")]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {
        "email",
        "displayName",
        "createTime",
        "updateTime",
        "etag",
        "subject",
    }
    assert "required" not in body
    assert names(shop_doc, op, "path") == ["id"]
    assert names(shop_doc, op, "query") == ["updateMask"]


def test_field_behavior_gives_required_and_read_only(shop_doc: Doc) -> None:
    schemas = shop_doc["components"]["schemas"]
    user = schemas["shop.user.v1.User"]
    assert user["required"] == ["email"]
    assert user["properties"]["id"]["readOnly"] is True  # IDENTIFIER
    assert user["properties"]["createTime"] == {
        "type": "string",
        "format": "date-time",
        "readOnly": True,
    }
    order = schemas["shop.order.v1.Order"]
    assert order["required"] == ["userId", "items"]
    assert order["properties"]["total"] == {
        "$ref": "#/components/schemas/google.type.Money",
        "readOnly": True,
    }
    assert schemas["shop.order.v1.LineItem"]["required"] == ["sku", "quantity", "unitPrice"]


def test_messages_follow_the_proto3_json_mapping(sample_doc: Doc) -> None:
    properties = sample_doc["components"]["schemas"]["gateway.test.v1.Sample"]["properties"]
    assert properties["i64"]["type"] == "string"
    assert properties["u32"]["minimum"] == 0
    assert properties["numbers"]["items"]["pattern"] == "^-?[0-9]+$"
    assert properties["labels"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert properties["child"] == ref("gateway.test.v1.Sample")  # recursive
    assert properties["inner"] == ref("gateway.test.v1.Sample.Inner")
    assert "displayName" in properties


def test_the_gateways_json_satisfies_the_schemas(sample_doc: Doc) -> None:
    message = sample.Sample(
        text="t",
        i32=-3,
        i64=-(2**62),
        u32=7,
        u64=2**63,
        flag=True,
        ratio=0.5,
        value=1e300,
        blob=b"\x00\xff",
        color=2,
        tags=["a", "b"],
        numbers=[1, -2],
        display_name="Ada",
        s32=-1,
        when=timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=5),
        wait=duration_pb2.Duration(seconds=1, nanos=500_000_000),
        mask=field_mask_pb2.FieldMask(paths=["display_name", "inner.count"]),
    )
    message.inner.inner_name = "in"  # type: ignore[attr-defined]
    message.maybe.value = 4  # type: ignore[attr-defined]
    message.child.text = "c"  # type: ignore[attr-defined]
    message.labels["k"] = "v"  # type: ignore[attr-defined]
    schema = ref("gateway.test.v1.Sample")
    validator(sample_doc, schema).validate(orjson.loads(orjson.dumps(to_dict(message))))
    validator(sample_doc, schema).validate(to_dict(sample.Sample()))
    error = status_dict(RequestError("INVALID_QUERY_PARAMETER", "i32", "not an integer").status)
    validator(sample_doc, ref("google.rpc.Status")).validate(error)


def test_proto_names_name_fields_and_query_parameters(samples: Router) -> None:
    doc = document(samples.routes, proto_names=True)
    properties = doc["components"]["schemas"]["gateway.test.v1.Sample"]["properties"]
    assert "display_name" in properties
    assert "displayName" not in properties
    op = operations(doc)[("get", "/v1/things/{text}")]
    assert {"display_name", "inner.inner_name"} <= set(names(doc, op, "query"))


def test_success_statuses_and_their_bodies(shop_doc: Doc) -> None:
    ops = operations(shop_doc)
    created = ops[("post", "/v1/users")]["responses"]
    user = ref("shop.user.v1.User")
    assert created["201"]["content"]["application/json"]["schema"] == user
    assert set(created["201"]["headers"]) == {"ETag", "Location"}
    deleted = ops[("delete", "/v1/users/{id}")]["responses"]
    assert "content" not in deleted["204"]
    listed = ops[("get", "/v1/users")]["responses"]
    schema = listed["200"]["content"]["application/json"]["schema"]
    assert schema == ref("shop.user.v1.ListUsersResponse")
    cancelled = ops[("post", "/v1/orders/{id}:cancel")]["responses"]
    assert cancelled["200"]["content"]["application/json"]["schema"] == ref("shop.order.v1.Order")
    assert "412" in cancelled
    assert "default" not in cancelled


TABLE_STATUSES = {"400", "401", "403", "404", "409", "429", "499", "500", "501", "503", "504"}


@pytest.mark.parametrize(
    ("key", "own"),
    [
        (("post", "/v1/users"), {"412", "413", "415", "431"}),
        (("get", "/v1/users"), {"431"}),
        (("get", "/v1/users/{id}"), {"304", "431"}),
        (("patch", "/v1/users/{id}"), {"412", "413", "415", "431"}),
        (("delete", "/v1/users/{id}"), {"412", "431"}),
        (("post", "/v1/orders/{id}:cancel"), {"412", "413", "415", "431"}),
        (("get", "/v1/orders:watch"), {"406", "431"}),
    ],
)
def test_each_operation_lists_the_error_statuses_it_may_answer(
    shop_doc: Doc, key: tuple[str, str], own: set[str]
) -> None:
    """Every status of the gRPC code table, and the gateway's own where they apply; no
    `default`, so a conformance check finds a status the document does not list."""
    found = operations(shop_doc)[key]["responses"]
    success = {s for s in found if s < "300"}
    assert len(success) == 1
    assert set(found) - success == TABLE_STATUSES | own


def test_error_responses_carry_a_status(shop_doc: Doc) -> None:
    status = ref("google.rpc.Status")
    responses = shop_doc["components"]["responses"]
    for op in operations(shop_doc).values():
        for code, response in op["responses"].items():
            if code >= "400":
                name = f"Error{code}"
                assert response == {"$ref": f"#/components/responses/{name}"}
                assert responses[name]["content"]["application/json"]["schema"] == status
    assert responses["Error504"]["description"] == (
        "Gateway Timeout: a google.rpc.Status with code `DEADLINE_EXCEEDED`."
    )
    assert responses["Error499"]["description"].startswith("Client Closed Request")
    assert "`If-Match` does not hold" in responses["Error412"]["description"]
    properties = shop_doc["components"]["schemas"]["google.rpc.Status"]["properties"]
    assert set(properties) == {"code", "message", "details"}
    any_schema = shop_doc["components"]["schemas"]["google.protobuf.Any"]
    assert properties["details"]["items"] == ref("google.protobuf.Any")
    assert any_schema["required"] == ["@type"]


def test_a_create_links_to_the_operations_on_what_it_created(shop_doc: Doc) -> None:
    ops = operations(shop_doc)
    user_links = ops[("post", "/v1/users")]["responses"]["201"]["links"]
    by_id = {"path.id": "$response.body#/id"}
    conditional = {**by_id, "header.If-Match": "$response.header.ETag"}
    assert {name: link["parameters"] for name, link in user_links.items()} == {
        "UserService_GetUser": by_id,
        "UserService_UpdateUser": conditional,
        "UserService_DeleteUser": conditional,
    }
    assert all(name == link["operationId"] for name, link in user_links.items())
    order_links = ops[("post", "/v1/orders")]["responses"]["201"]["links"]
    assert {name: link["parameters"] for name, link in order_links.items()} == {
        "OrderService_GetOrder": by_id,
        "OrderService_CancelOrder": conditional,
    }
    linked = [op for op in ops.values() if "links" in next(iter(op["responses"].values()))]
    assert len(linked) == 2


def test_a_create_whose_body_is_not_the_resource_links_nowhere() -> None:
    """The conformance API's Create answers an Echo, which has no `id` for `/v1/things/{id}`."""
    doc = document(routes_of([load().service]))
    created = operations(doc)[("post", "/v1/things")]["responses"]["201"]
    assert "links" not in created


def test_streams_have_a_schema_per_content_type(shop_doc: Doc) -> None:
    op = operations(shop_doc)[("get", "/v1/users:watch")]
    content = op["responses"]["200"]["content"]
    assert set(content) == {"application/x-ndjson", "text/event-stream"}
    check = validator(shop_doc, content["application/x-ndjson"]["schema"])
    check.validate({"result": {"events": [], "headerRevision": "3", "progressNotify": True}})
    check.validate({"error": {"code": 14, "message": "shutting down", "details": []}})
    assert not check.is_valid({"result": {}, "error": {}})
    assert content["text/event-stream"]["schema"]["type"] == "string"


def test_a_head_route_has_no_body(sample_doc: Doc) -> None:
    op = operations(sample_doc)[("head", "/v1/things/{text}")]
    assert "content" not in op["responses"]["200"]


def test_headers_are_documented_where_the_gateway_reads_them(shop_doc: Doc) -> None:
    headers = {key: names(shop_doc, op, "header") for key, op in operations(shop_doc).items()}
    assert all(found[0] == "Grpc-Timeout" for found in headers.values())
    assert headers[("post", "/v1/users")][1:] == ["Idempotency-Key"]
    assert headers[("get", "/v1/users/{id}")][1:] == ["If-None-Match"]
    assert headers[("patch", "/v1/users/{id}")][1:] == ["If-Match"]
    assert headers[("delete", "/v1/users/{id}")][1:] == ["If-Match"]
    assert headers[("post", "/v1/orders/{id}:cancel")][1:] == ["If-Match"]
    assert headers[("get", "/v1/users:watch")][1:] == ["Last-Event-ID"]
    assert headers[("get", "/v1/orders:watch")][1:] == ["Last-Event-ID"]
    assert headers[("get", "/v1/users")][1:] == []


def test_a_field_a_documented_header_sets_is_not_also_a_query_parameter(shop_doc: Doc) -> None:
    """`Idempotency-Key` sets `request_id`, `If-Match` sets `etag`: one spelling each in
    the document (the gateway still takes the query key)."""
    ops = operations(shop_doc)
    assert names(shop_doc, ops[("post", "/v1/users")], "query") == ["subject"]
    assert names(shop_doc, ops[("post", "/v1/orders")], "query") == []
    assert names(shop_doc, ops[("delete", "/v1/users/{id}")], "query") == []


def test_comments_are_read_from_source_info() -> None:
    file = descriptor_pb2.FileDescriptorProto(name="c.proto", package="c.v1")
    message = file.message_type.add(name="Thing")
    message.field.add(name="id", number=1)
    message.nested_type.add(name="Part")
    service = file.service.add(name="Things")
    service.method.add(name="Get")
    info = file.source_code_info
    info.location.add(path=[4, 0], leading_comments=" A thing.\n Made of parts.\n")
    info.location.add(path=[4, 0, 2, 0], trailing_comments=" Its id.\n")
    info.location.add(path=[4, 0, 3, 0], leading_comments=" One part.\n")
    info.location.add(path=[6, 0, 2, 0], leading_comments=" Gets a thing.\n")
    info.location.add(path=[6, 0], leading_comments="   \n")
    assert comments_of(file) == {
        "c.v1.Thing": "A thing.\nMade of parts.",
        "c.v1.Thing.id": "Its id.",
        "c.v1.Thing.Part": "One part.",
        "c.v1.Things.Get": "Gets a thing.",
    }


def test_the_docs_page_reads_the_document_and_escapes_its_url() -> None:
    html = page("/openapi.json").decode()
    assert 'url: "/openapi.json"' in html
    # Everything it loads comes from the gateway: nothing from a CDN.
    assert '<script src="/docs/swagger-ui-bundle.js">' in html
    assert '<link rel="stylesheet" href="/docs/swagger-ui.css">' in html
    assert "//" not in html
    hostile = page("/x</script><script>alert(1)</script>").decode()
    assert "</script><script>alert" not in hostile


@pytest.mark.parametrize(
    ("path", "content_type", "start"),
    [
        ("/docs/swagger-ui-bundle.js", "text/javascript; charset=utf-8", b"/*! For license"),
        ("/docs/swagger-ui.css", "text/css; charset=utf-8", b".swagger-ui"),
    ],
)
async def test_the_gateway_serves_the_docs_pages_script_and_style(
    client: httpx.AsyncClient, path: str, content_type: str, start: bytes
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["cache-control"] == "public, max-age=86400"
    assert response.content.startswith(start)
    assert int(response.headers["content-length"]) == len(response.content) > 100_000
    head = await client.head(path)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == response.headers["content-length"]
    refused = await client.post(path)
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD, OPTIONS"


async def test_the_gateway_serves_the_document_of_its_routes(
    gateway: RunningGateway, client: httpx.AsyncClient
) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    served = response.json()
    assert served == orjson.loads(orjson.dumps(document(gateway.app.router.routes)))
    validate(served)
