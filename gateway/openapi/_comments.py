"""The comments of the protos, by full name, read from the source info a descriptor
carries (when it carries any)."""

from __future__ import annotations

import textwrap

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    FieldDescriptor,
    FileDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)

Described = Descriptor | FieldDescriptor | EnumDescriptor | ServiceDescriptor | MethodDescriptor


class Comments:
    """The comments of the protos, by full name, when the descriptors carry source info.

    Descriptors compiled into Python modules usually do not (and the upb runtime drops it),
    so this often finds nothing; a descriptor set built with source info has them.
    """

    def __init__(self) -> None:
        self._files: dict[str, dict[str, str]] = {}

    def of(self, descriptor: Described) -> str:
        file = _file(descriptor)
        found = self._files.get(file.name)
        if found is None:
            proto = descriptor_pb2.FileDescriptorProto.FromString(file.serialized_pb)
            found = self._files[file.name] = comments_of(proto)
        return found.get(descriptor.full_name, "")


def _file(descriptor: Described) -> FileDescriptor:
    if isinstance(descriptor, MethodDescriptor):
        return descriptor.containing_service.file
    if isinstance(descriptor, FieldDescriptor):
        owner = descriptor.containing_type
        assert owner is not None  # the fields we describe belong to messages
        return owner.file
    return descriptor.file


def comments_of(file: descriptor_pb2.FileDescriptorProto) -> dict[str, str]:
    """Full name → the leading (else trailing) comment of each message, field, enum,
    service and method of the file."""
    by_path: dict[tuple[int, ...], str] = {}
    for location in file.source_code_info.location:
        text = location.leading_comments or location.trailing_comments
        if text.strip():
            by_path[tuple(location.path)] = textwrap.dedent(text).strip()
    found: dict[str, str] = {}
    if not by_path:
        return found

    def add(name: str, path: tuple[int, ...]) -> None:
        if path in by_path:
            found[name] = by_path[path]

    def message(proto: descriptor_pb2.DescriptorProto, path: tuple[int, ...], name: str) -> None:
        add(name, path)
        for i, field in enumerate(proto.field):
            add(f"{name}.{field.name}", (*path, 2, i))
        for i, nested in enumerate(proto.nested_type):
            message(nested, (*path, 3, i), f"{name}.{nested.name}")
        for i, enum in enumerate(proto.enum_type):
            add(f"{name}.{enum.name}", (*path, 4, i))

    scope = f"{file.package}." if file.package else ""
    for i, proto in enumerate(file.message_type):
        message(proto, (4, i), scope + proto.name)
    for i, enum in enumerate(file.enum_type):
        add(scope + enum.name, (5, i))
    for i, service in enumerate(file.service):
        add(scope + service.name, (6, i))
        for j, method in enumerate(service.method):
            add(f"{scope}{service.name}.{method.name}", (6, i, 2, j))
    return found
