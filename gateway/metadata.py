"""HTTP headers ↔ gRPC metadata, and `Grpc-Timeout` → the call's deadline.

In: `Authorization`, every `Grpc-Metadata-<key>` (prefix stripped; `-bin` keys base64), for the
RPC protocols also every custom header as it is (`Connect`, gRPC-Web: `X-Tenant: a` is the
metadata `x-tenant: a`; HTTP's, the browser's and the protocols' own headers are not custom),
`X-Forwarded-For` (with the client appended) and `X-Forwarded-Host` (or `Host`); the
request's `X-Request-Id` (or a new one), for tracing across the services' logs.
Out: response header metadata as `Grpc-Metadata-<key>`, trailers as `Grpc-Trailer-<key>`;
for the RPC protocols, as they carry it (headers as they are, Connect's unary trailers as
`Trailer-<key>`, gRPC-Web's in its trailer block), but the keys HTTP and browsers own.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import logging
import os
import re
from collections.abc import Iterable

from gateway.errors import RequestError
from gateway.headers import METADATA_PREFIX, RequestHeaders, invalid_header
from gateway.types import Headers

log = logging.getLogger(__name__)

MetadataValue = str | bytes
Metadata = list[tuple[str, MetadataValue]]

_KEY = re.compile(r"[0-9a-z_.\-]+\Z")
# Keys HTTP/2 or gRPC own: a client must not set them, a backend's are not passed on.
_RESERVED = frozenset({"content-type", "te", "host", "connection", "user-agent", "authority"})
# Keys the gateway sets itself: a client may not forge what the services log and trust.
_GATEWAY_KEYS = frozenset({"x-request-id", "x-forwarded-for", "x-forwarded-host"})
MAX_METADATA_BYTES = 8 * 1024
"""Metadata forwarded per call, at most (gRPC's default limit is 8 KiB, and its error names
the gateway's own keys)."""
_TIMEOUT = re.compile(r"([0-9]{1,8})([HMSmun])\Z")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}\Z")
# New request ids: 80 random bits per process, then a counter: unique without a uuid4 (and
# its system call) per request.
_ID_PREFIX = os.urandom(10).hex()
_ID_COUNTER = itertools.count()


def request_id_of(asked: bytes) -> str:
    """The request's `X-Request-Id` when it is a usable one (1 to 128 visible ASCII
    characters), else a new one; the caller tells a client whose id was refused."""
    if asked and _REQUEST_ID.match(asked):
        return asked.decode("ascii")
    return f"{_ID_PREFIX}{next(_ID_COUNTER):012x}"


def parse_timeout(text: str) -> float:
    """A gRPC timeout (`500m`, `2S`, `1H`: 1-8 digits and a unit) in seconds."""
    match = _TIMEOUT.match(text)
    if match is None:
        raise invalid_header("grpc-timeout", f"not a gRPC timeout: {text!r} (e.g. 500m or 2S)")
    return int(match.group(1)) * _TIMEOUT_UNITS[match.group(2)]


_NOT_CUSTOM = frozenset(
    {
        # HTTP's, and what the gateway reads for itself
        b"accept",
        b"accept-encoding",
        b"accept-language",
        b"authorization",  # forwarded as itself by `request_metadata`
        b"cache-control",
        b"expect",
        b"forwarded",
        b"idempotency-key",
        b"if-match",
        b"if-modified-since",
        b"if-none-match",
        b"if-range",
        b"if-unmodified-since",
        b"keep-alive",
        b"last-event-id",
        b"origin",
        b"pragma",
        b"priority",
        b"range",
        b"referer",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"via",
        # the browser's
        b"cookie",
        b"dnt",
        b"downlink",
        b"dpr",
        b"device-memory",
        b"ect",
        b"purpose",
        b"rtt",
        b"save-data",
        b"upgrade-insecure-requests",
        b"viewport-width",
        # the trace: carried by the gateway's own span
        b"baggage",
        b"traceparent",
        b"tracestate",
        # gRPC-Web clients'
        b"x-grpc-web",
        b"x-user-agent",
        # a client's address, as proxies on the way claim it: the gateway says it itself
        b"cf-connecting-ip",
        b"fastly-client-ip",
        b"true-client-ip",
        b"x-client-ip",
        b"x-cluster-client-ip",
        b"x-real-ip",
        *(key.encode() for key in _RESERVED | _GATEWAY_KEYS),
    }
)
"""Request headers that are never metadata: HTTP's, the browser's, a proxy's, the ones the
gateway reads or sets itself."""
_NOT_CUSTOM_PREFIXES = (
    b"access-control-",
    b"connect-",
    b"content-",
    b"grpc-",
    b"l5d-",
    b"proxy-",
    b"sec-",
    b"x-envoy-",
    b"x-forwarded-",
)
"""Families of headers that are never metadata: CORS's, the protocols', HTTP's content
headers, the browser's `Sec-*`, a mesh's own (Linkerd, Envoy), a proxy's."""


def custom_headers(raw: Iterable[tuple[bytes, bytes]]) -> Metadata:
    """The custom headers of a request as metadata (the RPC protocols carry metadata so):
    not HTTP's, the browser's, a proxy's, the protocols' or the gateway's own, nor one that
    `Connection` names (hop-by-hop). A header that cannot be metadata (its name, or a value
    that is not printable ASCII, or a `-bin` value that is not base64) is left out, not
    refused: a client rarely chooses every header its requests carry."""
    candidates: list[tuple[bytes, bytes]] = []
    hop: set[bytes] = set()
    for name, value in raw:
        if name in _NOT_CUSTOM or name.startswith(_NOT_CUSTOM_PREFIXES):
            if name == b"connection":
                hop.update(token.strip().lower() for token in value.split(b","))
            continue
        candidates.append((name, value))
    metadata: Metadata = []
    for name, value in candidates:  # most requests have none
        if name in hop:
            continue
        key = name.decode("latin-1")
        try:
            metadata.append(_incoming(key, value, key))
        except RequestError:
            continue
    return metadata


def request_metadata(
    headers: RequestHeaders,
    client: tuple[str, int] | None,
    custom: Metadata | None = None,
) -> tuple[Metadata, float | None]:
    """The metadata to send with the call, and the client's `Grpc-Timeout` if any;
    `custom`: headers sent as metadata under their own names (`custom_headers`)."""
    metadata: Metadata = custom or []
    timeout: float | None = None
    for name, value in headers.metadata:
        if name.startswith(METADATA_PREFIX):
            key = name[len(METADATA_PREFIX) :].decode("latin-1")
            metadata.append(_incoming(key, value, f"grpc-metadata-{key}"))
        elif name == b"authorization":
            metadata.append(("authorization", _ascii("authorization", value)))
        else:  # grpc-timeout
            timeout = parse_timeout(value.decode("latin-1"))
    size = sum(len(key) + len(value) for key, value in metadata) if metadata else 0
    forwarded_for = headers.get(b"x-forwarded-for") or b""
    forwarded_host = headers.get(b"x-forwarded-host") or b""
    host = headers.get(b"host") or b""
    if client is not None:
        chain = _ascii("x-forwarded-for", forwarded_for) if forwarded_for else ""
        size += _add(metadata, "x-forwarded-for", f"{chain}, {client[0]}" if chain else client[0])
    if forwarded_host or host:
        named = "x-forwarded-host" if forwarded_host else "host"
        size += _add(metadata, "x-forwarded-host", _ascii(named, forwarded_host or host))
    if size > MAX_METADATA_BYTES:
        raise invalid_header(
            "grpc-metadata-*",
            f"{size} bytes of headers to forward as metadata; at most {MAX_METADATA_BYTES}",
            http=431,
        )
    return metadata, timeout


def _add(metadata: Metadata, key: str, value: str) -> int:
    """Appends the pair; returns its size (summing it anew per request costs more)."""
    metadata.append((key, value))
    return len(key) + len(value)


def _incoming(key: str, value: bytes, header: str) -> tuple[str, MetadataValue]:
    """The metadata pair of the header named `header` that carries `key`."""
    if not _KEY.match(key) or key.startswith("grpc-") or key in _RESERVED | _GATEWAY_KEYS:
        raise invalid_header(header, f"{key!r} cannot be sent as gRPC metadata")
    if key.endswith("-bin"):
        try:
            return key, base64.b64decode(value + b"=" * (-len(value) % 4), validate=True)
        except binascii.Error:
            raise invalid_header(header, "a -bin value must be base64") from None
    return key, _ascii(header, value)


def _ascii(header: str, value: bytes) -> str:
    """`value` if it is printable ASCII (space to `~`); for ASCII text that is what
    `isprintable` tests, at less than half a regex's cost."""
    if not value.isascii() or not (text := value.decode("ascii")).isprintable():
        raise invalid_header(header, "gRPC metadata values are printable ASCII")
    return text


def response_headers(
    initial: Iterable[tuple[str, MetadataValue]] | None,
    trailing: Iterable[tuple[str, MetadataValue]] | None,
) -> Headers:
    """The backend's metadata as `Grpc-Metadata-*` and `Grpc-Trailer-*` headers."""
    return [
        *metadata_headers(initial, b"grpc-metadata-"),
        *metadata_headers(trailing, b"grpc-trailer-"),
    ]


_HTTP_OWNED = frozenset(
    {
        "age",
        "allow",
        "accept-post",
        "alt-svc",
        "cache-control",
        "clear-site-data",
        "connection",
        "date",
        "etag",
        "expires",
        "keep-alive",
        "last-modified",
        "link",
        "location",
        "refresh",
        "retry-after",
        "server",
        "set-cookie",
        "set-cookie2",
        "strict-transport-security",
        "transfer-encoding",
        "upgrade",
        "vary",
        "www-authenticate",
        "x-content-type-options",
        "x-frame-options",
        *_GATEWAY_KEYS,
    }
)
"""Keys a backend's metadata may not take as plain response headers (the RPC protocols'):
HTTP's own framing and caching, what a browser acts on (cookies, redirects, security
policies), and what the gateway sets itself."""
_HTTP_OWNED_PREFIXES = (
    "access-control-",
    "connect-",
    "content-",
    "cross-origin-",
    "proxy-",
    "ratelimit",
    "sec-",
    "trailer",
)


def metadata_headers(
    pairs: Iterable[tuple[str, MetadataValue]] | None, prefix: bytes = b""
) -> Headers:
    """The backend's metadata as headers named `prefix` + key (`-bin` values base64), but
    gRPC's own keys; with no prefix (as the RPC protocols send it), the keys HTTP and the
    browser give a meaning to are kept out too (`_HTTP_OWNED`). A value that is not
    printable ASCII is dropped: it could end a header line, or a gRPC-Web trailer block,
    and forge what follows."""
    headers: Headers = []
    for key, value in pairs or ():
        if key.startswith("grpc-") or key in _RESERVED:
            continue
        if not prefix and (key in _HTTP_OWNED or key.startswith(_HTTP_OWNED_PREFIXES)):
            continue
        if isinstance(value, bytes):
            raw = base64.b64encode(value)
        elif value.isascii() and value.isprintable():
            raw = value.encode("ascii")
        else:
            log.warning("dropped the metadata %r: its value is not printable ASCII", key)
            continue
        headers.append((prefix + key.encode("latin-1"), raw))
    return headers
