"""What any process of the system does first, the gateway's included: read its environment
(typed, each bad value a clear error naming the variable), configure its logs, keep its data
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
from shop_common.process.logs import configure_logging

__all__ = [
    "ConfigError",
    "address",
    "address_or_off",
    "configure_logging",
    "flag",
    "number",
    "optional",
    "private_dir",
    "private_file",
    "text",
    "whole",
]
