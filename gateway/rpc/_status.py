"""A google.rpc.Status as each RPC protocol writes it: Connect's error JSON (its code names,
its details with their bytes and a JSON `debug` copy) and gRPC-Web's trailer block
(`grpc-status`, a percent-encoded `grpc-message`, `grpc-status-details-bin`)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Final

import grpc
from google.rpc import status_pb2

from gateway.errors import detail_json
from gateway.metadata import metadata_headers
from gateway.types import MetadataPairs

CONNECT_CODES: Final[Mapping[int, str]] = {
    code.value[0]: "canceled" if code is grpc.StatusCode.CANCELLED else code.name.lower()
    for code in grpc.StatusCode
    if code is not grpc.StatusCode.OK
}
"""gRPC's codes by number → Connect's names (`canceled` is spelled the American way)."""


def connect_error(status: status_pb2.Status) -> dict[str, object]:
    """The Connect protocol's error JSON: `code`, `message` and `details`, each detail its
    type's full name, its bytes (base64, unpadded) and, for people, its JSON (`debug`)."""
    error: dict[str, object] = {"code": CONNECT_CODES.get(status.code, "unknown")}
    if status.message:
        error["message"] = status.message
    if status.details:
        details = []
        for detail in status.details:
            debug = detail_json(detail)
            if isinstance(debug, dict):
                debug.pop("@type", None)
            details.append(
                {
                    "type": detail.type_url.rpartition("/")[2],
                    "value": base64.b64encode(detail.value).rstrip(b"=").decode(),
                    "debug": debug,
                }
            )
        error["details"] = details
    return error


def connect_metadata(pairs: MetadataPairs) -> dict[str, list[str]]:
    """Trailing metadata as Connect's end-of-stream `metadata` object (values as headers
    carry them: `-bin` ones base64)."""
    out: dict[str, list[str]] = {}
    for name, value in metadata_headers(pairs):
        out.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    return out


def grpc_status_headers(status: status_pb2.Status) -> list[tuple[bytes, bytes]]:
    """`grpc-status`, `grpc-message` and, with details, `grpc-status-details-bin`."""
    headers = [(b"grpc-status", b"%d" % status.code)]
    if status.message:
        headers.append((b"grpc-message", percent_encode(status.message)))
    if status.details:
        headers.append((b"grpc-status-details-bin", base64.b64encode(status.SerializeToString())))
    return headers


def trailer_block(status: status_pb2.Status, trailing: MetadataPairs) -> bytes:
    """gRPC-Web's trailers: an HTTP/1 header block, lower-case names, CRLF after each."""
    lines = [*grpc_status_headers(status), *metadata_headers(trailing)]
    return b"".join(name + b": " + value + b"\r\n" for name, value in lines)


def percent_encode(message: str) -> bytes:
    """gRPC's `grpc-message` encoding: UTF-8, every byte outside printable ASCII, and `%`
    itself, as `%XX`."""
    raw = message.encode()
    if raw.isascii() and raw.isalnum():
        return raw
    return b"".join(
        bytes((byte,)) if 0x20 <= byte <= 0x7E and byte != 0x25 else b"%%%02X" % byte
        for byte in raw
    )
