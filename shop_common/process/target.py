"""Where a process dials another: a gRPC target, checked at start as grpc core would read it.

grpc takes a URI whose scheme names a resolver (`dns:///user-svc:50051`,
`ipv4:10.0.0.1:50051,10.0.0.2:50051`, `ipv6:[::1]:50051`, `unix:/run/shop/user.sock`) and
anything else as a name to look up in DNS (`localhost:50051` is `dns:///localhost:50051`).
A target it cannot use is not an error at start there: the channel stays in
TRANSIENT_FAILURE and every call fails UNAVAILABLE, long after the typo. So it is read here,
by the same rules, and a bad one stops the process with the variable's name.

A port is required (grpc's DNS default, 443, is never ours), numeric, from 1 to 65535.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from shop_common.process.env import ConfigError, text

SCHEMES = ("dns", "ipv4", "ipv6", "unix", "unix-abstract")
"""The resolvers grpc core registers (bar `xds`, which needs a bootstrap file we never set)."""
FORMS = "host:port, dns:///host:port, ipv4:ip:port[,ip:port...], ipv6:[ip]:port[,...] or unix:path"
UNIX_PATH_BYTES = 107
"""`sun_path` is 108 bytes with its terminating NUL."""

_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(.*)", re.DOTALL)
_HOST = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")


class BadTarget(ValueError):
    """What is wrong with a target, in a few words."""


@dataclass(frozen=True, slots=True)
class Target:
    """A target as grpc reads it: its resolver and what that resolver is given."""

    scheme: str
    """`dns` for a plain `host:port`, as for grpc."""
    addresses: tuple[str, ...]
    """`host:port` for `dns` (one), each `ip:port` of an `ipv4:`/`ipv6:` list, each path of
    `unix:`."""

    @property
    def host(self) -> str | None:
        """The name looked up in DNS (what grpc checks a server's certificate against unless
        told otherwise); None for a list of addresses or sockets, which name no one."""
        if self.scheme != "dns":
            return None
        return self.addresses[0].rpartition(":")[0].strip("[]")


def parse_target(value: str) -> Target:
    """`value` read as grpc core reads a target; raises BadTarget if grpc could not use it."""
    if not value:
        raise BadTarget("it is empty")
    if any(c.isspace() for c in value):
        raise BadTarget("it has white space")
    match = _URI.fullmatch(value)
    scheme = match[1] if match else ""
    if scheme not in SCHEMES:
        if scheme.lower() in SCHEMES:
            raise BadTarget(f"the scheme is {scheme.lower()!r}, in lower case")
        if "://" in value:
            raise BadTarget(f"grpc knows no {scheme or value.partition(':')[0]!r} scheme")
        return Target("dns", (_host_port(value),))  # as grpc: dns:///value
    assert match is not None
    rest = match[2]
    authority = ""
    if rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        rest = slash + path
    if scheme == "dns":
        if authority:
            _host_port(authority, port_required=False)  # the DNS server to ask
        return Target("dns", (_host_port(rest.removeprefix("/")),))
    if authority:
        raise BadTarget(f"{scheme}: takes no authority (write {scheme}:ADDRESS, no //)")
    parts = rest.split(",")
    if scheme == "ipv4":
        return Target(scheme, tuple(_ip_port(p.removeprefix("/"), 4) for p in parts))
    if scheme == "ipv6":
        return Target(scheme, tuple(_ip_port(p.removeprefix("/"), 6) for p in parts))
    return Target(scheme, tuple(_socket_path(p, scheme) for p in parts))


def target(env: Mapping[str, str], name: str, default: str) -> str:
    """A gRPC target to dial (see the module): `default` when unset; as written otherwise,
    for grpc to resolve."""
    value = text(env, name, default)
    try:
        parse_target(value)
    except BadTarget as error:
        raise ConfigError(f"{name}={value!r} is not a gRPC target ({FORMS}): {error}") from None
    return value


def _port(port: str, where: str) -> str:
    if not port:
        raise BadTarget(f"{where!r} has no port")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise BadTarget(f"{where!r}: the port must be a number from 1 to 65535")
    return port


def _host_port(value: str, *, port_required: bool = True) -> str:
    """`host:port`, `[ipv6]:port`; the port may be left out where grpc has a default."""
    if value.startswith("["):
        host, bracket, port = value[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            raise BadTarget(f"{value!r}: an IPv6 address is written [address]:port")
        _ip(host, 6, value)
        port = port[1:]
    else:
        host, colon, port = value.rpartition(":")
        if not colon:
            host, port = value, ""
        if ":" in host:
            raise BadTarget(f"{value!r}: an IPv6 address is written [address]:port")
        if not host or not _HOST.fullmatch(host):
            raise BadTarget(f"{value!r}: {host!r} is not a host name or address")
    if port or port_required:
        _port(port, value)
    return value


def _ip_port(value: str, version: int) -> str:
    if not value:
        raise BadTarget(f"an empty address in the ipv{version}: list")
    if version == 6:
        if not value.startswith("["):
            raise BadTarget(f"{value!r}: an ipv6: address is written [address]:port")
        return _host_port(value)
    host, _, port = value.rpartition(":")
    _ip(host or value, 4, value)
    _port(port if host else "", value)
    return value


def _ip(host: str, version: int, where: str) -> None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise BadTarget(f"{where!r}: {host!r} is not an IPv{version} address") from None
    if address.version != version:
        raise BadTarget(f"{where!r}: {host!r} is not an IPv{version} address")


def _socket_path(path: str, scheme: str) -> str:
    if not path:
        raise BadTarget(f"{scheme}: needs a socket path")
    if len(path.encode()) > UNIX_PATH_BYTES:
        raise BadTarget(f"the socket path is longer than {UNIX_PATH_BYTES} bytes")
    return path
