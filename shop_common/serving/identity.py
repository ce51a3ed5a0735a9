"""Who is calling: established once per call from metadata, readable by every handler.

Development mode is permissive: a call without `authorization` acts as a development
admin, and `Bearer <subject>` is taken at its word (a user, not an admin). The seam is
here so that a verifying authenticator (JWT, mTLS identity) replaces `authenticate`
without touching handlers.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from dataclasses import dataclass

from shop_common.domain import Unauthenticated


@dataclass(frozen=True, slots=True)
class Caller:
    subject: str | None
    """The authenticated principal, None for an anonymous caller."""
    admin: bool = False
    """May act on every resource, and on behalf of any subject."""

    @property
    def is_anonymous(self) -> bool:
        return self.subject is None


ANONYMOUS = Caller(subject=None)
DEVELOPMENT_ADMIN = Caller(subject=None, admin=True)
DEVELOPMENT_WARNING = (
    "development identity: a call without credentials acts as an admin, and "
    "'Bearer <subject>' is believed without verification; never expose this port"
)
_current: contextvars.ContextVar[Caller] = contextvars.ContextVar("caller", default=ANONYMOUS)


def current_caller() -> Caller:
    return _current.get()


def set_caller(caller: Caller) -> contextvars.Token[Caller]:
    return _current.set(caller)


def reset_caller(token: contextvars.Token[Caller]) -> None:
    _current.reset(token)


def authenticate(metadata: Iterable[tuple[str, str | bytes]]) -> Caller:
    """The caller named by the `authorization` metadata (development mode)."""
    for key, value in metadata:
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, credential = text.partition(" ")
            if scheme.lower() != "bearer" or not credential.strip():
                raise Unauthenticated(
                    "authorization must be 'Bearer <token>'", reason="MALFORMED_AUTHORIZATION"
                )
            return Caller(subject=credential.strip())
    return DEVELOPMENT_ADMIN
