"""`GET /healthz`: the backends' own `grpc.health.v1` Check, one per served service.

A backend may be several replicas behind one round-robin channel: each Check reaches the
one whose turn it is. A replica that answers NOT_SERVING (draining before it stops) is asked
past: its service is asked again, which reaches the next replica, so that `/healthz` says
whether the service has a serving replica, not which one was asked. (Other calls on the
channel take turns too: under traffic the second Check may meet the same replica, so a
draining replica makes `/healthz` fail less often, not never; a probe that needs several
failures in a row, as Kubernetes' do by default, then does not flap.)"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import grpc
import orjson
from grpc_health.v1 import health_pb2

CHECK_SECONDS = 2.0
ATTEMPTS = 2
"""Checks of a service, while a replica answers NOT_SERVING (an error, such as none
reachable or none answering in time, is not asked again)."""
_NOT_SERVING = "NOT_SERVING"
_SERVING = "SERVING"
_CHECK = f"/{health_pb2.DESCRIPTOR.services_by_name['Health'].full_name}/Check"


class HealthChecker:
    """Asks each backend about each service it serves for the gateway."""

    def __init__(self, channels: Mapping[str, grpc.aio.Channel]) -> None:
        """`channels`: service full name → the channel to its backend."""
        self._checks = {
            service: channel.unary_unary(
                _CHECK,
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            for service, channel in channels.items()
        }

    async def check(self) -> tuple[int, bytes]:
        """HTTP status (200 when every service is SERVING, else 503) and the JSON body."""
        names = list(self._checks)
        states = await asyncio.gather(*(self._one(name) for name in names))
        services = dict(zip(names, states, strict=True))
        serving = all(state == _SERVING for state in states)
        body = {"status": _SERVING if serving else _NOT_SERVING, "services": services}
        return (200 if serving else 503), orjson.dumps(body)

    async def _one(self, service: str) -> str:
        state = ""
        for _ in range(ATTEMPTS):
            state = await self._ask(service)
            if state != _NOT_SERVING:
                break
        return state

    async def _ask(self, service: str) -> str:
        request = health_pb2.HealthCheckRequest(service=service)
        try:
            response = await self._checks[service](request, timeout=CHECK_SECONDS)
        except grpc.aio.AioRpcError as error:
            return str(error.code().name)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
