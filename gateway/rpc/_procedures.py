"""The procedures the RPC protocols serve: every unary and server-streaming method of the
served services, at its gRPC path `/<package>.<Service>/<Method>`, read from the
descriptors. Nothing is configured per method: a method marked `idempotency_level =
NO_SIDE_EFFECTS` may also be called with GET (Connect), and when its HTTP rule's GET answers
a resource with an `etag`, that is the response's `ETag`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from gateway.routes import Route
from gateway.rpc._codecs import JsonCodec, ProtoCodec
from gateway.semantics import Semantics

NO_SIDE_EFFECTS = descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS

EtagOf = Callable[[Message], bytes | None]


@dataclass(frozen=True, slots=True, eq=False)
class Procedure:
    path: str
    """`/package.Service/Method`: the HTTP path, and the gRPC method called."""
    method: MethodDescriptor
    server_streaming: bool
    http_methods: frozenset[str]
    """POST; and GET for a unary method without side effects."""
    json: JsonCodec
    proto: ProtoCodec
    etag_of: EtagOf | None
    """A response's `ETag` (None: it has none)."""

    def codec(self, encoding: str) -> JsonCodec | ProtoCodec:
        """The codec the protocols name `encoding` (`json`, else `proto`)."""
        return self.json if encoding == "json" else self.proto

    def __str__(self) -> str:
        return self.path


def procedures_of(
    services: Iterable[ServiceDescriptor],
    semantics: Mapping[Route, Semantics],
    *,
    strict: bool = False,
) -> dict[str, Procedure]:
    """Each servable method of `services` by its path. `semantics`: the REST routes', where a
    read's etag is found."""
    etags = {
        route.method.full_name: _etag_reader(route, rule)
        for route, rule in semantics.items()
        if route.http_method == "GET" and rule.etag_out
    }
    found: dict[str, Procedure] = {}
    for service in services:
        for method in service.methods:
            if method.client_streaming:
                continue  # HTTP/1.1 and a browser's fetch cannot stream a request
            reads = method.GetOptions().idempotency_level == NO_SIDE_EFFECTS
            unary = not method.server_streaming
            path = f"/{service.full_name}/{method.name}"
            found[path] = Procedure(
                path=path,
                method=method,
                server_streaming=method.server_streaming,
                http_methods=frozenset({"GET", "POST"} if reads and unary else {"POST"}),
                json=JsonCodec(method.input_type, method.output_type, strict=strict),
                proto=ProtoCodec(method.input_type, method.output_type),
                etag_of=etags.get(method.full_name),
            )
    return found


def _etag_reader(route: Route, semantics: Semantics) -> EtagOf:
    field = route.response_body

    def etag_of(response: Message) -> bytes | None:
        return semantics.etag_of(getattr(response, field) if field else response)

    return etag_of
