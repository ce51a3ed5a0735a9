"""Serving: settings, start-up and shutdown, the gRPC server with health, reflection and its
transport limits, the interceptor every call crosses (identity, errors → statuses), the
policy tables (who may call what), how a service calls another as itself, deadlines,
messages' times."""

from shop_common.serving.config import Common, ServiceSettings
from shop_common.serving.deadline import Deadline
from shop_common.serving.entrypoint import Program, main
from shop_common.serving.identity import Caller, current_caller
from shop_common.serving.limits import ServerLimits
from shop_common.serving.periodic import every
from shop_common.serving.policy import Access, Policy, Rule
from shop_common.serving.server import RunningServer, Service, serve_until_signal, start_server
from shop_common.serving.service_credentials import (
    CallMetadata,
    channel_credentials,
    development_service_credentials,
)
from shop_common.serving.startup import (
    Parts,
    Stopper,
    Wired,
    start_admin_port,
    start_service,
)
from shop_common.serving.timestamps import set_timestamp

__all__ = [
    "Access",
    "CallMetadata",
    "Caller",
    "Common",
    "Deadline",
    "Parts",
    "Policy",
    "Program",
    "Rule",
    "RunningServer",
    "ServerLimits",
    "Service",
    "ServiceSettings",
    "Stopper",
    "Wired",
    "channel_credentials",
    "current_caller",
    "development_service_credentials",
    "every",
    "main",
    "serve_until_signal",
    "set_timestamp",
    "start_admin_port",
    "start_server",
    "start_service",
]
