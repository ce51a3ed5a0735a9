"""A test-only proto, built at import into the default descriptor pool: a message with
every kind of field the gateway converts from text, and a service whose HTTP rules use
the template features our own contracts do not (yet): `**`, `{name=shelves/*}`, integer
path variables, specificity between literal, `*` and `**`."""

from __future__ import annotations

from google.api import annotations_pb2  # noqa: F401  # registers the http option for text_format
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    field_mask_pb2,
    text_format,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor import Descriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

PACKAGE = "gateway.test.v1"
_FILE = f"""
name: "gateway/test/v1/sample.proto"
package: "{PACKAGE}"
syntax: "proto3"
dependency: ["google/protobuf/timestamp.proto", "google/protobuf/duration.proto",
             "google/protobuf/wrappers.proto", "google/protobuf/field_mask.proto"]
message_type {{
  name: "Sample"
  field {{ name: "text" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL json_name: "text" }}
  field {{ name: "i32" number: 2 type: TYPE_INT32 label: LABEL_OPTIONAL json_name: "i32" }}
  field {{ name: "i64" number: 3 type: TYPE_INT64 label: LABEL_OPTIONAL json_name: "i64" }}
  field {{ name: "u32" number: 4 type: TYPE_UINT32 label: LABEL_OPTIONAL json_name: "u32" }}
  field {{ name: "u64" number: 5 type: TYPE_UINT64 label: LABEL_OPTIONAL json_name: "u64" }}
  field {{ name: "flag" number: 6 type: TYPE_BOOL label: LABEL_OPTIONAL json_name: "flag" }}
  field {{ name: "ratio" number: 7 type: TYPE_FLOAT label: LABEL_OPTIONAL json_name: "ratio" }}
  field {{ name: "value" number: 8 type: TYPE_DOUBLE label: LABEL_OPTIONAL json_name: "value" }}
  field {{ name: "blob" number: 9 type: TYPE_BYTES label: LABEL_OPTIONAL json_name: "blob" }}
  field {{ name: "color" number: 10 type: TYPE_ENUM label: LABEL_OPTIONAL
          type_name: ".{PACKAGE}.Sample.Color" json_name: "color" }}
  field {{ name: "inner" number: 11 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".{PACKAGE}.Sample.Inner" json_name: "inner" }}
  field {{ name: "tags" number: 12 type: TYPE_STRING label: LABEL_REPEATED json_name: "tags" }}
  field {{ name: "numbers" number: 13 type: TYPE_INT64 label: LABEL_REPEATED
          json_name: "numbers" }}
  field {{ name: "when" number: 14 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".google.protobuf.Timestamp" json_name: "when" }}
  field {{ name: "wait" number: 15 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".google.protobuf.Duration" json_name: "wait" }}
  field {{ name: "maybe" number: 16 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".google.protobuf.Int32Value" json_name: "maybe" }}
  field {{ name: "mask" number: 17 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".google.protobuf.FieldMask" json_name: "mask" }}
  field {{ name: "display_name" number: 18 type: TYPE_STRING label: LABEL_OPTIONAL
          json_name: "displayName" }}
  field {{ name: "child" number: 19 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".{PACKAGE}.Sample" json_name: "child" }}
  field {{ name: "labels" number: 20 type: TYPE_MESSAGE label: LABEL_REPEATED
          type_name: ".{PACKAGE}.Sample.LabelsEntry" json_name: "labels" }}
  field {{ name: "s32" number: 21 type: TYPE_SINT32 label: LABEL_OPTIONAL json_name: "s32" }}
  nested_type {{
    name: "Inner"
    field {{ name: "inner_name" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL
            json_name: "innerName" }}
    field {{ name: "count" number: 2 type: TYPE_INT64 label: LABEL_OPTIONAL json_name: "count" }}
  }}
  nested_type {{
    name: "LabelsEntry"
    options {{ map_entry: true }}
    field {{ name: "key" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL json_name: "key" }}
    field {{ name: "value" number: 2 type: TYPE_STRING label: LABEL_OPTIONAL json_name: "value" }}
  }}
  enum_type {{
    name: "Color"
    value {{ name: "COLOR_UNSPECIFIED" number: 0 }}
    value {{ name: "RED" number: 1 }}
    value {{ name: "GREEN" number: 2 }}
  }}
}}
service {{
  name: "SampleService"
  {{methods}}
}}
"""
RULES = {
    "Literal": 'get: "/v1/things/special"',
    "Single": 'get: "/v1/things/{text}"',
    "Deep": 'get: "/v1/{text=**}"',
    "Named": 'get: "/v2/{text=shelves/*}/books/{i64}"',
    "Run": 'post: "/v1/things/{text}:run" body: "*"',
    "Put": 'put: "/v1/things/{text}" body: "inner"',
    "Custom": 'custom { kind: "HEAD" path: "/v1/things/{text}" }',
    "Extra": 'get: "/v3/a/{text}" additional_bindings { get: "/v3/b/{inner.inner_name}" }',
}
_METHODS = "\n".join(
    f"method {{ name: '{name}' input_type: '.{PACKAGE}.Sample' output_type: '.{PACKAGE}.Sample'"
    f" options {{ [google.api.http] {{ {rule} }} }} }}"
    for name, rule in RULES.items()
)


def _add() -> None:
    for module in (timestamp_pb2, duration_pb2, wrappers_pb2, field_mask_pb2):
        assert module.DESCRIPTOR  # the dependencies are in the pool
    file = text_format.Parse(
        _FILE.replace("{methods}", _METHODS), descriptor_pb2.FileDescriptorProto()
    )
    descriptor_pool.Default().Add(file)


_add()
SAMPLE: Descriptor = descriptor_pool.Default().FindMessageTypeByName(f"{PACKAGE}.Sample")
SERVICE: ServiceDescriptor = descriptor_pool.Default().FindServiceByName(f"{PACKAGE}.SampleService")
Sample: type[Message] = GetMessageClass(SAMPLE)
