"""Who a request counts against, for the per-caller limits (`ratelimit`, `stream_slots`).

- In jwt mode, the subject of the request's verified token, never anything unverified: a
  made-up token is refused (401) before it could be counted.
- In dev mode, the subject the bearer names, as development identity believes it (the
  services act for that subject, so it is who calls).
- Without credentials, the client's IP address (an IPv6 client by its /64, the block one
  host is usually given, so that it cannot pass for many callers). That is the address of
  the connection: `X-Forwarded-For` is anyone's to write and is not believed, so behind a
  proxy every anonymous caller is the proxy.

Keys are namespaced (`subject:`, `ip:`) so that no subject can pass for an address, and a
long one is replaced by its digest, so that what is kept per caller stays small.
"""

from __future__ import annotations

import hashlib
import socket
from typing import Final

from gateway.headers import RequestHeaders
from gateway.types import Scope

MAX_KEY_CHARS: Final = 128
"""A key longer than this is kept as its SHA-256 digest."""
_IPV4_MAPPED: Final = bytes(10) + b"\xff\xff"


def caller_key(subject: str | None, scope: Scope) -> str:
    """The key of a request by `subject` (None: anonymous), from the client in `scope`."""
    if subject is not None:
        key = "subject:" + subject
    else:
        client = scope.get("client")
        key = "ip:" + (_address_block(client[0]) if client else "unknown")
    if len(key) > MAX_KEY_CHARS:
        return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key


def claimed_subject(headers: RequestHeaders) -> str | None:
    """Dev mode: the subject of the request's one `Authorization: Bearer <subject>`, None
    without one or when it is not one bearer (the services refuse that themselves)."""
    found: str | None = None
    for name, value in headers.metadata:
        if name == b"authorization":
            if found is not None:
                return None
            scheme, _, credential = value.partition(b" ")
            credential = credential.strip()
            if scheme.lower() != b"bearer" or not credential:
                return None
            found = credential.decode("latin-1")
    return found


def _address_block(host: str) -> str:
    if ":" not in host:
        return host  # IPv4 (or a name a test server gave): the address itself
    try:  # inet_pton, not `ipaddress`: about 1 µs a request instead of 17
        packed = socket.inet_pton(socket.AF_INET6, host)
    except OSError:
        return host  # e.g. a link-local address with its zone
    if packed[:12] == _IPV4_MAPPED:  # an IPv4 client of a dual-stack listener
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    return socket.inet_ntop(socket.AF_INET6, packed[:8] + bytes(8)) + "/64"
