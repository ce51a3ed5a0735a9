"""`python -m shop_common.serving.probe HOST:PORT [SERVICE]`: one `grpc.health.v1` Check.

Exit status 0 when the answer is SERVING, 1 otherwise (NOT_SERVING, an unknown name, no
answer within the timeout), with a line on stderr saying which. It is the health check of the
image where the platform has no gRPC probe of its own (compose.yaml's `healthcheck`): it dials
the plaintext health-only port (`<NAME>_HEALTH_LISTEN`), which serves health and nothing
else, so it needs neither the certificates nor a token. `SERVICE` is empty (the whole server)
unless given. A blocking client, and a short one: a probe is its own process.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT_SECONDS = 2.0


def check(target: str, service: str = "", timeout: float = TIMEOUT_SECONDS) -> str:
    """The status's name (`SERVING`, `NOT_SERVING`, …), or why there is none."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            return f"no answer ({code.name if code else 'unknown'})"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def main(argv: Sequence[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: python -m shop_common.serving.probe HOST:PORT [SERVICE]", file=sys.stderr)
        return 2
    status = check(argv[0], argv[1] if len(argv) == 2 else "")
    if status == "SERVING":
        return 0
    print(f"{argv[0]}: {status}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
