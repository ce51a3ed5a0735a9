"""The order service's settings, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shop_common import config


@dataclass(frozen=True, slots=True)
class Settings:
    listen: str
    database_url: str
    user_svc_addr: str
    user_svc_timeout_seconds: float
    """The longest any call to the user service may take (less when our caller has less)."""
    common: config.Common

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        common = config.Common.from_env(env)
        return cls(
            listen=config.address(env, "ORDER_SVC_LISTEN", "127.0.0.1:50052"),
            database_url=config.text(env, "ORDER_SVC_DATABASE_URL", common.sqlite_url("order_svc")),
            user_svc_addr=config.address(env, "ORDER_SVC_USER_SVC_ADDR", "127.0.0.1:50051"),
            user_svc_timeout_seconds=config.number(
                env, "ORDER_SVC_USER_SVC_TIMEOUT_SECONDS", 2.0, minimum=0.001
            ),
            common=common,
        )
