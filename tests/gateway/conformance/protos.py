"""The conformance API (`v1/conformance.proto`), compiled by protoc at test time into a
descriptor set and added to the default descriptor pool, where the gateway finds it as it
finds any service. No Python code is generated from it."""

from __future__ import annotations

import functools
import pathlib
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources

from google.api import annotations_pb2
from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor import Descriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

TESTS = pathlib.Path(__file__).resolve().parents[2]
ROOT = TESTS.parent
FILE = "gateway/conformance/v1/conformance.proto"
PACKAGE = "gateway.conformance.v1"
# What the file imports, loaded the usual way first: only our own file is new to the pool.
IMPORTED = (
    annotations_pb2,
    any_pb2,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)


@dataclass(frozen=True)
class Conformance:
    service: ServiceDescriptor
    everything: Descriptor
    Everything: type[Message]
    """The request of every RPC."""
    Echo: type[Message]
    """The response of every RPC: `method`, the `request` as received, and an `index`."""
    Nested: type[Message]


def compile_descriptor_set(out: pathlib.Path) -> descriptor_pb2.FileDescriptorSet:
    """Runs protoc on the conformance proto, with googleapis and the well-known types."""
    well_known = resources.files("grpc_tools") / "_proto"
    target = out / "conformance.pb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{TESTS}",
            f"-I{ROOT / 'third_party' / 'googleapis'}",
            f"-I{well_known}",
            "--include_imports",
            f"--descriptor_set_out={target}",
            FILE,
        ],
        check=True,
        capture_output=True,
    )
    return descriptor_pb2.FileDescriptorSet.FromString(target.read_bytes())


def register(files: descriptor_pb2.FileDescriptorSet) -> None:
    """Adds the files the default pool does not have yet (in dependency order, as protoc
    writes them)."""
    assert all(module.DESCRIPTOR for module in IMPORTED)
    pool = descriptor_pool.Default()
    for file in files.file:
        try:
            pool.FindFileByName(file.name)
        except KeyError:
            pool.Add(file)


@functools.cache
def load() -> Conformance:
    """Compiles and registers the API once per test process."""
    with tempfile.TemporaryDirectory(prefix="conformance-") as out:
        register(compile_descriptor_set(pathlib.Path(out)))
    pool = descriptor_pool.Default()
    everything = pool.FindMessageTypeByName(f"{PACKAGE}.Everything")
    return Conformance(
        service=pool.FindServiceByName(f"{PACKAGE}.ConformanceService"),
        everything=everything,
        Everything=GetMessageClass(everything),
        Echo=GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.Echo")),
        Nested=GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.Nested")),
    )
