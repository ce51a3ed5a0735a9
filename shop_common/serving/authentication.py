"""How a call's caller is established, chosen once at start-up by `SHOP_AUTH`: development
identity (`dev`), or verified identity (`jwt`).

Verified identity, for each call:
- a bearer token is verified (`TokenVerifier`; a refusal is UNAUTHENTICATED with its
  reason). Its subject is a user, an admin when it grants the admin scope, or a service of
  the system when `SHOP_SERVICE_SUBJECTS` names it (a service's token, where TLS is off);
- without a token, the service named by the client's certificate (mutual TLS: its SPIFFE id
  in our trust domain), else anonymous.
A token always wins over the certificate: the gateway's certificate carries a user's token,
and the gateway itself has no rights.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import grpc

from shop_common.security import SecuritySettings, TokenVerifier, peer_service
from shop_common.serving import identity
from shop_common.serving.identity import ANONYMOUS, DEVELOPMENT_WARNING, Caller

log = logging.getLogger(__name__)

Metadata = Iterable[tuple[str, str | bytes]]

PROXIES = frozenset({"gateway"})
"""Parts of the system that only carry others' calls: a certificate of theirs proves the hop,
not a caller. A call the gateway forwards without a token is anonymous, as the README's
policy table says (UNAUTHENTICATED, so that the client knows to sign in), not a service."""
Stopper = Callable[[], Awaitable[None]]


class Authenticator(Protocol):
    async def authenticate(
        self, metadata: Metadata, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Caller:
        """The caller of the call, or Unauthenticated (Unavailable when keys are missing)."""


class DevelopmentIdentity:
    """`identity.authenticate`: believes what the metadata says (never in jwt mode)."""

    async def authenticate(
        self, metadata: Metadata, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Caller:
        return identity.authenticate(metadata)


class VerifiedIdentity:
    """Bearer tokens verified; without one, the client certificate's service or anonymous."""

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        service_subjects: Mapping[str, str],
        trust_domain: str | None,
    ) -> None:
        self._verifier = verifier
        self._services = service_subjects
        self._trust_domain = trust_domain
        """Of peers' certificates; None without TLS (no certificate to read)."""

    async def authenticate(
        self, metadata: Metadata, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Caller:
        token = identity.bearer_token(metadata)
        if token is None:
            if self._trust_domain is None:
                return ANONYMOUS
            service = peer_service(context, self._trust_domain)
            if service is None or service in PROXIES:
                return ANONYMOUS
            return Caller(subject=None, service=service)
        claims = await self._verifier.verify_async(token)
        service = self._services.get(claims.subject)
        if service is not None:
            return Caller(subject=None, service=service)
        return Caller(subject=claims.subject, admin=claims.is_admin)


async def _nothing() -> None:
    return None


async def start_authentication(security: SecuritySettings) -> tuple[Authenticator, Stopper]:
    """The mode's authenticator and what stops it; in jwt mode the issuer's keys are read
    first (JwksError if they cannot be) and then kept fresh in the background. Logs the mode
    once (development identity loudly)."""
    if security.jwt is None:
        log.warning(DEVELOPMENT_WARNING)
        return DevelopmentIdentity(), _nothing
    verifier = TokenVerifier(security.jwt)
    await verifier.refresh()
    fresh = asyncio.create_task(verifier.keep_fresh(), name="signing-keys")

    async def stop() -> None:
        fresh.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fresh

    tls = security.tls
    log.info(
        "identity: bearer tokens verified (issuer %s, audience %s); without one, %s",
        security.jwt.issuer,
        security.jwt.audience,
        "the client certificate's service, or anonymous" if tls else "anonymous",
    )
    authenticator = VerifiedIdentity(
        verifier,
        service_subjects=security.service_subjects,
        trust_domain=tls.trust_domain if tls else None,
    )
    return authenticator, stop
