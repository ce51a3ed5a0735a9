"""What one client may take of a server's gRPC transport: message sizes, streams per
connection, how often it may ping, how long its connection may live. gRPC core's channel
arguments, under names and defaults a grpc-go or Envoy operator recognises, read once from
`SHOP_GRPC_*` (times in seconds, as every other setting here).

(Watches are capped per connection and per process by the feed: `FeedSettings`.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shop_common.process import ConfigError, flag, number, whole

MIB = 1024 * 1024
INT_MAX = 2**31 - 1
"""gRPC core's channel arguments are C ints."""
MAX_SECONDS = INT_MAX // 1000
"""The longest time a channel argument in milliseconds can hold (about 24 days)."""

MIN_RECEIVE_BYTES = 64 * 1024
"""Below this, legitimate requests are refused (an order of 100 items is about 10 KiB)."""
MIN_SEND_BYTES = 2 * MIB
"""A watch response carries up to about 1 MB of change data (`feed.watch`) plus one change;
list pages are smaller."""

CLIENT_KEEPALIVE_SECONDS = 30.0
"""How often our own clients (the order service's channel to the user service) ping a
connection that carries calls, unless the server permits no pings that often."""
CLIENT_KEEPALIVE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """The transport limits of every gRPC server of the system.

    Defaults, and why (grpc-go's names in brackets):
    - messages of 4 MiB both ways: the default for receiving of gRPC and grpc-go
      (`MaxRecvMsgSize`), and the gateway's body limit; sending is capped too (both would
      send any size) so that a response no default client accepts fails here, clearly.
    - 1000 concurrent streams per connection (`MaxConcurrentStreams`; gRPC, grpc-go and
      Envoy set no limit, Go's HTTP/2 server 250, Envoy's edge guidance 100): the value
      Kubernetes gives API servers whose client is a proxy multiplexing many long-running
      watches into one connection, which is what the gateway does. Beyond it a client's new
      calls wait for a stream to end (HTTP/2 flow control, not an error).
    - keepalive enforcement (`EnforcementPolicy`): pings no more often than every 10 s
      (grpc-go's floor for a client's keepalive time, so any grpc-go client's legal setting
      passes; gRPC's default is 5 min, which fails grpc-go clients set to 10 s), also on a
      connection with no call (our clients keep idle connections warm; the interval still
      binds), and a connection that breaks this 3 times running (2 strikes forgiven, gRPC's
      default) is closed with GOAWAY ENHANCE_YOUR_CALM `too_many_pings`.
    - the server pings an idle connection every 60 s and closes it when no answer comes
      within 20 s (`ServerParameters.Time/Timeout`; gRPC's default is 2 h): a client that
      vanished without closing its connection frees its watches (and their slots) within
      about 80 s, not hours.
    - no maximum idle time or age (as gRPC and grpc-go): connections are cheap and
      clients reconnect anyway. Behind an L4 load balancer, which balances connections not
      calls, set an age (say 300 s; gRPC adds ±10% jitter) so that clients reconnect and
      spread over new replicas: at that age the server sends GOAWAY, new calls go to a new
      connection, and calls in flight get the grace period (default 60 s, the gateway's
      longest deadline) before the connection is closed. A watch is cut then (UNAVAILABLE),
      and its client resumes from its last revision on the new connection: without a
      finite grace, watches would never move.
    """

    max_receive_bytes: int = 4 * MIB
    max_send_bytes: int = 4 * MIB
    max_concurrent_streams: int = 1000
    """Per connection; calls beyond wait for a stream to end."""
    min_ping_interval_seconds: float = 10.0
    """A client's pings closer than this are strikes (unless the server sent data since)."""
    max_ping_strikes: int = 2
    """Strikes forgiven; the next one closes the connection (0: never closed)."""
    permit_keepalive_without_calls: bool = True
    """Whether a connection with no call may be pinged (both ways)."""
    keepalive_time_seconds: float = 60.0
    """The server pings a connection quiet for this long."""
    keepalive_timeout_seconds: float = 20.0
    """... and closes it if the ping is not answered within this."""
    max_connection_idle_seconds: float = 0.0
    """A connection with no call for this long gets GOAWAY (0: never)."""
    max_connection_age_seconds: float = 0.0
    """A connection this old gets GOAWAY (±10% jitter; 0: never)."""
    max_connection_age_grace_seconds: float = 60.0
    """How long calls in flight may go on after the age's GOAWAY."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServerLimits:
        return cls(
            max_receive_bytes=whole(
                env,
                "SHOP_GRPC_MAX_RECEIVE_BYTES",
                4 * MIB,
                minimum=MIN_RECEIVE_BYTES,
                maximum=INT_MAX,
            ),
            max_send_bytes=whole(
                env, "SHOP_GRPC_MAX_SEND_BYTES", 4 * MIB, minimum=MIN_SEND_BYTES, maximum=INT_MAX
            ),
            max_concurrent_streams=whole(
                env, "SHOP_GRPC_MAX_CONCURRENT_STREAMS", 1000, minimum=2, maximum=INT_MAX
            ),
            min_ping_interval_seconds=_seconds(env, "SHOP_GRPC_MIN_PING_INTERVAL_SECONDS", 10.0),
            max_ping_strikes=whole(env, "SHOP_GRPC_MAX_PING_STRIKES", 2, maximum=INT_MAX),
            permit_keepalive_without_calls=flag(
                env, "SHOP_GRPC_PERMIT_KEEPALIVE_WITHOUT_CALLS", True
            ),
            keepalive_time_seconds=_seconds(
                env, "SHOP_GRPC_KEEPALIVE_TIME_SECONDS", 60.0, minimum=1.0
            ),
            keepalive_timeout_seconds=_seconds(
                env, "SHOP_GRPC_KEEPALIVE_TIMEOUT_SECONDS", 20.0, minimum=1.0
            ),
            max_connection_idle_seconds=_seconds(env, "SHOP_GRPC_MAX_CONNECTION_IDLE_SECONDS", 0),
            max_connection_age_seconds=_seconds(env, "SHOP_GRPC_MAX_CONNECTION_AGE_SECONDS", 0),
            max_connection_age_grace_seconds=_seconds(
                env, "SHOP_GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS", 60.0
            ),
        )

    def server_options(self) -> list[tuple[str, int]]:
        """The channel arguments of a server with these limits."""
        options = [
            ("grpc.max_receive_message_length", self.max_receive_bytes),
            ("grpc.max_send_message_length", self.max_send_bytes),
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            ("grpc.http2.min_ping_interval_without_data_ms", _ms(self.min_ping_interval_seconds)),
            ("grpc.http2.max_ping_strikes", self.max_ping_strikes),
            ("grpc.keepalive_permit_without_calls", int(self.permit_keepalive_without_calls)),
            ("grpc.keepalive_time_ms", _ms(self.keepalive_time_seconds)),
            ("grpc.keepalive_timeout_ms", _ms(self.keepalive_timeout_seconds)),
        ]
        # Left out, gRPC's default is "never".
        if self.max_connection_idle_seconds:
            options.append(("grpc.max_connection_idle_ms", _ms(self.max_connection_idle_seconds)))
        if self.max_connection_age_seconds:
            options += [
                ("grpc.max_connection_age_ms", _ms(self.max_connection_age_seconds)),
                ("grpc.max_connection_age_grace_ms", _ms(self.max_connection_age_grace_seconds)),
            ]
        return options

    def client_options(self) -> list[tuple[str, int]]:
        """The channel arguments of our own client of a server with these limits (every
        service reads the same `SHOP_GRPC_*`): messages within them both ways, and keepalive
        pings well within what the server permits, so that it never closes the connection."""
        keepalive = max(CLIENT_KEEPALIVE_SECONDS, 2 * self.min_ping_interval_seconds)
        return [
            ("grpc.max_send_message_length", self.max_receive_bytes),
            ("grpc.max_receive_message_length", self.max_send_bytes),
            ("grpc.keepalive_time_ms", _ms(keepalive)),
            ("grpc.keepalive_timeout_ms", _ms(CLIENT_KEEPALIVE_TIMEOUT_SECONDS)),
        ]


def _seconds(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    value = number(env, name, default, minimum=minimum)
    if value > MAX_SECONDS:
        raise ConfigError(f"{name}={value!r} must be at most {MAX_SECONDS} (seconds)")
    return value


def _ms(seconds: float) -> int:
    return min(INT_MAX, round(seconds * 1000))
