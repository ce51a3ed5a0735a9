"""A client channel with this process's identity: plaintext, or mutual TLS with its
certificate, rebuilt when the certificate files change (grpc cannot swap a channel's
credentials).

Stubs keep the multicallables a channel gave them: those of a `RenewingChannel` call through
whichever channel is current, so that stubs made once follow every rebuild. A replaced
channel is closed after `CLOSE_GRACE_SECONDS` (its calls may finish; a watch still open then
ends with CANCELLED and its client resumes on the new channel).

Calls, not connections, are spread: the channel connects to every address its target
resolves to (`dns:///user-svc-grpc:50051`, a headless Service's name, resolves to every
replica; `ipv4:10.0.0.1:50051,10.0.0.2:50051` names them) and picks them in turn for each
call (`round_robin`; grpc's default, `pick_first`, would send everything to one). A
replica that goes away is skipped until it is back; one that is added is found when the
name is resolved again: when a connection is lost, or closed by the server at its
`SHOP_GRPC_MAX_CONNECTION_AGE_SECONDS`.

The server is checked by host name only (grpc has no client-side SPIFFE check): its
certificate must name `server_name` (`user-svc`), whatever target is dialed (`localhost`,
an address list, a headless Service's name), so that another part's certificate is
refused. Without `server_name` it must name the target's host, and a target of addresses
(`ipv4:`, `ipv6:`, `unix:`), which names no host, is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import grpc

from shop_common.process import parse_target
from shop_common.security.client_tls import ClientCredentials
from shop_common.security.tls_settings import TlsSettings

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0
"""How often the certificate files are looked at."""
CLOSE_GRACE_SECONDS = 30.0
"""How long a replaced channel's calls may run on."""

Options = Sequence[tuple[str, Any]]

ROUND_ROBIN: dict[str, Any] = {"round_robin": {}}
"""The load-balancing policy of every channel, unless its service config names another."""


async def open_channel(
    target: str,
    options: Options,
    tls: TlsSettings | None,
    *,
    server_name: str | None = None,
    interceptors: Sequence[Any] = (),
) -> grpc.aio.Channel:
    """A plaintext channel to `target` without `tls`; with it, a `RenewingChannel` whose
    server must present a certificate for `server_name` (or the target's host, if None).
    Calls go round robin over the target's addresses (`options` may carry a service config
    of their own: the policy is added to it). Raises OSError or ValueError when the
    certificate files are unusable, ValueError with TLS when no name is to be checked."""
    options = balanced(options)
    if tls is None:
        return grpc.aio.insecure_channel(target, list(options), interceptors=list(interceptors))
    if server_name:
        options = [*options, ("grpc.ssl_target_name_override", server_name)]
    elif parse_target(target).host is None:
        raise ValueError(f"{target!r} names no host for TLS to check: give server_name")
    channel = RenewingChannel(target, options, ClientCredentials(tls), list(interceptors))
    await channel.start()
    return channel


def balanced(options: Options) -> list[tuple[str, Any]]:
    """`options` with `ROUND_ROBIN` in their service config (`grpc.service_config`, added
    if there is none; a policy it names already stays), and no service config looked up in
    DNS (TXT records) to replace it."""
    config: dict[str, Any] = {}
    rest = []
    for key, value in options:
        if key == "grpc.service_config":
            config = json.loads(value)
        else:
            rest.append((key, value))
    config.setdefault("loadBalancingConfig", [ROUND_ROBIN])
    return [
        *rest,
        ("grpc.service_config", json.dumps(config)),
        ("grpc.service_config_disable_resolution", 1),
    ]


class RenewingChannel(grpc.aio.Channel):
    """A secure channel to one target, built anew from `credentials` when they change."""

    def __init__(
        self,
        target: str,
        options: Options,
        credentials: ClientCredentials,
        interceptors: list[Any],
        *,
        poll_seconds: float | None = None,
    ) -> None:
        self._target = target
        self._options = list(options)
        self._credentials = credentials
        self._interceptors = interceptors
        self._poll_seconds = POLL_SECONDS if poll_seconds is None else poll_seconds
        self._channel: grpc.aio.Channel | None = None
        self.generation = 0
        """Counts the channels built; a multicallable made under another builds anew."""
        self._watcher: asyncio.Task[None] | None = None
        self._closing: dict[asyncio.Task[None], grpc.aio.Channel] = {}
        """Replaced channels, closing after their grace."""

    @property
    def current(self) -> grpc.aio.Channel:
        assert self._channel is not None, "start() has not run"
        return self._channel

    async def start(self) -> None:
        self._channel = await self._build()
        self._watcher = asyncio.create_task(self._watch(), name=f"tls-files-{self._target}")

    async def renew(self) -> None:
        """Builds the channel again from the files (they changed); the old one closes later."""
        old, self._channel = self._channel, await self._build()
        log.info("client certificate changed: new connections to %s use it", self._target)
        if old is not None:
            task = asyncio.create_task(old.close(CLOSE_GRACE_SECONDS))
            self._closing[task] = old
            task.add_done_callback(lambda done: self._closing.pop(done, None))

    async def _build(self) -> grpc.aio.Channel:
        credentials = await self._credentials.load()
        self.generation += 1
        return grpc.aio.secure_channel(
            self._target, credentials, self._options, interceptors=self._interceptors
        )

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                if await self._credentials.changed():
                    await self.renew()
            except (OSError, ValueError) as error:  # caught half-written: next time
                log.warning("client certificate not reloaded, the old one is used: %s", error)

    # grpc.aio.Channel

    async def __aenter__(self) -> RenewingChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close(None)

    async def close(self, grace: float | None = None) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for task, old in list(self._closing.items()):
            task.cancel()
            await old.close(None)  # no grace left: the process is stopping
        if self._channel is not None:
            await self._channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.current.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self.current.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self.current.channel_ready()

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _Delegate(self, "unary_unary", args, kwargs)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _Delegate(self, "unary_stream", args, kwargs)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _Delegate(self, "stream_unary", args, kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _Delegate(self, "stream_stream", args, kwargs)


class _Delegate:
    """A multicallable that calls through the channel current at each call."""

    __slots__ = ("_args", "_callable", "_generation", "_kind", "_kwargs", "_owner")

    def __init__(
        self, owner: RenewingChannel, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._owner = owner
        self._kind = kind
        self._args = args
        self._kwargs = kwargs
        self._generation = -1
        self._callable: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        owner = self._owner
        if self._generation != owner.generation:
            self._callable = getattr(owner.current, self._kind)(*self._args, **self._kwargs)
            self._generation = owner.generation
        return self._callable(*args, **kwargs)
