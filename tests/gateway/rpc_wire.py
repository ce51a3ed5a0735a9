"""The client side of the RPC protocols the gateway serves, written here from their specs
(connectrpc.com/docs/protocol, gRPC's PROTOCOL-WEB.md), not from the gateway's code: how
each protocol asks for a call (`request`), and what a response says in any of them
(`read`: the HTTP status, the gRPC code, message, details, trailers and messages), so that
a policy test can be one table over the protocols.

The protocols, by the name the tests give them: Connect unary in JSON, in binary, and over
GET; Connect streams; gRPC-Web binary, in JSON (what @connectrpc's gRPC-Web transport sends
with `useBinaryFormat: false`) and as base64 text, unary or streaming."""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote, urlencode

import grpc
import httpx
import orjson
from google.protobuf import any_pb2, json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

CONNECT_JSON: Final = "connect-json"
CONNECT_PROTO: Final = "connect-proto"
CONNECT_GET: Final = "connect-get"
CONNECT_STREAM: Final = "connect-stream"
GRPC_WEB: Final = "grpc-web"
GRPC_WEB_JSON: Final = "grpc-web+json"
GRPC_WEB_TEXT: Final = "grpc-web-text"

UNARY: Final = (CONNECT_JSON, CONNECT_PROTO, CONNECT_GET, GRPC_WEB, GRPC_WEB_JSON, GRPC_WEB_TEXT)
"""Every way to make a unary call (GET only for methods without side effects)."""
POSTED_UNARY: Final = (CONNECT_JSON, CONNECT_PROTO, GRPC_WEB, GRPC_WEB_JSON, GRPC_WEB_TEXT)
STREAMING: Final = (CONNECT_STREAM, GRPC_WEB, GRPC_WEB_TEXT)
"""Every way to open a server stream."""

_ENVELOPE = struct.Struct(">BI")
_CONNECT_CODES: Final = {
    code.name.lower() if code is not grpc.StatusCode.CANCELLED else "canceled": code.value[0]
    for code in grpc.StatusCode
}
"""Connect's code names (its spec's table) → gRPC's numbers."""
_CONTENT_TYPES: Final = {
    GRPC_WEB: "application/grpc-web+proto",
    GRPC_WEB_JSON: "application/grpc-web+json",
    GRPC_WEB_TEXT: "application/grpc-web-text",
}


def is_grpc_web(protocol: str) -> bool:
    return protocol.startswith("grpc-web")


def envelope(flags: int, data: bytes) -> bytes:
    return _ENVELOPE.pack(flags, len(data)) + data


def _json(message: Message) -> bytes:
    return json_format.MessageToJson(message, indent=None).encode()


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    content: bytes

    def send(self, http: httpx.AsyncClient, headers: dict[str, str] | None = None) -> httpx.Request:
        """The request to send with `http` (`build`: to stream it), `headers` added."""
        return http.build_request(
            self.method, self.url, headers={**self.headers, **(headers or {})}, content=self.content
        )


def request(protocol: str, procedure: str, message: Message, *, streaming: bool = False) -> Request:
    """How `protocol` calls `procedure` (`/package.Service/Method`) with `message`; a server
    stream when `streaming` (the gRPC-Web names then open a stream)."""
    if protocol == CONNECT_GET:
        query = urlencode({"connect": "v1", "encoding": "json", "message": _json(message)})
        return Request("GET", f"{procedure}?{query}", {}, b"")
    if protocol in (CONNECT_JSON, CONNECT_PROTO):
        assert not streaming, "Connect streams are CONNECT_STREAM"
        if protocol == CONNECT_JSON:
            return Request("POST", procedure, {"content-type": "application/json"}, _json(message))
        return Request(
            "POST", procedure, {"content-type": "application/proto"}, message.SerializeToString()
        )
    if protocol == CONNECT_STREAM:
        headers = {"content-type": "application/connect+json", "connect-protocol-version": "1"}
        return Request("POST", procedure, headers, envelope(0, _json(message)))
    body = envelope(0, _json(message) if protocol == GRPC_WEB_JSON else message.SerializeToString())
    if protocol == GRPC_WEB_TEXT:
        body = base64.b64encode(body)
    headers = {"content-type": _CONTENT_TYPES[protocol], "x-grpc-web": "1"}
    return Request("POST", procedure, headers, body)


@dataclass
class Outcome:
    """What a response says, whatever its protocol."""

    http_status: int
    headers: httpx.Headers
    code: int
    """gRPC's number (0: OK)."""
    message: str = ""
    details: list[any_pb2.Any] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)
    """The call's trailing metadata as the protocol carries it (gRPC-Web's trailer block,
    Connect's `Trailer-*` headers or end-of-stream `metadata`), `grpc-*` keys included."""

    @property
    def reason(self) -> str | None:
        """The ErrorInfo's reason, if the error has one."""
        for detail in self.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return str(info.reason)
        return None

    @property
    def error_info(self) -> error_details_pb2.ErrorInfo:
        info = error_details_pb2.ErrorInfo()
        assert any(d.Unpack(info) for d in self.details), self
        return info

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return next(c for c in grpc.StatusCode if c.value[0] == self.code)


def read(
    protocol: str, response_type: type[Message], response: httpx.Response, body: bytes
) -> Outcome:
    """The outcome of `response` (whose body is `body`) to a call made with `protocol`."""
    status, headers = response.status_code, response.headers
    if is_grpc_web(protocol):
        return _grpc_web(protocol, response_type, status, headers, body)
    if protocol == CONNECT_STREAM:
        return _connect_stream(response_type, status, headers, body)
    trailers = {
        name.removeprefix("trailer-"): value
        for name, value in headers.items()
        if name.startswith("trailer-")
    }
    if status != 200:
        assert headers["content-type"] == "application/json", (status, headers, body)
        return _connect_error(orjson.loads(body), status, headers, trailers)
    if headers["content-type"] == "application/proto":
        message = response_type.FromString(body)
    else:
        assert headers["content-type"] == "application/json", headers
        message = json_format.Parse(body, response_type())
    return Outcome(status, headers, 0, messages=[message], trailers=trailers)


def _connect_error(
    error: dict[str, object],
    status: int,
    headers: httpx.Headers,
    trailers: dict[str, str] | None = None,
) -> Outcome:
    details = []
    for detail in error.get("details") or []:  # type: ignore[attr-defined]
        value = detail["value"]
        raw = base64.b64decode(value + "=" * (-len(value) % 4))
        details.append(any_pb2.Any(type_url=f"type.googleapis.com/{detail['type']}", value=raw))
    code = _CONNECT_CODES[str(error["code"])]
    message = str(error.get("message", ""))
    return Outcome(status, headers, code, message, details, trailers=trailers or {})


def envelopes(body: bytes) -> list[tuple[int, bytes]]:
    """A body's enveloped parts: (flags, data) each; all of it must be envelopes."""
    parts = []
    while body:
        flags, length = _ENVELOPE.unpack_from(body)
        data = body[_ENVELOPE.size : _ENVELOPE.size + length]
        assert len(data) == length, f"a truncated envelope: {body!r}"
        parts.append((flags, data))
        body = body[_ENVELOPE.size + length :]
    return parts


def _connect_stream(
    response_type: type[Message], status: int, headers: httpx.Headers, body: bytes
) -> Outcome:
    assert status == 200, (status, body)
    assert headers["content-type"] == "application/connect+json", headers
    *data, (flags, end) = envelopes(body)
    assert flags == 2, f"no end-of-stream message last: {body!r}"
    assert all(f == 0 for f, _ in data), data
    messages = [json_format.Parse(d, response_type()) for _, d in data]
    ended = orjson.loads(end)
    trailers = {k: ", ".join(v) for k, v in (ended.get("metadata") or {}).items()}
    if "error" in ended:
        outcome = _connect_error(ended["error"], status, headers, trailers)
        outcome.messages = messages
        return outcome
    return Outcome(status, headers, 0, messages=messages, trailers=trailers)


def decode_text(body: bytes) -> bytes:
    """grpc-web-text: base64, possibly several padded runs; each 4 characters stand alone."""
    compact = b"".join(body.split())
    return b"".join(base64.b64decode(compact[i : i + 4]) for i in range(0, len(compact), 4))


def trailer_block(data: bytes) -> dict[str, str]:
    """gRPC-Web's trailers: `key: value` lines, CRLF after each."""
    found: dict[str, str] = {}
    for line in data.decode("latin-1").split("\r\n"):
        if line:
            name, _, value = line.partition(":")
            found[name.strip().lower()] = value.strip()
    return found


def _grpc_web(
    protocol: str,
    response_type: type[Message],
    status: int,
    headers: httpx.Headers,
    body: bytes,
) -> Outcome:
    assert status == 200, (status, headers, body)
    assert headers["content-type"] == _CONTENT_TYPES[protocol], headers
    if protocol == GRPC_WEB_TEXT:
        body = decode_text(body)
    *data, (flags, block) = envelopes(body)
    assert flags == 0x80, f"no trailers last: {body!r}"
    assert all(f == 0 for f, _ in data), data
    if protocol == GRPC_WEB_JSON:
        messages = [json_format.Parse(d, response_type()) for _, d in data]
    else:
        messages = [response_type.FromString(d) for _, d in data]
    trailers = trailer_block(block)
    details = []
    if "grpc-status-details-bin" in trailers:
        value = trailers["grpc-status-details-bin"]
        carried = status_pb2.Status.FromString(base64.b64decode(value + "=" * (-len(value) % 4)))
        details = list(carried.details)
    return Outcome(
        status,
        headers,
        int(trailers["grpc-status"]),
        unquote(trailers.get("grpc-message", "")),
        details,
        messages,
        trailers,
    )


async def call(
    http: httpx.AsyncClient,
    protocol: str,
    procedure: str,
    message: Message,
    response_type: type[Message],
    headers: dict[str, str] | None = None,
) -> Outcome:
    """One unary call, read to its end."""
    asked = request(protocol, procedure, message).send(http, headers)
    response = await http.send(asked)
    return read(protocol, response_type, response, response.content)
