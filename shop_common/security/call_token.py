"""Client interceptors that send this service's own bearer token with every call (where
TLS does not name the service). Whatever `authorization` a call carried is replaced: a
service acts as itself, never with a token it was handed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from shop_common.security.token_file import TokenFile


def _with_token(details: grpc.aio.ClientCallDetails, token: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(
        *((k, v) for k, v in (details.metadata or ()) if k != "authorization"),
        ("authorization", f"Bearer {token}"),
    )
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


if TYPE_CHECKING:  # grpc-stubs make them generic; at run time they are not
    _UnaryUnary = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStream = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
else:
    _UnaryUnary = grpc.aio.UnaryUnaryClientInterceptor
    _UnaryStream = grpc.aio.UnaryStreamClientInterceptor


def service_token_interceptors(token: TokenFile) -> list[Any]:
    """The interceptors for a channel (grpc.aio files an interceptor under one kind only)."""
    return [_UnaryUnaryToken(token), _UnaryStreamToken(token)]


class _UnaryUnaryToken(_UnaryUnary):
    def __init__(self, token: TokenFile) -> None:
        self._token = token

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(_with_token(client_call_details, self._token.token), request)


class _UnaryStreamToken(_UnaryStream):
    def __init__(self, token: TokenFile) -> None:
        self._token = token

    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(_with_token(client_call_details, self._token.token), request)
