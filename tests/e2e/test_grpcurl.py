"""grpcurl against the running system, with server reflection as its only source of schema.

No test passes `-proto`, `-protoset` or `-import-path`: everything grpcurl knows about the
services, their messages and the error details it prints, it learned from reflection. The
generated Python descriptors are used only to know what to ask for and what to expect.

Notes on the pinned grpcurl (1.8.6, jhump/protoreflect 1.10.3):
- its own reflection client speaks `grpc.reflection.v1alpha` only, so the v1 service is proved
  by calling `grpc.reflection.v1.ServerReflection/ServerReflectionInfo` through grpcurl;
- it prints a field under its `json_name` when the descriptor has one, else under its proto
  name: the googleapis descriptors (google.type.Money, google.rpc.*) carry none, so Money
  prints `currency_code` and BadRequest `field_violations` (see `value_of`);
- it reads a `google.protobuf.FieldMask` as a message (`{"paths": [...]}`), not as the
  canonical JSON string;
- its exit code for a failed RPC is 64 + the status code.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.rpc import error_details_pb2
from google.type import money_pb2

from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from shop_common.domain import ids
from tests.e2e.conftest import System, grpcurl_binary

pytestmark = pytest.mark.e2e

USER_SERVICE = "shop.user.v1.UserService"
ORDER_SERVICE = "shop.order.v1.OrderService"
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
COMMON_SERVICES = {"grpc.health.v1.Health", REFLECTION_V1, REFLECTION_V1ALPHA}
DEADLINE_EXCEEDED = 4
WATCH_SECONDS = "3"


# --- running grpcurl ---------------------------------------------------------------------


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    for flag in ("-proto", "-protoset", "-import-path"):
        assert flag not in args, "reflection only"
    return subprocess.run(
        [grpcurl_binary(), "-plaintext", *args], capture_output=True, text=True, timeout=30
    )


def responses(stdout: str) -> list[dict[str, Any]]:
    """The JSON responses grpcurl printed one after the other (a stream prints several)."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    position = 0
    while position < len(stdout):
        if stdout[position].isspace():
            position += 1
            continue
        value, position = decoder.raw_decode(stdout, position)
        found.append(value)
    return found


def call(address: str, method: str, body: dict[str, Any], *flags: str) -> dict[str, Any]:
    result = grpcurl(*flags, "-d", json.dumps(body), address, method)
    assert result.returncode == 0, result.stderr
    [response] = responses(result.stdout)
    return response


def refused(address: str, method: str, body: dict[str, Any], *flags: str) -> dict[str, Any]:
    """The `google.rpc.Status` that `-format-error` prints (to stderr) for a failed call."""
    result = grpcurl("-format-error", *flags, "-d", json.dumps(body), address, method)
    status: dict[str, Any] = json.loads(result.stderr)
    assert result.returncode == 64 + status["code"], (result.returncode, result.stderr)
    return status


def watch(address: str, method: str, body: dict[str, Any], *flags: str) -> list[dict[str, Any]]:
    """The responses of a watch that runs until grpcurl gives up after WATCH_SECONDS."""
    result = grpcurl("-max-time", WATCH_SECONDS, *flags, "-d", json.dumps(body), address, method)
    assert "DeadlineExceeded" in result.stderr, result.stderr  # a watch never ends by itself
    assert result.returncode == 64 + DEADLINE_EXCEEDED
    return responses(result.stdout)


def value_of(message: dict[str, Any], field: str) -> Any:
    """A field printed under its JSON name, or its proto name when the descriptor has no
    json_name (the googleapis descriptors, as served by reflection)."""
    head, *rest = field.split("_")
    camel = head + "".join(word.title() for word in rest)
    return message[camel] if camel in message else message[field]


def detail(status: dict[str, Any], type_name: str) -> dict[str, Any]:
    url = f"type.googleapis.com/{type_name}"
    found: list[dict[str, Any]] = [d for d in status.get("details", []) if d["@type"] == url]
    assert len(found) == 1, status
    return found[0]


def assert_error_info(status: dict[str, Any], code: int, reason: str) -> dict[str, Any]:
    assert status["code"] == code, status
    assert status["message"]
    info = detail(status, "google.rpc.ErrorInfo")
    assert info["reason"] == reason
    assert info["domain"] == "shop.dev"
    return info


def violated_fields(status: dict[str, Any]) -> list[str]:
    violations = value_of(detail(status, "google.rpc.BadRequest"), "field_violations")
    return [v["field"] for v in violations]


# --- data ----------------------------------------------------------------------------------


def new_email() -> str:
    return f"grpcurl-{uuid.uuid4().hex[:12]}@example.com"


def create_user(system: System, name: str = "Ada", *flags: str) -> dict[str, Any]:
    body = {"user": {"email": new_email(), "display_name": name}}
    user: dict[str, Any] = call(system.user_addr, f"{USER_SERVICE}/CreateUser", body, *flags)[
        "user"
    ]
    return user


def item(sku: str = "TEA-1", quantity: int = 2, units: int = 3, nanos: int = 0) -> dict[str, Any]:
    price = {"currency_code": "EUR", "units": units, "nanos": nanos}
    return {"sku": sku, "quantity": quantity, "unit_price": price}


def create_order(system: System, user_id: str, *flags: str) -> dict[str, Any]:
    body = {"order": {"user_id": user_id, "items": [item()]}}
    order: dict[str, Any] = call(system.order_addr, f"{ORDER_SERVICE}/CreateOrder", body, *flags)[
        "order"
    ]
    return order


def revision_of(address: str, service: str, listing: str) -> int:
    # grpcurl prints proto3 JSON: a revision of 0 (nothing written yet) is left out.
    return int(call(address, f"{service}/{listing}", {"page_size": 1}).get("revision", 0))


# --- list and reflection v1 ----------------------------------------------------------------

SERVICES = [
    pytest.param("user", USER_SERVICE, id="user_svc"),
    pytest.param("order", ORDER_SERVICE, id="order_svc"),
]
METHODS = {
    USER_SERVICE: ["CreateUser", "DeleteUser", "GetUser", "ListUsers", "UpdateUser", "WatchUsers"],
    ORDER_SERVICE: ["CancelOrder", "CreateOrder", "GetOrder", "ListOrders", "WatchOrders"],
}


def address_of(system: System, which: str) -> str:
    return system.user_addr if which == "user" else system.order_addr


@pytest.mark.parametrize(("which", "service"), SERVICES)
def test_list_shows_exactly_the_services_and_every_method(
    system: System, which: str, service: str
) -> None:
    address = address_of(system, which)
    listed = grpcurl(address, "list")
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.split()) == sorted({service, *COMMON_SERVICES})
    methods = grpcurl(address, "list", service)
    assert methods.returncode == 0, methods.stderr
    assert methods.stdout.split() == [f"{service}.{name}" for name in METHODS[service]]


@pytest.mark.parametrize(("which", "service"), SERVICES)
def test_reflection_v1_is_served_and_answers(system: System, which: str, service: str) -> None:
    address = address_of(system, which)
    described = grpcurl(address, "describe", REFLECTION_V1)
    assert described.returncode == 0, described.stderr
    assert f"{REFLECTION_V1} is a service:" in described.stdout
    assert (
        "rpc ServerReflectionInfo ( stream .grpc.reflection.v1.ServerReflectionRequest )"
        " returns ( stream .grpc.reflection.v1.ServerReflectionResponse );" in described.stdout
    )
    # The pinned grpcurl's reflection client only asks v1alpha; ask v1 itself, as an RPC.
    asks = [{"list_services": ""}, {"file_containing_symbol": service}]
    requests = " ".join(json.dumps(ask) for ask in asks)  # a client stream: one after another
    answers: dict[str, list[dict[str, Any]]] = {}
    for name in (REFLECTION_V1, REFLECTION_V1ALPHA):
        result = grpcurl("-d", requests, address, f"{name}/ServerReflectionInfo")
        assert result.returncode == 0, result.stderr
        answers[name] = responses(result.stdout)
    listing, files = answers[REFLECTION_V1]
    names = {s["name"] for s in value_of(listing, "list_services_response")["service"]}
    assert names == {service, *COMMON_SERVICES}
    encoded = value_of(value_of(files, "file_descriptor_response"), "file_descriptor_proto")
    protos = [descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(f)) for f in encoded]
    package = service.rsplit(".", 1)[0]
    [own] = [p for p in protos if p.package == package]
    assert [s.name for s in own.service] == [service.rsplit(".", 1)[1]]
    assert answers[REFLECTION_V1ALPHA] == answers[REFLECTION_V1]  # one protocol, two names


# --- describe ------------------------------------------------------------------------------

_SCALARS = {
    FieldDescriptor.TYPE_DOUBLE: "double",
    FieldDescriptor.TYPE_FLOAT: "float",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_FIXED64: "fixed64",
    FieldDescriptor.TYPE_FIXED32: "fixed32",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_SFIXED32: "sfixed32",
    FieldDescriptor.TYPE_SFIXED64: "sfixed64",
    FieldDescriptor.TYPE_SINT32: "sint32",
    FieldDescriptor.TYPE_SINT64: "sint64",
}


def _types(message: Descriptor) -> Iterator[Descriptor | EnumDescriptor]:
    yield message
    yield from message.enum_types
    for nested in message.nested_types:
        yield from _types(nested)


def _shop_types() -> list[Descriptor | EnumDescriptor]:
    found: list[Descriptor | EnumDescriptor] = []
    for module in (user_pb2, order_pb2):
        found.extend(module.DESCRIPTOR.enum_types_by_name.values())
        for message in module.DESCRIPTOR.message_types_by_name.values():
            found.extend(_types(message))
    return found


def _extra_types() -> list[Descriptor]:
    return [
        money_pb2.Money.DESCRIPTOR,
        error_details_pb2.ErrorInfo.DESCRIPTOR,
        error_details_pb2.BadRequest.DESCRIPTOR,
        error_details_pb2.BadRequest.FieldViolation.DESCRIPTOR,
    ]


def _is_map_entry(message: Descriptor | EnumDescriptor) -> bool:
    return isinstance(message, Descriptor) and message.GetOptions().map_entry


def _type_name(field: FieldDescriptor) -> str:
    if field.message_type is not None:
        return "." + field.message_type.full_name
    if field.enum_type is not None:
        return "." + field.enum_type.full_name
    return _SCALARS[field.type]


def _field_line(field: FieldDescriptor) -> str:
    entry = field.message_type
    if entry is not None and _is_map_entry(entry):
        key, value = (_type_name(f) for f in entry.fields)
        return f"map<{key}, {value}> {field.name} = {field.number}"
    repeated = "repeated " if field.is_repeated else ""
    return f"{repeated}{_type_name(field)} {field.name} = {field.number}"


@pytest.mark.parametrize(("which", "service"), SERVICES)
def test_describe_every_service(system: System, which: str, service: str) -> None:
    module = user_pb2 if which == "user" else order_pb2
    expected = module.DESCRIPTOR.services_by_name[service.rsplit(".", 1)[1]]
    described = grpcurl(address_of(system, which), "describe", service)
    assert described.returncode == 0, described.stderr
    assert described.stdout.startswith(f"{service} is a service:\n")
    assert described.stdout.count("  rpc ") == len(expected.methods) == len(METHODS[service])
    for method in expected.methods:
        stream = "stream " if method.server_streaming else ""
        assert (
            f"rpc {method.name} ( .{method.input_type.full_name} )"
            f" returns ( {stream}.{method.output_type.full_name} )"
        ) in described.stdout
    assert "option (.google.api.http)" in described.stdout


def _served_by(symbol: Descriptor | EnumDescriptor) -> str:
    # Each service's reflection knows its own files and their imports (Money: orders only).
    return "user" if symbol.full_name.startswith(("shop.user.", "google.rpc.")) else "order"


SYMBOLS = [
    pytest.param(symbol, _served_by(symbol), id=symbol.full_name)
    for symbol in [*_shop_types(), *_extra_types()]
]


@pytest.mark.parametrize(("symbol", "which"), SYMBOLS)
def test_describe_every_message_and_enum(
    system: System, symbol: Descriptor | EnumDescriptor, which: str
) -> None:
    described = grpcurl(address_of(system, which), "describe", symbol.full_name)
    assert described.returncode == 0, described.stderr
    text = described.stdout
    if isinstance(symbol, EnumDescriptor):
        assert text.startswith(f"{symbol.full_name} is an enum:\nenum {symbol.name} {{\n")
        for value in symbol.values:
            assert f"  {value.name} = {value.number};" in text
        return
    assert text.startswith(f"{symbol.full_name} is a message:\nmessage {symbol.name} {{\n")
    for field in symbol.fields:
        assert _field_line(field) in text, (field.full_name, text)
    nested = [e.name for e in symbol.enum_types]
    nested += [m.name for m in symbol.nested_types if not _is_map_entry(m)]
    for name in nested:
        assert f" {name} {{" in text


def test_describe_shows_field_behavior_options_and_enum_values(system: System) -> None:
    # Spot checks, written out, of what the generic test above derives from descriptors.
    order = grpcurl(system.order_addr, "describe", "shop.order.v1.Order").stdout
    assert "repeated .shop.order.v1.LineItem items = 3" in order
    assert ".google.type.Money total = 4 [(.google.api.field_behavior) = OUTPUT_ONLY];" in order
    assert ".shop.order.v1.Order.State state = 5" in order
    assert "enum State {" in order
    state = grpcurl(system.order_addr, "describe", "shop.order.v1.Order.State").stdout
    assert "STATE_PENDING = 1;" in state
    assert "STATE_CANCELLED = 2;" in state
    event_type = grpcurl(system.user_addr, "describe", "shop.user.v1.UserEvent.Type").stdout
    assert "TYPE_PUT = 1;" in event_type
    assert "TYPE_DELETE = 2;" in event_type
    money = grpcurl(system.order_addr, "describe", "google.type.Money").stdout
    assert "int64 units = 2;" in money
    assert "int32 nanos = 3;" in money


# --- every unary RPC with -d -----------------------------------------------------------


def test_user_rpcs(system: System) -> None:
    addr = system.user_addr
    email = new_email()
    body = {"user": {"email": email, "display_name": "Ada"}, "request_id": uuid.uuid4().hex}
    created = call(addr, f"{USER_SERVICE}/CreateUser", body)["user"]
    assert ids.is_valid_id(created["id"])
    assert created["email"] == email
    assert created["displayName"] == "Ada"  # JSON names from the served descriptor
    assert created["createTime"] == created["updateTime"]
    assert created["createTime"].endswith("Z")
    assert isinstance(created["etag"], str)
    again = call(addr, f"{USER_SERVICE}/CreateUser", body)["user"]
    assert again == created  # the same request_id: the first result

    got = call(addr, f"{USER_SERVICE}/GetUser", {"id": created["id"]})["user"]
    assert got == created

    update = {
        "user": {
            "id": created["id"],
            "email": "not-applied@example.com",
            "display_name": "Ada L.",
            "etag": created["etag"],
        },
        "update_mask": {"paths": ["display_name"]},
    }
    updated = call(addr, f"{USER_SERVICE}/UpdateUser", update)["user"]
    assert updated["displayName"] == "Ada L."
    assert updated["email"] == email  # not in the mask
    assert updated["etag"] != created["etag"]
    assert updated["createTime"] == created["createTime"]
    assert updated["updateTime"] > created["updateTime"]

    deleted = call(
        addr, f"{USER_SERVICE}/DeleteUser", {"id": created["id"], "etag": updated["etag"]}
    )
    assert deleted == {}
    gone = refused(addr, f"{USER_SERVICE}/GetUser", {"id": created["id"]})
    info = assert_error_info(gone, 5, "USER_NOT_FOUND")
    assert info["metadata"] == {"id": created["id"]}


def test_list_users_follows_next_page_token(system: System) -> None:
    mine = {create_user(system, f"Page {n}")["id"] for n in range(3)}
    method = f"{USER_SERVICE}/ListUsers"
    everyone = call(system.user_addr, method, {"page_size": 1000})
    assert "nextPageToken" not in everyone  # one page holds them all
    assert int(everyone["revision"]) > 0
    assert isinstance(everyone["revision"], str)  # int64 in proto JSON
    all_ids = [u["id"] for u in everyone["users"]]
    assert mine <= set(all_ids)
    size = max(1, len(all_ids) // 3)
    paged: list[str] = []
    request: dict[str, Any] = {"page_size": size}
    for _ in range(len(all_ids) + 1):
        page = call(system.user_addr, method, request)
        assert len(page["users"]) <= size
        paged.extend(u["id"] for u in page["users"])
        if "nextPageToken" not in page:
            break
        request = {"page_size": size, "page_token": page["nextPageToken"]}
    else:
        pytest.fail("the pages never ended")
    assert paged == all_ids
    assert len(paged) > size  # there was more than one page


def test_order_rpcs(system: System) -> None:
    addr = system.order_addr
    owner = create_user(system)["id"]
    body = {
        "order": {
            "user_id": owner,
            "items": [item("TEA-1", 2, 3, 500_000_000), item("CUP-9", 1, 4)],
        },
        "request_id": uuid.uuid4().hex,
    }
    created = call(addr, f"{ORDER_SERVICE}/CreateOrder", body)["order"]
    assert ids.is_valid_id(created["id"])
    assert created["userId"] == owner
    assert created["state"] == "STATE_PENDING"  # enums by name
    assert [i["sku"] for i in created["items"]] == ["TEA-1", "CUP-9"]
    assert created["items"][0]["quantity"] == 2  # int32: a number
    price = created["items"][0]["unitPrice"]
    assert value_of(price, "currency_code") == "EUR"
    assert price["units"] == "3"  # int64: a string
    assert price["nanos"] == 500_000_000
    total = created["total"]
    assert (value_of(total, "currency_code"), total["units"]) == ("EUR", "11")
    assert total.get("nanos", 0) == 0
    assert call(addr, f"{ORDER_SERVICE}/CreateOrder", body)["order"] == created

    got = call(addr, f"{ORDER_SERVICE}/GetOrder", {"id": created["id"]})["order"]
    assert got == created

    second = create_order(system, owner)
    create_order(system, create_user(system)["id"])  # someone else's
    listed: list[str] = []
    request: dict[str, Any] = {"user_id": owner, "page_size": 1}
    while True:
        page = call(addr, f"{ORDER_SERVICE}/ListOrders", request)
        assert isinstance(page["revision"], str)
        assert all(o["userId"] == owner for o in page["orders"])
        listed.extend(o["id"] for o in page["orders"])
        if "nextPageToken" not in page:
            break
        request = {**request, "page_token": page["nextPageToken"]}
    assert listed == [created["id"], second["id"]]

    cancel = {"id": created["id"], "etag": created["etag"]}
    cancelled = call(addr, f"{ORDER_SERVICE}/CancelOrder", cancel)["order"]
    assert cancelled["state"] == "STATE_CANCELLED"
    assert cancelled["etag"] != created["etag"]
    assert cancelled["items"] == created["items"]
    twice = refused(addr, f"{ORDER_SERVICE}/CancelOrder", {"id": created["id"]})
    assert_error_info(twice, 9, "ORDER_ALREADY_CANCELLED")


# --- watch streams -------------------------------------------------------------------------


def test_watch_users_shows_the_changes_made_just_before(system: System) -> None:
    addr = system.user_addr
    start = revision_of(addr, USER_SERVICE, "ListUsers") + 1
    created = create_user(system, "Watched")
    update = {"user": {"id": created["id"], "display_name": "Watched 2"}}
    updated = call(addr, f"{USER_SERVICE}/UpdateUser", update)["user"]
    call(addr, f"{USER_SERVICE}/DeleteUser", {"id": created["id"]})

    got = watch(addr, f"{USER_SERVICE}/WatchUsers", {"start_revision": start, "prev_user": True})
    events = [e for r in got for e in r.get("events", []) if e["user"]["id"] == created["id"]]
    assert [e["type"] for e in events] == ["TYPE_PUT", "TYPE_PUT", "TYPE_DELETE"]
    assert events[0]["user"] == created
    assert "prevUser" not in events[0]  # nothing before the creation
    assert events[1]["user"] == updated
    assert events[1]["prevUser"] == created
    assert events[2]["prevUser"] == updated
    revisions = [int(e["revision"]) for e in events]
    assert all(isinstance(e["revision"], str) for e in events)
    assert revisions == sorted(revisions)
    assert revisions[0] >= start
    assert all(int(r["headerRevision"]) >= revisions[-1] for r in got)

    plain = watch(addr, f"{USER_SERVICE}/WatchUsers", {"start_revision": start})
    assert all("prevUser" not in e for r in plain for e in r.get("events", []))


def test_watch_from_revision_1_sends_a_bookmark_once_caught_up(system: System) -> None:
    create_user(system)  # so that there is history to catch up with
    body = {"start_revision": 1, "progress_notify": True}
    got = watch(system.user_addr, f"{USER_SERVICE}/WatchUsers", body)
    bookmarks = [n for n, r in enumerate(got) if r.get("progressNotify")]
    assert bookmarks, got
    first = bookmarks[0]
    assert first > 0  # history first
    assert "events" not in got[first]
    assert all(r.get("events") for r in got[:first])
    history = [int(e["revision"]) for r in got[:first] for e in r["events"]]
    assert history[0] == 1
    assert int(got[first]["headerRevision"]) == history[-1]
    assert "compactRevision" not in got[first]


def test_watch_orders_of_one_user(system: System) -> None:
    addr = system.order_addr
    mine, theirs = create_user(system)["id"], create_user(system)["id"]
    start = revision_of(addr, ORDER_SERVICE, "ListOrders") + 1
    first = create_order(system, mine)
    create_order(system, theirs)
    second = create_order(system, mine)
    cancelled = call(addr, f"{ORDER_SERVICE}/CancelOrder", {"id": first["id"]})["order"]

    body = {"start_revision": start, "user_id": mine, "prev_order": True}
    got = watch(addr, f"{ORDER_SERVICE}/WatchOrders", body)
    events = [e for r in got for e in r.get("events", [])]
    assert [(e["type"], e["order"]["id"], e["order"]["state"]) for e in events] == [
        ("TYPE_PUT", first["id"], "STATE_PENDING"),
        ("TYPE_PUT", second["id"], "STATE_PENDING"),
        ("TYPE_PUT", first["id"], "STATE_CANCELLED"),
    ]
    assert events[2]["order"] == cancelled
    assert events[2]["prevOrder"] == first
    assert all(e["order"]["userId"] == mine for e in events)


# --- error statuses with details -----------------------------------------------------------


def test_malformed_id_is_invalid_argument_with_error_info_and_bad_request(system: System) -> None:
    status = refused(system.user_addr, f"{USER_SERVICE}/GetUser", {"id": "not-an-id"})
    assert_error_info(status, 3, "INVALID_ARGUMENT")
    assert [d["@type"] for d in status["details"]] == [
        "type.googleapis.com/google.rpc.ErrorInfo",
        "type.googleapis.com/google.rpc.BadRequest",
    ]
    [violation] = value_of(detail(status, "google.rpc.BadRequest"), "field_violations")
    assert violation["field"] == "id"
    assert violation["reason"] == "INVALID_ID"
    assert violation["description"]


def test_taken_email_is_already_exists(system: System) -> None:
    taken = create_user(system)["email"]
    body = {"user": {"email": taken.upper(), "display_name": "Twin"}}  # case does not matter
    status = refused(system.user_addr, f"{USER_SERVICE}/CreateUser", body)
    assert_error_info(status, 6, "EMAIL_TAKEN")


def test_stale_etag_is_aborted(system: System) -> None:
    user = create_user(system)
    method = f"{USER_SERVICE}/UpdateUser"
    body = {"user": {"id": user["id"], "display_name": "One", "etag": user["etag"]}}
    current = call(system.user_addr, method, body)["user"]
    body["user"]["display_name"] = "Two"  # with the etag read before the first update
    status = refused(system.user_addr, method, body)
    info = assert_error_info(status, 10, "ETAG_MISMATCH")
    assert info["metadata"] == {"current_etag": current["etag"]}
    delete = {"id": user["id"], "etag": user["etag"]}
    assert refused(system.user_addr, f"{USER_SERVICE}/DeleteUser", delete)["code"] == 10


def test_order_for_unknown_user_is_failed_precondition(system: System) -> None:
    body = {"order": {"user_id": ids.new_id(), "items": [item()]}}
    status = refused(system.order_addr, f"{ORDER_SERVICE}/CreateOrder", body)
    assert_error_info(status, 9, "USER_NOT_FOUND")


@pytest.mark.parametrize(("which", "service"), SERVICES)
def test_watch_from_a_negative_revision_is_invalid_argument(
    system: System, which: str, service: str
) -> None:
    method = f"{service}/{METHODS[service][-1]}"  # the Watch
    status = refused(address_of(system, which), method, {"start_revision": -1})
    assert_error_info(status, 3, "INVALID_ARGUMENT")
    assert violated_fields(status) == ["start_revision"]


# --- metadata with -H ----------------------------------------------------------------------


def test_a_bearer_subject_orders_for_its_own_user_only(system: System) -> None:
    subject = f"grpcurl-{uuid.uuid4().hex[:12]}"
    as_owner = ("-H", f"authorization: Bearer {subject}")
    owner = create_user(system, "Owner", *as_owner)
    assert owner["subject"] == subject
    # Named, a user the order service has not seen yet is asked of the user service.
    first = create_order(system, owner["id"], *as_owner)
    assert first["userId"] == owner["id"]
    method = f"{ORDER_SERVICE}/CreateOrder"
    body = {"order": {"items": [item()]}}
    order = call(system.order_addr, method, body, *as_owner)["order"]
    assert order["userId"] == owner["id"]
    listed = call(system.order_addr, f"{ORDER_SERVICE}/ListOrders", {}, *as_owner)
    assert [o["id"] for o in listed["orders"]] == [first["id"], order["id"]]
    # Not for another user's.
    other = create_user(system)["id"]
    theirs = {"order": {"user_id": other, "items": [item()]}}
    assert_error_info(refused(system.order_addr, method, theirs, *as_owner), 7, "NOT_YOUR_USER")
    # A subject that owns no user has nobody to default to.
    stranger = ("-H", f"authorization: Bearer nobody-{uuid.uuid4().hex[:12]}")
    assert_error_info(refused(system.order_addr, method, body, *stranger), 9, "CALLER_HAS_NO_USER")
    # Nor has the development admin (no credentials), which has no subject: it names one.
    admin = refused(system.order_addr, method, body)
    assert_error_info(admin, 3, "INVALID_ARGUMENT")
    assert violated_fields(admin) == ["order.user_id"]


@pytest.mark.parametrize(
    ("which", "method", "body"),
    [
        pytest.param("user", f"{USER_SERVICE}/ListUsers", {}, id="ListUsers"),
        pytest.param("order", f"{ORDER_SERVICE}/GetOrder", {"id": "x"}, id="GetOrder"),
        pytest.param("user", f"{USER_SERVICE}/WatchUsers", {}, id="WatchUsers"),
    ],
)
@pytest.mark.parametrize("authorization", ["Basic eHl6", "Bearer", "Bearer   "])
def test_authorization_that_is_not_bearer_is_unauthenticated(
    system: System, which: str, method: str, body: dict[str, Any], authorization: str
) -> None:
    # -H goes to the reflection calls too: reflection does not authenticate, the RPC does.
    flags = ("-max-time", "5", "-H", f"authorization: {authorization}")
    status = refused(address_of(system, which), method, body, *flags)
    assert_error_info(status, 16, "MALFORMED_AUTHORIZATION")


def test_rpc_and_reflect_headers_go_where_they_are_told(system: System) -> None:
    method = f"{USER_SERVICE}/ListUsers"
    bad = "authorization: Basic eHl6"
    on_the_rpc = refused(system.user_addr, method, {}, "-rpc-header", bad)
    assert_error_info(on_the_rpc, 16, "MALFORMED_AUTHORIZATION")
    # Only reflection sees it: the RPC runs anonymously.
    assert "users" in call(system.user_addr, method, {"page_size": 1}, "-reflect-header", bad)


def test_custom_headers_are_sent_and_accepted(system: System) -> None:
    subject = f"grpcurl-{uuid.uuid4().hex[:12]}"
    user = create_user(system, "Ada", "-H", f"authorization: Bearer {subject}")
    trace = f"e2e-{time.time_ns()}"
    result = grpcurl(
        "-v",
        "-H",
        f"x-request-id: {trace}",
        "-rpc-header",
        "x-client: grpcurl-e2e",
        "-H",
        f"authorization: Bearer {subject}",
        "-d",
        json.dumps({"id": user["id"]}),
        system.user_addr,
        f"{USER_SERVICE}/GetUser",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    sent = out[out.index("Request metadata to send:") : out.index("Response headers received:")]
    assert f"x-request-id: {trace}" in sent
    assert "x-client: grpcurl-e2e" in sent
    assert "content-type: application/grpc" in out
    body = out[out.index("Response contents:") + len("Response contents:") :]
    body = body[: body.index("Response trailers received:")]
    assert json.loads(body)["user"] == user
