"""The REST → gRPC gateway: routes built at start-up from the `google.api.http` rules of
the served services' descriptors; proto3 JSON in and out; errors as google.rpc.Status.

    python -m gateway          # serve, configured by GATEWAY_* variables
"""

from gateway.app import Gateway
from gateway.config import Settings
from gateway.server import RunningGateway, serve, start

__all__ = ["Gateway", "RunningGateway", "Settings", "serve", "start"]
