"""What any process of the system does first, the gateway's included: read its environment
(typed, each bad value a clear error naming the variable; the gRPC targets it dials read as
grpc reads them), configure its logs (and say which request a line belongs to), keep its data
files private. Standard library only, so that importing it loads nothing else."""

from shop_common.process.env import (
    ConfigError,
    address,
    address_or_off,
    flag,
    number,
    optional,
    text,
    whole,
)
from shop_common.process.files import private_dir, private_file
from shop_common.process.log_context import (
    REQUEST_ID_KEY,
    current_request_id,
    request_id_in,
    reset_request_id,
    set_request_id,
    valid_request_id,
)
from shop_common.process.logs import LogFormat, configure_logging, log_format, log_level
from shop_common.process.target import BadTarget, Target, parse_target, target

__all__ = [
    "REQUEST_ID_KEY",
    "BadTarget",
    "ConfigError",
    "LogFormat",
    "Target",
    "address",
    "address_or_off",
    "configure_logging",
    "current_request_id",
    "flag",
    "log_format",
    "log_level",
    "number",
    "optional",
    "parse_target",
    "private_dir",
    "private_file",
    "request_id_in",
    "reset_request_id",
    "set_request_id",
    "target",
    "text",
    "valid_request_id",
    "whole",
]
