"""The user service's settings, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shop_common import config


@dataclass(frozen=True, slots=True)
class Settings:
    listen: str
    database_url: str
    common: config.Common

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        common = config.Common.from_env(env)
        return cls(
            listen=config.address(env, "USER_SVC_LISTEN", "127.0.0.1:50051"),
            database_url=config.text(env, "USER_SVC_DATABASE_URL", common.sqlite_url("user_svc")),
            common=common,
        )
