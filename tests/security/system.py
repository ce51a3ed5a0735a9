"""The parts of the system started in-process with security settings: jwt mode with a test
issuer (tokens signed by a key served from a JWKS file), TLS from a test CA (`tools/certs.py`
in a temporary directory), and a recording user service that notes who calls it."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import certs
import grpc
import httpx

import order_svc.app
import order_svc.config
import user_svc.app
from gateway import RunningGateway, Settings, start
from gateway.config import services_of
from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.domain import Unimplemented
from shop_common.security import AuthMode, SecuritySettings, TlsSettings
from shop_common.serving import (
    Caller,
    RunningServer,
    ServerLimits,
    Service,
    ServiceSettings,
    current_caller,
    start_server,
)
from tests import tokens
from tests.support import common_settings

ORDER_SVC_SUBJECT = "client-order-svc"
"""The order service's own token subject (jwt mode without TLS)."""


@dataclass
class Issuer:
    """A test identity provider: one key, its JWKS file, tokens it signs."""

    jwks: pathlib.Path
    key: tokens.SigningKey = field(default_factory=tokens.new_signing_key)

    def __post_init__(self) -> None:
        tokens.write_jwks(self.jwks, self.key)

    def token(self, subject: str = "alice", **extra: Any) -> str:
        return self.key.sign(tokens.claims(subject, **extra))

    def admin(self, subject: str = "root") -> str:
        return self.token(subject, scope="openid shop.admin")

    def security(self, tls: TlsSettings | None = None, **overrides: Any) -> SecuritySettings:
        return SecuritySettings(
            mode=AuthMode.JWT,
            jwt=tokens.settings(self.jwks),
            tls=tls,
            service_subjects={ORDER_SVC_SUBJECT: "order_svc"},
            **overrides,
        )


@dataclass
class Pki:
    """`make certs` in a directory: the CA and an identity per part (and test_client)."""

    root: pathlib.Path

    def __post_init__(self) -> None:
        certs.make_certs(self.root)

    @property
    def ca(self) -> certs.Identity:
        return certs.Files.of(self.root, certs.CA_NAME).read()

    def tls(self, name: str, *, ca_file: pathlib.Path | None = None) -> TlsSettings:
        files = certs.Files.of(self.root, name)
        return TlsSettings(
            ca_file=ca_file or self.root / "ca.pem", cert_file=files.cert, key_file=files.key
        )

    def own(self, name: str, directory: pathlib.Path) -> TlsSettings:
        """A copy of `name`'s identity in `directory` (to be changed on disk by a test)."""
        directory.mkdir(parents=True, exist_ok=True)
        source = certs.Files.of(self.root, name)
        copy = certs.Files.of(directory, name)
        copy.write(source.read())
        (directory / "ca.pem").write_bytes((self.root / "ca.pem").read_bytes())
        return TlsSettings(ca_file=directory / "ca.pem", cert_file=copy.cert, key_file=copy.key)

    def credentials(self, name: str = certs.TEST_CLIENT) -> grpc.ChannelCredentials:
        files = certs.Files.of(self.root, name)
        return grpc.ssl_channel_credentials(
            root_certificates=(self.root / "ca.pem").read_bytes(),
            private_key=files.key.read_bytes(),
            certificate_chain=files.cert.read_bytes(),
        )


def service_settings(
    tmp: pathlib.Path, name: str, security: SecuritySettings, **common: Any
) -> ServiceSettings:
    return ServiceSettings(
        listen="127.0.0.1:0",
        database_url=f"sqlite:///{tmp}/{name}.db",
        common=replace(common_settings(tmp / name), security=security, **common),
    )


@contextlib.asynccontextmanager
async def running_user_svc(
    tmp: pathlib.Path, security: SecuritySettings, **common: Any
) -> AsyncIterator[RunningServer]:
    running = await user_svc.app.start(service_settings(tmp, "user_svc", security, **common))
    try:
        yield running
    finally:
        await running.stop(grace=0)


@contextlib.asynccontextmanager
async def running_order_svc(
    tmp: pathlib.Path,
    security: SecuritySettings,
    user_port: int,
    *,
    token_file: pathlib.Path | None = None,
) -> AsyncIterator[RunningServer]:
    base = service_settings(tmp, "order_svc", security)
    settings = order_svc.config.Settings(
        listen=base.listen,
        database_url=base.database_url,
        common=base.common,
        user_svc_addr=f"localhost:{user_port}",
        user_svc_timeout_seconds=2.0,
        service_token_file=token_file,
    )
    running = await order_svc.app.start(settings)
    try:
        yield running
    finally:
        await running.stop(grace=0)


@contextlib.asynccontextmanager
async def running_gateway(
    security: SecuritySettings, user_port: int, order_port: int, **overrides: Any
) -> AsyncIterator[RunningGateway]:
    user_addr, order_addr = f"localhost:{user_port}", f"localhost:{order_port}"
    settings = Settings(
        backends=services_of(user_pb2.DESCRIPTOR, user_addr)
        | services_of(order_pb2.DESCRIPTOR, order_addr),
        listen="127.0.0.1:0",
        grace_seconds=1,
        security=security,
        docs=security.mode is AuthMode.DEV,
        console=security.mode is AuthMode.DEV,
        server_names={user_addr: "user-svc", order_addr: "order-svc"},
    )
    running = await start(replace(settings, **overrides))
    try:
        yield running
    finally:
        await running.stop()


class RecordingUsers(user_pb2_grpc.UserServiceServicer):
    """A user service that knows one user (`u1`, revision 1), lists nobody, and notes the
    caller of every call."""

    def __init__(self) -> None:
        self.callers: list[tuple[str, Caller]] = []
        self.called = asyncio.Event()

    def _note(self, method: str) -> None:
        self.callers.append((method, current_caller()))
        self.called.set()

    async def GetUser(self, request: Any, context: Any) -> user_pb2.GetUserResponse:
        self._note("GetUser")
        return user_pb2.GetUserResponse(user=user_pb2.User(id=request.id, etag="1"))

    async def ListUsers(self, request: Any, context: Any) -> user_pb2.ListUsersResponse:
        self._note("ListUsers")
        return user_pb2.ListUsersResponse(revision=1)

    async def CreateUser(self, request: Any, context: Any) -> Any:
        raise Unimplemented("not recorded")

    async def UpdateUser(self, request: Any, context: Any) -> Any:
        raise Unimplemented("not recorded")

    async def DeleteUser(self, request: Any, context: Any) -> Any:
        raise Unimplemented("not recorded")

    async def WatchUsers(self, request: Any, context: Any) -> AsyncIterator[Any]:
        self._note("WatchUsers")
        await asyncio.Event().wait()
        yield user_pb2.WatchUsersResponse()  # pragma: no cover


@dataclass
class JwtSystem:
    """The three parts in jwt mode without TLS: tokens from `issuer`, the order service
    calling with its own service token."""

    issuer: Issuer
    users: RunningServer
    orders: RunningServer
    gateway: RunningGateway
    http: httpx.AsyncClient
    """A client of the gateway."""


@contextlib.asynccontextmanager
async def jwt_system(tmp: pathlib.Path, **gateway: Any) -> AsyncIterator[JwtSystem]:
    """`gateway` overrides the gateway's settings (its rate limit, say)."""
    issuer = Issuer(tmp / "jwks.json")
    token_file = tmp / "order_svc.token"
    token_file.write_text(issuer.token(ORDER_SVC_SUBJECT, lifetime=3600) + "\n")
    security = issuer.security()
    async with (
        running_user_svc(tmp, security) as users,
        running_order_svc(tmp, security, users.port, token_file=token_file) as orders,
        running_gateway(security, users.port, orders.port, **gateway) as running,
        httpx.AsyncClient(base_url=running.url, timeout=10) as http,
    ):
        yield JwtSystem(issuer, users, orders, running, http)


@contextlib.asynccontextmanager
async def recording_user_svc(
    security: SecuritySettings, *, reflection_on: bool = False, health_listen: str | None = None
) -> AsyncIterator[tuple[RunningServer, RecordingUsers]]:
    recorder = RecordingUsers()
    descriptor = user_pb2.DESCRIPTOR.services_by_name["UserService"]
    running = await start_server(
        "user_svc",
        "127.0.0.1:0",
        [
            Service(
                descriptor,
                lambda server: user_pb2_grpc.add_UserServiceServicer_to_server(recorder, server),
            )
        ],
        limits=ServerLimits(),
        security=security,
        reflection_on=reflection_on,
        health_listen=health_listen,
    )
    try:
        yield running, recorder
    finally:
        await running.stop(grace=0)


def secure_channel(
    port: int, credentials: grpc.ChannelCredentials, server_name: str = "user-svc"
) -> grpc.aio.Channel:
    return grpc.aio.secure_channel(
        f"localhost:{port}", credentials, [("grpc.ssl_target_name_override", server_name)]
    )
