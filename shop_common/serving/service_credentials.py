"""How a service presents itself on its own calls to another service of the system.

The order service calls the user service (GetUser, ListUsers, WatchUsers) as itself, never
with its caller's credentials: a `CallMetadata` provider, chosen once at wiring, gives the
metadata each such call carries. Development identity's is `Bearer service:<name>`; a
verifying deployment passes a provider of service tokens, or one that sends nothing when
the channel's mTLS certificate already says who calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from shop_common.serving.identity import SERVICE_PREFIX

CallMetadata = Callable[[], Sequence[tuple[str, str]]]
"""The metadata of one outgoing call (asked for each call: a token may be renewed)."""


_NONE: Sequence[tuple[str, str]] = ()


def channel_credentials() -> Sequence[tuple[str, str]]:
    """Verified identity: nothing per call, the channel says who calls (its mTLS
    certificate, or the service token its interceptors add)."""
    return _NONE


def development_service_credentials(name: str) -> CallMetadata:
    """Development identity: `authorization: Bearer service:<name>`."""
    metadata = (("authorization", f"Bearer {SERVICE_PREFIX}{name}"),)
    return lambda: metadata
