"""The order service's settings, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shop_common.process import address, number
from shop_common.serving import ServiceSettings

NAME = "order_svc"


@dataclass(frozen=True, slots=True)
class Settings(ServiceSettings):
    user_svc_addr: str
    user_svc_timeout_seconds: float
    """The longest any call to the user service may take (less when our caller has less)."""

    @classmethod
    def read(cls, env: Mapping[str, str]) -> Settings:
        """`ORDER_SVC_LISTEN` (127.0.0.1:50052), `ORDER_SVC_DATABASE_URL`, where the user
        service is and how long it may take, and the shared settings."""
        service = ServiceSettings.from_env(env, NAME, 50052)
        return cls(
            listen=service.listen,
            database_url=service.database_url,
            common=service.common,
            user_svc_addr=address(env, "ORDER_SVC_USER_SVC_ADDR", "127.0.0.1:50051"),
            user_svc_timeout_seconds=number(
                env, "ORDER_SVC_USER_SVC_TIMEOUT_SECONDS", 2.0, minimum=0.001
            ),
        )
