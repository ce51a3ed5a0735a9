"""Who may call what: a service's policy table, and the denials it makes.

Each service states its table once (`user_svc/policy.py`, `order_svc/policy.py`): for every
RPC, whether users may call it, on their own resources only, and which of the system's
services may (on any resource). An admin may call everything, on every resource; an
anonymous caller nothing (UNAUTHENTICATED; health is not behind a policy). `admit` is the
function-level check, a dict lookup and a comparison, made before anything else; whether a
resource is the caller's is the use case's check, in the unit of work that reads the
resource (`Access.owns`), and made before its existence shows (AIP-211): another user's
resource and one that does not exist get the same PERMISSION_DENIED.

Every denial is logged once, at WARNING, naming the caller (subject or service, never a
credential), the RPC and the reason: a well-behaved client is never denied, so each one is
either a client's bug or somebody probing, and operators want to see both.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf.descriptor import ServiceDescriptor

from shop_common.domain import PermissionDenied, Unauthenticated
from shop_common.serving.identity import Caller, current_caller

log = logging.getLogger(__name__)

CREDENTIALS_REQUIRED = "CREDENTIALS_REQUIRED"
NOT_ALLOWED = "NOT_ALLOWED"


@dataclass(frozen=True, slots=True)
class Rule:
    """Who besides admins may call one RPC."""

    users: bool = False
    """Any signed-in user may, on their own resources only."""
    services: frozenset[str] = frozenset()
    """The system's services that may, on every resource."""


def describe(caller: Caller) -> str:
    """The caller as the logs name it: never a credential. Subjects and service names are
    the client's text (taken at its word in development identity), hence repr."""
    if caller.service is not None:
        return f"service {caller.service!r}"
    if caller.subject is not None:
        return f"{'admin' if caller.admin else 'subject'} {caller.subject!r}"
    return "admin" if caller.admin else "anonymous"


def _denied(rpc: str, caller: Caller, reason: str, message: str) -> None:
    log.warning("denied %s to %s: %s (%s)", rpc, describe(caller), reason, message)


@dataclass(frozen=True, slots=True)
class Access:
    """What one admitted call may touch."""

    rpc: str
    """`package.Service/Method`, for the logs."""
    caller: Caller
    everything: bool
    """An admin, or a service the RPC is open to: every resource. Otherwise a user: only
    the resources their subject owns."""

    @property
    def subject(self) -> str | None:
        return self.caller.subject

    def owns(self, owner: str | None) -> bool:
        """Whether the caller may act on a resource owned by the subject `owner` (None: a
        resource no subject owns, or one that does not exist)."""
        return self.everything or (owner is not None and owner == self.caller.subject)

    def deny(
        self, reason: str, message: str, metadata: Mapping[str, str] | None = None
    ) -> PermissionDenied:
        """The PERMISSION_DENIED to raise, logged (once: here)."""
        _denied(self.rpc, self.caller, reason, message)
        return PermissionDenied(message, reason=reason, metadata=metadata)


class Policy:
    """One service's table: a rule for every RPC of its descriptor, none missing."""

    def __init__(self, service: ServiceDescriptor, rules: Mapping[str, Rule]) -> None:
        methods = {m.name for m in service.methods}
        if set(rules) != methods:
            raise ValueError(
                f"{service.full_name}'s policy must name exactly its RPCs: missing "
                f"{sorted(methods - set(rules))}, unknown {sorted(set(rules) - methods)}"
            )
        self.service = service.full_name
        self.rules: Mapping[str, Rule] = dict(rules)
        self._paths = {name: f"{service.full_name}/{name}" for name in rules}

    def admit(self, rpc: str, caller: Caller | None = None) -> Access:
        """The call's access, or UNAUTHENTICATED (anonymous) / PERMISSION_DENIED (the RPC is
        not for this caller). `caller` defaults to the call's (`current_caller()`)."""
        who = current_caller() if caller is None else caller
        rule = self.rules[rpc]
        path = self._paths[rpc]
        if who.admin:
            return Access(path, who, everything=True)
        if who.service is not None:
            if who.service in rule.services:
                return Access(path, who, everything=True)
            message = f"the service {who.service!r} may not call {rpc}"
            _denied(path, who, NOT_ALLOWED, message)
            raise PermissionDenied(message, reason=NOT_ALLOWED)
        if who.subject is None:
            message = f"{rpc} needs credentials: send 'authorization: Bearer <token>'"
            _denied(path, who, CREDENTIALS_REQUIRED, message)
            raise Unauthenticated(message, reason=CREDENTIALS_REQUIRED)
        if rule.users:
            return Access(path, who, everything=False)
        callers = " and ".join(["admins", *sorted(rule.services)])
        message = f"{rpc} is for {callers} only"
        _denied(path, who, NOT_ALLOWED, message)
        raise PermissionDenied(message, reason=NOT_ALLOWED)
