"""What a case expects, and the check of each part against what came back: the HTTP status
and headers, the body as each protocol frames it (a Connect message or error, a Connect
stream, a gRPC-Web response), and what the backend received.

The checks read the body as it came over the wire (no content decoding by the client), so
that compression is seen, and they judge it by the specifications' rules, not by the
gateway's own helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import orjson
from google.protobuf import any_pb2, descriptor_pool, json_format
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import status_pb2

from tests.gateway.fakes import Recorder
from tests.gateway.rpc_conformance import wire

CONNECT_CODES = frozenset(
    {
        "canceled",
        "unknown",
        "invalid_argument",
        "deadline_exceeded",
        "not_found",
        "already_exists",
        "permission_denied",
        "resource_exhausted",
        "failed_precondition",
        "aborted",
        "out_of_range",
        "unimplemented",
        "internal",
        "unavailable",
        "data_loss",
        "unauthenticated",
    }
)
"""Connect's codes ("Only the codes below are valid: there are no user-defined codes")."""
WAIT = 5.0
"""How long a check waits for what the backend must see happen (never a bound on speed)."""


@dataclass(frozen=True)
class Answer:
    """A response as it came: status, headers, and the body's bytes undecoded."""

    status: int
    headers: httpx.Headers
    body: bytes

    def media_type(self) -> tuple[str, dict[str, str]]:
        """The Content-Type's type/subtype (lower case) and its parameters."""
        value = self.headers.get("content-type", "")
        kind, *params = (part.strip() for part in value.split(";"))
        parameters = {}
        for param in params:
            name, _, text = param.partition("=")
            parameters[name.strip().lower()] = text.strip().strip('"')
        return kind.lower(), parameters

    def content(self, gzip: bool | None) -> bytes:
        """The body decoded by its Content-Encoding; `gzip` True: it must be gzipped,
        False: it must not be encoded at all."""
        encoding = self.headers.get("content-encoding", "identity").lower()
        assert encoding in {"identity", "gzip"}, f"Content-Encoding {encoding!r}"
        if gzip is not None:
            assert (encoding == "gzip") is gzip, f"Content-Encoding {encoding!r}"
        if encoding == "gzip" and self.body:
            return wire.gunzipped(self.body)
        return self.body


class Body(Protocol):
    def check(self, answer: Answer) -> None: ...


def message_class(full_name: str) -> type[Message]:
    return GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(full_name))


def unpack(packed: any_pb2.Any) -> Message:
    message = message_class(packed.TypeName())()
    assert packed.Unpack(message)
    return message


def decode(kind: type[Message], data: bytes, codec: str) -> Message:
    message = kind()
    if codec == "json":
        json_format.Parse(data.decode("utf-8"), message)
    else:
        try:
            message.ParseFromString(data)
        except DecodeError as error:
            raise AssertionError(f"not a {kind.__name__}: {data!r}") from error
    return message


def _has_all(found: list[Message], expected: tuple[Message, ...]) -> None:
    missing = [message for message in expected if message not in found]
    assert not missing, f"details {missing} not among {found}"


@dataclass(frozen=True)
class Empty:
    """No body at all."""

    def check(self, answer: Answer) -> None:
        assert answer.body == b"", answer.body


@dataclass(frozen=True)
class ConnectError:
    """A Connect Error object: `code` one of `codes`, `message` a string (equal to
    `message`, or holding `mentions`, when given), and `details` each a `type` (a message's
    full name), a `value` (its binary form in unpadded base64) and an optional `debug` (the
    same message as JSON); the `details` given must be among them. As a unary response:
    `Content-Type: application/json`."""

    codes: frozenset[str]
    message: str | None = None
    mentions: str | None = None
    details: tuple[Message, ...] = ()
    may_be_empty: bool = False
    """A unary error's body "is either omitted or a JSON-serialized Error"."""

    def check(self, answer: Answer) -> None:
        if self.may_be_empty and not answer.body:
            return
        assert answer.media_type()[0] == "application/json", answer.headers
        self.check_json(orjson.loads(answer.content(None)))

    def check_json(self, error: Any) -> None:
        assert isinstance(error, dict), error
        code = error.get("code")
        assert code in CONNECT_CODES, f"not a Connect code: {code!r}"
        assert code in self.codes, f"code {code!r}, expected one of {sorted(self.codes)}"
        message = error.get("message", "")
        assert isinstance(message, str), error
        if self.message is not None:
            assert message == self.message
        if self.mentions is not None:
            assert self.mentions in message, message
        details = error.get("details", [])
        assert isinstance(details, list), error
        _has_all([self._detail(detail) for detail in details], self.details)

    @staticmethod
    def _detail(detail: Any) -> Message:
        assert isinstance(detail, dict), detail
        kind, value = detail.get("type"), detail.get("value")
        assert isinstance(kind, str), detail
        assert "/" not in kind, f"type is not a full name: {kind!r}"
        assert isinstance(value, str), detail
        assert "=" not in value, f"value is not unpadded: {value!r}"
        assert not {"-", "_"} & set(value), f"value is not standard base64: {value!r}"
        message = message_class(kind).FromString(wire.b64_decode_any(value))
        if "debug" in detail:
            assert json_format.ParseDict(detail["debug"], message_class(kind)()) == message
        return message


@dataclass(frozen=True)
class ConnectMessage:
    """A successful unary response: the request's codec (`application/json` or
    `application/proto`) and `message` in it; `gzip` as for `Answer.content`."""

    message: Message
    codec: str = "json"
    gzip: bool | None = None

    def check(self, answer: Answer) -> None:
        kind, parameters = answer.media_type()
        assert kind == f"application/{self.codec}", answer.headers
        assert parameters.get("charset", "utf-8").lower() == "utf-8", parameters
        body = answer.content(self.gzip)
        assert decode(type(self.message), body, self.codec) == self.message


@dataclass(frozen=True)
class ConnectStream:
    """A Connect streaming response: `application/connect+<codec>`, envelopes of flag 0 (or 1,
    compressed with the `Connect-Content-Encoding` the response names), the last one alone
    flagged end-of-stream and holding `{"error"?: Error, "metadata"?: {key: [values]}}`.
    `messages` None: any number of `of`; `compressed` True: some message is compressed,
    False: none is."""

    of: type[Message]
    messages: tuple[Message, ...] | None = ()
    codec: str = "json"
    error: ConnectError | None = None
    metadata: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    compressed: bool | None = None

    def check(self, answer: Answer) -> None:
        assert answer.headers.get("content-type") == f"application/connect+{self.codec}", (
            answer.headers
        )
        assert answer.headers.get("content-encoding", "identity") == "identity"
        envelopes = wire.envelopes(answer.body)
        assert envelopes, "no end-of-stream message"
        *data, end = envelopes
        assert end.flags & ~wire.COMPRESSED == wire.END_STREAM, f"last flags {end.flags:#x}"
        assert all(e.flags in {0, wire.COMPRESSED} for e in data), [e.flags for e in data]
        encoding = answer.headers.get("connect-content-encoding", "identity")
        messages = [decode(self.of, self._payload(e, encoding), self.codec) for e in data]
        if self.messages is not None:
            assert messages == list(self.messages)
        if self.compressed is not None:
            assert any(e.flags & wire.COMPRESSED for e in data) is self.compressed
        self._check_end(orjson.loads(self._payload(end, encoding)))

    @staticmethod
    def _payload(envelope: wire.Envelope, encoding: str) -> bytes:
        if not envelope.flags & wire.COMPRESSED:
            return envelope.data
        assert encoding == "gzip", f"a compressed envelope, Connect-Content-Encoding {encoding}"
        return wire.gunzipped(envelope.data)

    def _check_end(self, end: Any) -> None:
        assert isinstance(end, dict), end
        if self.error is None:
            assert "error" not in end, end
        else:
            assert "error" in end, end
            self.error.check_json(end["error"])
        metadata = end.get("metadata", {})
        assert isinstance(metadata, dict), end
        for key, values in metadata.items():
            assert isinstance(values, list), end
            assert all(isinstance(value, str) for value in values), end
            assert key == key.lower() or key.lower() not in metadata, end
        lowered = {key.lower(): values for key, values in metadata.items()}
        for key, expected in self.metadata.items():
            assert lowered.get(key) == list(expected), end


def grpc_web_family(content_type: str) -> tuple[bool, str]:
    """Whether a gRPC-Web Content-Type is the text form, and its codec (`application/
    grpc-web` is `+proto`)."""
    kind = content_type.split(";")[0].strip().lower()
    base, _, codec = kind.partition("+")
    assert base in {"application/grpc-web", "application/grpc-web-text"}, content_type
    return base.endswith("-text"), codec or "proto"


@dataclass(frozen=True)
class GrpcWeb:
    """A gRPC-Web response to a request of `content_type`: HTTP 200, the same Content-Type
    (`application/grpc-web` and `+proto` being one), data frames (flag 0x00) of `of`, then
    one trailer frame (flag 0x80, nothing after it) or, with no frame at all, the trailers
    as headers (trailers-only); `grpc-status` one of `status`, `grpc-message`
    percent-encoded (decoding to `message` when given), `grpc-status-details-bin` a
    google.rpc.Status agreeing with both and holding `details` (None: not looked for), and
    the `trailers` given."""

    of: type[Message]
    content_type: str
    messages: tuple[Message, ...] | None = ()
    status: frozenset[int] = frozenset({0})
    message: str | None = None
    details: tuple[Message, ...] | None = None
    trailers: Mapping[str, str] = field(default_factory=dict)

    def check(self, answer: Answer) -> None:
        text, codec = grpc_web_family(self.content_type)
        assert grpc_web_family(answer.headers.get("content-type", "")) == (text, codec), (
            answer.headers
        )
        # PROTOCOL-WEB: "Full-body compression is supported … using standard Content-Encoding".
        content = answer.content(None)
        body = wire.grpc_web_text_decode(content) if text else content
        if body:
            *data, last = wire.envelopes(body)
            assert last.flags == wire.TRAILERS, f"the last frame's flags: {last.flags:#x}"
            assert all(frame.flags == 0 for frame in data), [frame.flags for frame in data]
            trailers = wire.trailer_block(last.data)
        else:
            data, trailers = [], {k.lower(): v for k, v in answer.headers.items()}
        messages = [decode(self.of, frame.data, codec) for frame in data]
        if self.messages is not None:
            assert messages == list(self.messages)
        self._check_trailers(trailers)

    def _check_trailers(self, trailers: dict[str, str]) -> None:
        assert "grpc-status" in trailers, f"no grpc-status in {trailers}"
        raw = trailers["grpc-status"]
        assert raw.isdigit(), raw
        assert raw == "0" or not raw.startswith("0"), f"a leading zero: {raw}"
        status = int(raw)
        assert status in self.status, f"grpc-status {status}, expected {sorted(self.status)}"
        message = wire.percent_decoded(trailers.get("grpc-message", ""))
        if self.message is not None:
            assert message == self.message
        details: list[Message] = []
        if "grpc-status-details-bin" in trailers:
            rich = status_pb2.Status.FromString(
                wire.b64_decode_any(trailers["grpc-status-details-bin"])
            )
            assert (rich.code, rich.message) == (status, message), rich
            details = [unpack(packed) for packed in rich.details]
        if self.details is not None:
            assert "grpc-status-details-bin" in trailers, trailers
            _has_all(details, self.details)
        for name, value in self.trailers.items():
            assert trailers.get(name) == value, trailers


@dataclass(frozen=True)
class Expect:
    """The response: its status (one of them), headers with exactly these values, headers
    whose comma-separated values hold these tokens (case-insensitive), headers present with
    any value, headers absent, and the body (None: not looked at)."""

    status: int | frozenset[int]
    body: Body | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()

    def check(self, answer: Answer) -> None:
        statuses = {self.status} if isinstance(self.status, int) else self.status
        assert answer.status in statuses, (
            f"HTTP {answer.status}, expected {sorted(statuses)}: {answer.headers} {answer.body!r}"
        )
        for name, value in self.headers.items():
            assert answer.headers.get(name) == value, f"{name}: {answer.headers.get(name)!r}"
        for name, tokens in self.lists.items():
            found = {
                token.strip().lower()
                for value in answer.headers.get_list(name)
                for token in value.split(",")
            }
            missing = [token for token in tokens if token.lower() not in found]
            assert not missing, f"{name} lacks {missing}: {sorted(found)}"
        for name in self.present:
            assert name in answer.headers, f"no {name} in {answer.headers}"
        for name in self.absent:
            assert name not in answer.headers, f"{name}: {answer.headers.get(name)!r}"
        if self.body is not None:
            self.body.check(answer)


@dataclass(frozen=True)
class Reached:
    """The backend got one call of `rpc`: with `request` (when given), with these metadata
    values, with a deadline `deadline` seconds away (low, high), and was cancelled."""

    rpc: str
    request: Message | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    deadline: tuple[float, float] | None = None
    cancelled: bool = False

    async def check(self, recorder: Recorder) -> None:
        assert [call.rpc for call in recorder.calls] == [self.rpc], recorder.calls
        call = recorder.calls[0]
        if self.request is not None:
            assert call.request == self.request
        for name, value in self.metadata.items():
            assert call.metadata.get(name) == value, call.metadata
        if self.deadline is not None:
            low, high = self.deadline
            assert call.time_remaining is not None, "no deadline"
            assert low < call.time_remaining <= high, call.time_remaining
        if self.cancelled:
            await asyncio.wait_for(recorder.cancelled.wait(), WAIT)


@dataclass(frozen=True)
class Untouched:
    """No backend call at all: a refusal changes nothing."""

    async def check(self, recorder: Recorder) -> None:
        assert recorder.calls == [], [call.rpc for call in recorder.calls]


UNTOUCHED = Untouched()
