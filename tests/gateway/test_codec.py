"""Proto3 JSON in and out, with `body` and `response_body` applied."""

from __future__ import annotations

import orjson
import pytest

from gateway.codec import BodyDecoder, ResponseEncoder, to_dict
from gateway.errors import RequestError
from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from tests.gateway.sample import SAMPLE, Sample

CREATE_ORDER = order_pb2.CreateOrderRequest.DESCRIPTOR


def decode(body: bytes, selector: str = "order", *, strict: bool = False) -> object:
    message = order_pb2.CreateOrderRequest()
    BodyDecoder(CREATE_ORDER, selector, ignore_unknown_fields=not strict).decode(body, message)
    return message


def test_decode_returns_the_json_it_merged() -> None:
    decoder = BodyDecoder(CREATE_ORDER, "order", ignore_unknown_fields=True)
    message = order_pb2.CreateOrderRequest()
    assert decoder.decode(b'{"userId": "u", "colour": 1}', message) == {"userId": "u", "colour": 1}
    assert decoder.decode(b" ", message) is None


def test_body_field_takes_the_whole_json_object() -> None:
    assert decode(b'{"userId": "u", "items": [{"sku": "A", "quantity": 2}]}') == (
        order_pb2.CreateOrderRequest(
            order=order_pb2.Order(user_id="u", items=[order_pb2.LineItem(sku="A", quantity=2)])
        )
    )


def test_star_body_is_the_whole_request() -> None:
    assert decode(b'{"order": {"user_id": "u"}, "requestId": "r"}', "*") == (
        order_pb2.CreateOrderRequest(order=order_pb2.Order(user_id="u"), request_id="r")
    )


def test_a_scalar_body_field_takes_the_json_value() -> None:
    assert decode(b'"r-1"', "request_id") == order_pb2.CreateOrderRequest(request_id="r-1")


def test_empty_body_is_an_empty_but_present_message() -> None:
    message = decode(b"  ")
    assert isinstance(message, order_pb2.CreateOrderRequest)
    assert message.HasField("order")


def test_unknown_fields_are_ignored_unless_strict() -> None:
    assert decode(b'{"userId": "u", "colour": 1}') == order_pb2.CreateOrderRequest(
        order=order_pb2.Order(user_id="u")
    )
    with pytest.raises(RequestError) as raised:
        decode(b'{"userId": "u", "colour": 1}', strict=True)
    assert raised.value.field == "colour"


@pytest.mark.parametrize(
    ("body", "reason", "field"),
    [
        (b'{"userId": ', "INVALID_JSON", ""),
        (b"not json", "INVALID_JSON", ""),
        (b"[1, 2]", "INVALID_JSON", ""),
        (b'"text"', "INVALID_JSON", ""),
        (b'{"userId": 5}', "INVALID_FIELD", "userId"),
        (b'{"user_id": []}', "INVALID_FIELD", "user_id"),
        (b'{"items": {"sku": "A"}}', "INVALID_FIELD", "items"),
        (b'{"items": [{"sku": "A"}, {"quantity": "many"}]}', "INVALID_FIELD", "items[1].quantity"),
        (b'{"items": [{"quantity": 1.5}]}', "INVALID_FIELD", "items[0].quantity"),
        (
            b'{"items": [{"unitPrice": {"units": "x"}}]}',
            "INVALID_FIELD",
            "items[0].unitPrice.units",
        ),
        (b'{"items": [null]}', "INVALID_FIELD", "items[0]"),
        (b'{"createTime": "yesterday"}', "INVALID_FIELD", "createTime"),
        (b'{"total": 5}', "INVALID_FIELD", "total"),
    ],
)
def test_bad_bodies_name_the_field_as_sent(body: bytes, reason: str, field: str) -> None:
    with pytest.raises(RequestError) as raised:
        decode(body)
    assert (raised.value.reason, raised.value.field) == (reason, field)
    assert raised.value.description
    assert not raised.value.description.startswith(f"Failed to parse {field} field")


def test_the_description_says_what_was_expected_and_what_came() -> None:
    with pytest.raises(RequestError) as raised:
        decode(b'{"items": [{"quantity": "many"}]}')
    assert raised.value.description == 'expected an integer, got "many"'


def test_a_scalar_body_names_the_field_in_errors() -> None:
    with pytest.raises(RequestError) as raised:
        decode(b"5", "request_id")
    assert (raised.value.field, raised.value.description) == (
        "requestId",
        "expected a string, got 5",
    )


def test_strict_decoding_names_an_unknown_nested_field() -> None:
    with pytest.raises(RequestError) as raised:
        decode(b'{"items": [{"sku": "A", "colour": 1}]}', strict=True)
    assert (raised.value.reason, raised.value.field) == ("INVALID_FIELD", "items[0].colour")
    assert raised.value.description == "no such field in shop.order.v1.LineItem"


def test_field_paths_are_the_proto_paths_of_the_keys_sent() -> None:
    decoder = BodyDecoder(user_pb2.UpdateUserRequest.DESCRIPTOR, "user", ignore_unknown_fields=True)
    sent = decoder.decode(
        b'{"displayName": "x", "create_time": "2024-01-31T09:30:00Z", "n": 1}',
        user_pb2.UpdateUserRequest(),
    )
    assert decoder.field_paths(sent) == ["display_name", "create_time"]


def test_field_paths_of_a_star_body_start_at_the_request() -> None:
    decoder = BodyDecoder(CREATE_ORDER, "*", ignore_unknown_fields=True)
    sent = decoder.decode(
        b'{"order": {"userId": "u", "items": []}, "requestId": "r"}', order_pb2.CreateOrderRequest()
    )
    assert decoder.field_paths(sent) == ["order.user_id", "order.items", "request_id"]


def test_field_paths_of_a_scalar_body_are_none() -> None:
    decoder = BodyDecoder(CREATE_ORDER, "request_id", ignore_unknown_fields=True)
    assert decoder.field_paths(decoder.decode(b'"r"', order_pb2.CreateOrderRequest())) == []


def test_unknown_enum_names_are_ignored_unless_strict() -> None:
    # As proto3 JSON parsers do when they ignore unknown fields (protojson's DiscardUnknown).
    assert decode(b'{"state": "OPEN"}') == order_pb2.CreateOrderRequest(order=order_pb2.Order())
    with pytest.raises(RequestError) as raised:
        decode(b'{"state": "OPEN"}', strict=True)
    assert raised.value.field == "state"


def test_output_is_camel_case_with_int64_as_strings_and_unpopulated_fields() -> None:
    message = Sample(i64=2**60, display_name="Lin", tags=["a"])
    assert orjson.loads(ResponseEncoder(SAMPLE).encode(message)) == {
        "text": "",
        "i32": 0,
        "i64": str(2**60),
        "u32": 0,
        "u64": "0",
        "flag": False,
        "ratio": 0.0,
        "value": 0.0,
        "blob": "",
        "color": "COLOR_UNSPECIFIED",
        "tags": ["a"],
        "numbers": [],
        "displayName": "Lin",
        "labels": {},
        "s32": 0,
    }


def test_output_can_use_proto_names() -> None:
    response = user_pb2.GetUserResponse(user=user_pb2.User(id="u", display_name="D"))
    encoder = ResponseEncoder(user_pb2.GetUserResponse.DESCRIPTOR, "user", proto_names=True)
    assert orjson.loads(encoder.encode(response)) == {
        "id": "u",
        "email": "",
        "display_name": "D",
        "etag": "",
        "subject": "",
    }


def test_a_scalar_response_body_is_the_bare_value() -> None:
    response = user_pb2.ListUsersResponse(revision=7)
    encoder = ResponseEncoder(user_pb2.ListUsersResponse.DESCRIPTOR, "revision")
    assert encoder.encode(response) == b'"7"'


def test_an_unset_message_response_body_prints_its_defaults() -> None:
    encoder = ResponseEncoder(user_pb2.GetUserResponse.DESCRIPTOR, "user")
    assert encoder.to_dict(user_pb2.GetUserResponse()) == {
        "id": "",
        "email": "",
        "displayName": "",
        "etag": "",
        "subject": "",
    }


def test_module_to_dict_prints_like_the_encoder() -> None:
    message = Sample(i64=5)
    assert to_dict(message) == ResponseEncoder(SAMPLE).to_dict(message)


def test_response_body_returns_the_field_alone() -> None:
    response = user_pb2.CreateUserResponse(user=user_pb2.User(id="u", display_name="D"))
    encoder = ResponseEncoder(user_pb2.CreateUserResponse.DESCRIPTOR, "user")
    assert orjson.loads(encoder.encode(response)) == {
        "id": "u",
        "email": "",
        "displayName": "D",
        "etag": "",
        "subject": "",
    }


def test_response_body_of_a_repeated_field_is_the_json_array() -> None:
    response = user_pb2.ListUsersResponse(users=[user_pb2.User(id="a")])
    encoder = ResponseEncoder(user_pb2.ListUsersResponse.DESCRIPTOR, "users")
    assert [u["id"] for u in orjson.loads(encoder.encode(response))] == ["a"]


def test_unknown_selectors_are_refused() -> None:
    with pytest.raises(ValueError, match="no such field"):
        ResponseEncoder(user_pb2.ListUsersResponse.DESCRIPTOR, "nope")
    with pytest.raises(ValueError, match="no such field"):
        BodyDecoder(CREATE_ORDER, "nope", ignore_unknown_fields=True)
