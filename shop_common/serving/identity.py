"""Who is calling: established once per call from metadata, readable by every handler.

A caller is a user (the subject of their token), an admin (a user with the admin grant), a
service of the system (`service`: the order service calls the user service), or anonymous.

Development identity is permissive: a call without `authorization` acts as a development
admin, `Bearer <subject>` is taken at its word (a user, not an admin), and `Bearer
service:<name>` is the service `<name>`. `serving.authentication` chooses, once, between this
and verified identity (JWT, mTLS); handlers only read `current_caller()`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from dataclasses import dataclass

from shop_common.domain import Unauthenticated


@dataclass(frozen=True, slots=True)
class Caller:
    subject: str | None
    """The authenticated user's subject, None for an anonymous caller or a service."""
    admin: bool = False
    """May act on every resource, and on behalf of any subject."""
    service: str | None = None
    """The system's service that calls (`order_svc`), None for a user or anonymous."""

    @property
    def is_anonymous(self) -> bool:
        return self.subject is None and self.service is None and not self.admin


ANONYMOUS = Caller(subject=None)
DEVELOPMENT_ADMIN = Caller(subject=None, admin=True)
SERVICE_PREFIX = "service:"
"""Development identity: `Bearer service:order_svc` is the order service."""
DEVELOPMENT_WARNING = (
    "SHOP_AUTH=dev, development identity: a call without credentials acts as an admin, and "
    "'Bearer <subject>' is believed without verification; never expose this port "
    "(production is SHOP_AUTH=jwt)"
)
_current: contextvars.ContextVar[Caller] = contextvars.ContextVar("caller", default=ANONYMOUS)


def current_caller() -> Caller:
    return _current.get()


ANONYMOUS_KEY = "anonymous"


def limit_key(caller: Caller) -> str | None:
    """The key `caller`'s use of a per-caller resource (open watches) is counted under;
    None for one not counted.

    - A user, an admin included, by subject: admin rights are rights over data, not over
      the server's capacity, and an admin's leaked token must not take it all.
    - Every anonymous caller together: they cannot be told apart, and what they may take
      altogether is bounded.
    - The system's services are not counted: their watches are the system's own (one per
      order-service replica on the user feed), so a cap would break it as it scales out;
      per-connection and process caps still hold.
    - Nor is the development admin, which every call without credentials is in dev mode
      (every local tool at once); dev mode is never exposed.
    """
    if caller.subject is not None:
        return f"subject:{caller.subject}"
    if caller.service is not None or caller.admin:
        return None
    return ANONYMOUS_KEY


def current_limit_key() -> str | None:
    """`limit_key` of the current call's caller."""
    return limit_key(_current.get())


def set_caller(caller: Caller) -> contextvars.Token[Caller]:
    return _current.set(caller)


def reset_caller(token: contextvars.Token[Caller]) -> None:
    _current.reset(token)


def bearer_token(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The credential of the call's `authorization: Bearer <credential>`, None without one;
    Unauthenticated (MALFORMED_AUTHORIZATION) for another scheme, an empty credential, or
    `authorization` sent twice (which one would count is not for the caller to leave open)."""
    found: str | None = None
    for key, value in metadata:
        if key == "authorization":
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            scheme, _, credential = text.partition(" ")
            credential = credential.strip()
            if found is not None or scheme.lower() != "bearer" or not credential:
                raise Unauthenticated(
                    "authorization must be one 'Bearer <token>'", reason="MALFORMED_AUTHORIZATION"
                )
            found = credential
    return found


def authenticate(metadata: Iterable[tuple[str, str | bytes]]) -> Caller:
    """The caller named by the `authorization` metadata (development identity)."""
    credential = bearer_token(metadata)
    if credential is None:
        return DEVELOPMENT_ADMIN
    if credential.startswith(SERVICE_PREFIX):
        return Caller(subject=None, service=credential.removeprefix(SERVICE_PREFIX))
    return Caller(subject=credential)
