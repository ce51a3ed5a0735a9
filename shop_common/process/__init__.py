"""What any process of the system does first, the gateway's included: read its environment
(typed, each bad value a clear error naming the variable) and configure its logs. Standard
library only, so that importing it loads nothing else."""

from shop_common.process.env import ConfigError, address, flag, number, optional, text
from shop_common.process.logs import configure_logging

__all__ = ["ConfigError", "address", "configure_logging", "flag", "number", "optional", "text"]
