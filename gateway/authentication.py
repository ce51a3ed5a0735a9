"""Bearer tokens verified at the edge (jwt mode), with the services' own settings and
library: a bad token is refused before its request is read (401, `WWW-Authenticate: Bearer
error="invalid_token"`, the reason in the Status), and the verified subject is known to
what comes later (`verified_subject()`: per-caller limits). A request without a token goes
on, anonymous: the services decide what an anonymous caller may do. The token itself is
forwarded untouched: the services verify it again, and act for its subject, never for the
gateway (whose own certificate carries no rights).

In dev mode there is no `EdgeAuthentication` at all: nothing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging

import grpc

from gateway.errors import RequestError
from gateway.headers import RequestHeaders
from shop_common.domain import Unauthenticated, Unavailable
from shop_common.security import Claims, JwtSettings, TokenVerifier

log = logging.getLogger(__name__)

_subject: contextvars.ContextVar[str | None] = contextvars.ContextVar("subject", default=None)


def verified_subject() -> str | None:
    """The subject of the request's verified token; None for an anonymous request, and in
    dev mode (where nothing is verified)."""
    return _subject.get()


def _refusal(error: Unauthenticated) -> RequestError:
    # RFC 6750 3.1: the error code, and a description without anything from the token.
    challenge = f'Bearer error="invalid_token", error_description="{error.message}"'
    return RequestError(
        error.reason,
        None,
        error.message,
        code=grpc.StatusCode.UNAUTHENTICATED,
        headers=[(b"www-authenticate", challenge.encode())],
    )


def _malformed() -> RequestError:
    return RequestError(
        "MALFORMED_AUTHORIZATION",
        None,
        "authorization must be one 'Bearer <token>'",
        code=grpc.StatusCode.UNAUTHENTICATED,
        headers=[(b"www-authenticate", b'Bearer error="invalid_request"')],
    )


def bearer_of(headers: RequestHeaders) -> str | None:
    """The token of the request's one `Authorization: Bearer <token>`; None without one."""
    found: str | None = None
    for name, value in headers.metadata:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            token = token.strip()
            if found is not None or scheme.lower() != b"bearer" or not token:
                raise _malformed()
            if not token.isascii():
                raise _refusal(Unauthenticated("the token is not a JWT", reason="TOKEN_INVALID"))
            found = token.decode("ascii")
    return found


class EdgeAuthentication:
    """`start()` reads the issuer's keys (JwksError if it cannot) and keeps them fresh until
    `stop()`; `verify` checks one request's token."""

    def __init__(self, settings: JwtSettings) -> None:
        self._verifier = TokenVerifier(settings)
        self._fresh: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._verifier.refresh()
        self._fresh = asyncio.create_task(self._verifier.keep_fresh(), name="signing-keys")

    async def stop(self) -> None:
        if self._fresh is not None:
            self._fresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fresh

    def remembers(self, headers: RequestHeaders) -> bool:
        """Whether the request's token was verified before and is still good (checking it
        again costs nothing); False without one, or when the header is malformed."""
        try:
            token = bearer_of(headers)
        except RequestError:
            return False
        return token is not None and self._verifier.remembers(token)

    async def verify(self, headers: RequestHeaders) -> Claims | None:
        """The request's verified claims (None: anonymous), also as `verified_subject()`;
        a RequestError (401, or 503 while no key set could be read) for a bad token."""
        token = bearer_of(headers)
        if token is None:
            _subject.set(None)
            return None
        try:
            claims = await self._verifier.verify_async(token)
        except Unauthenticated as error:
            raise _refusal(error) from None
        except Unavailable as error:
            raise RequestError(
                error.reason, None, error.message, code=grpc.StatusCode.UNAVAILABLE
            ) from None
        _subject.set(claims.subject)
        return claims
