"""The order service's settings, read once from the environment."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from dataclasses import dataclass

from shop_common.process import ConfigError, number, optional, target, text
from shop_common.serving import ServiceSettings

NAME = "order_svc"


@dataclass(frozen=True, slots=True)
class Settings(ServiceSettings):
    user_svc_addr: str
    """The user service's gRPC target (`host:port`, `dns:///name:port`, `ipv4:a:p,b:p`…):
    calls go round robin over every address it resolves to."""
    user_svc_timeout_seconds: float
    """The longest any call to the user service may take (less when our caller has less)."""
    user_svc_tls_name: str = "user-svc"
    """With TLS: the name the user service's certificate must carry, whatever the target
    (`localhost`, an address list, a headless Service's name): another part's certificate
    is refused."""
    service_token_file: pathlib.Path | None = None
    """In jwt mode without TLS: a file holding this service's own bearer token (its `sub`
    named in the user service's `SHOP_SERVICE_SUBJECTS`), read again when it changes."""

    @classmethod
    def read(cls, env: Mapping[str, str]) -> Settings:
        """`ORDER_SVC_LISTEN` (127.0.0.1:50052), `ORDER_SVC_DATABASE_URL`,
        `ORDER_SVC_ADMIN_LISTEN` (127.0.0.1:9092), `ORDER_SVC_CHANNELZ` (false), where the user
        service is, how long it may take and how the order service proves who it is to it,
        and the shared settings."""
        service = ServiceSettings.from_env(env, NAME, 50052, admin_port=9092)
        token_file = optional(env, "ORDER_SVC_SERVICE_TOKEN_FILE")
        security = service.common.security
        if security.tls is not None and token_file is not None:
            raise ConfigError(
                "ORDER_SVC_SERVICE_TOKEN_FILE is for jwt mode without TLS: with TLS the order "
                "service is who its certificate says"
            )
        if security.verifies_tokens and security.tls is None and token_file is None:
            raise ConfigError(
                "SHOP_AUTH=jwt without TLS: set ORDER_SVC_SERVICE_TOKEN_FILE (the order "
                "service's own token), or SHOP_TLS_* (its certificate)"
            )
        return cls(
            listen=service.listen,
            database_url=service.database_url,
            common=service.common,
            health_listen=service.health_listen,
            admin_listen=service.admin_listen,
            channelz=service.channelz,
            tracing=service.tracing,
            user_svc_addr=target(env, "ORDER_SVC_USER_SVC_ADDR", "127.0.0.1:50051"),
            user_svc_timeout_seconds=number(
                env, "ORDER_SVC_USER_SVC_TIMEOUT_SECONDS", 2.0, minimum=0.001
            ),
            user_svc_tls_name=text(env, "ORDER_SVC_USER_SVC_TLS_NAME", "user-svc"),
            service_token_file=pathlib.Path(token_file) if token_file else None,
        )
