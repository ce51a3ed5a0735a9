"""Who is on the other end of a mutual-TLS connection: the service named by its certificate.

grpc puts a certificate's one SPIFFE URI SAN under `peer_spiffe_id` in the call's auth
context (and nothing there when the certificate has several URI SANs, or none)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import grpc

SPIFFE_ID_KEY = "peer_spiffe_id"


def spiffe_id(auth_context: Mapping[str, Iterable[bytes]]) -> str | None:
    """The peer's SPIFFE id, None without a (verified) client certificate naming one."""
    values = list(auth_context.get(SPIFFE_ID_KEY) or ())
    if len(values) != 1:
        return None
    return values[0].decode("utf-8", "replace")


def service_name(spiffe: str, trust_domain: str) -> str | None:
    """`order_svc` for `spiffe://<trust_domain>/order_svc`; None for another trust domain."""
    prefix = f"spiffe://{trust_domain}/"
    if not spiffe.startswith(prefix):
        return None
    name = spiffe[len(prefix) :]
    return name or None


def peer_service(context: grpc.aio.ServicerContext[Any, Any], trust_domain: str) -> str | None:
    """The calling service's name, from its certificate; None for a peer without a client
    certificate or from another trust domain."""
    found = spiffe_id(context.auth_context())
    return None if found is None else service_name(found, trust_domain)
