"""A procedure's messages in each encoding the protocols name: proto3 JSON (`json`, the
gateway's own compiled codec) and binary (`proto`). Binary requests are checked here but go
to the service as the bytes that came, and binary responses come back as the service's
bytes: no message is built for them."""

from __future__ import annotations

from typing import Any, Protocol

import orjson
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from gateway.codec import BodyDecoder, ResponseEncoder
from gateway.errors import RequestError


class Codec(Protocol):
    name: str
    """`json` or `proto`: the protocols' name for it (content type suffix, GET `encoding`)."""
    raw: bool
    """Whether calls take and give bytes (`decode` returns bytes, `encode` takes them)."""

    def decode(self, data: bytes) -> Any:
        """The request to call with; `RequestError` says what is wrong with `data`."""
        ...

    def encode(self, response: Any) -> bytes: ...

    def message(self, response: Any) -> Message:
        """The response as a message (to read its etag)."""
        ...


class JsonCodec:
    __slots__ = ("_decoder", "_encoder", "_request")
    name = "json"
    raw = False

    def __init__(self, request: Descriptor, response: Descriptor, *, strict: bool) -> None:
        self._request = GetMessageClass(request)
        self._decoder = BodyDecoder(request, "*", ignore_unknown_fields=not strict)
        self._encoder = ResponseEncoder(response)

    def decode(self, data: bytes) -> Message:
        message = self._request()
        self._decoder.decode(data, message)
        return message

    def encode(self, response: Message) -> bytes:
        return orjson.dumps(self._encoder.to_dict(response))

    def message(self, response: Message) -> Message:
        return response


class ProtoCodec:
    __slots__ = ("_request", "_response")
    name = "proto"
    raw = True

    def __init__(self, request: Descriptor, response: Descriptor) -> None:
        self._request = GetMessageClass(request)
        self._response = GetMessageClass(response)

    def decode(self, data: bytes) -> bytes:
        try:
            self._request.FromString(data)
        except DecodeError as error:
            raise RequestError(
                "INVALID_PROTOBUF",
                "",
                f"the body is not a binary {self._request.DESCRIPTOR.full_name}: {error}",
            ) from None
        return data

    def encode(self, response: bytes) -> bytes:
        return response

    def message(self, response: bytes) -> Message:
        return self._response.FromString(response)
