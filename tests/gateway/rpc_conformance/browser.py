"""What browsers add: CORS preflights and exposed headers, and the per-caller rate limit."""

from __future__ import annotations

from shop.user.v1 import user_pb2
from tests.gateway.rpc_conformance.expect import (
    UNTOUCHED,
    Expect,
    GrpcWeb,
)
from tests.gateway.rpc_conformance.table import (
    CONNECT,
    CONNECT_CORS,
    GET_USER,
    GRPC_HTTP2,
    GRPC_WEB,
    ISSUE,
    ORIGIN,
    WATCH_USERS,
    Case,
    Request,
    connect,
    connect_stream,
    error,
    grpc_web,
    user,
)


def cors_cases() -> list[Case]:
    u1 = user_pb2.GetUserRequest(id="u1")
    connect_headers = ("content-type", "connect-protocol-version", "connect-timeout-ms")
    grpc_web_headers = ("content-type", "grpc-timeout", "x-grpc-web", "x-user-agent")

    def preflight(method: str, headers: tuple[str, ...]) -> Request:
        return Request(
            GET_USER,
            method="OPTIONS",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": ",".join(headers),
            },
        )

    return [
        Case(
            "cors.preflight.connect",
            f'{CONNECT_CORS} §Connect: "Access-Control-Allow-Methods: GET,POST; '
            "Access-Control-Allow-Headers: Content-Type, Connect-Protocol-Version, "
            'Connect-Timeout-Ms"',
            preflight("POST", connect_headers),
            Expect(
                frozenset({200, 204}),
                headers={"access-control-allow-origin": ORIGIN},
                lists={
                    "access-control-allow-methods": ("POST",),
                    "access-control-allow-headers": connect_headers,
                },
            ),
            gateway="cors",
        ),
        Case(
            "cors.preflight.connect-get",
            f'{CONNECT_CORS} §Allowing methods: "Connect uses POST and optionally GET"',
            preflight("GET", ("connect-timeout-ms",)),
            Expect(
                frozenset({200, 204}),
                headers={"access-control-allow-origin": ORIGIN},
                lists={"access-control-allow-methods": ("GET",)},
            ),
            gateway="cors",
        ),
        Case(
            "cors.preflight.grpc-web",
            f'{CONNECT_CORS} §gRPC-web: "Access-Control-Allow-Headers: Content-Type,'
            f'Grpc-Timeout,X-Grpc-Web,X-User-Agent"; {GRPC_WEB} §CORS preflight',
            preflight("POST", grpc_web_headers),
            Expect(
                frozenset({200, 204}),
                headers={"access-control-allow-origin": ORIGIN},
                lists={
                    "access-control-allow-methods": ("POST",),
                    "access-control-allow-headers": grpc_web_headers,
                },
            ),
            gateway="cors",
        ),
        Case(
            "cors.preflight.vary",
            f'{CONNECT_CORS} §Caching preflight responses: "If the CORS preflight response is '
            "dynamic, all request headers resulting in conditional preflight responses must be "
            "added to the Vary response header\": the allowed headers follow the request's",
            preflight("POST", connect_headers),
            Expect(
                frozenset({200, 204}),
                lists={"vary": ("origin", "access-control-request-headers")},
            ),
            gateway="cors",
        ),
        Case(
            "cors.expose.grpc-web",
            f'{CONNECT_CORS} §gRPC-web: "Access-Control-Expose-Headers: Grpc-Status, '
            'Grpc-Message, Grpc-Status-Details-Bin" (a page reads trailers-only errors there)',
            grpc_web(GET_USER, u1, headers={"Origin": ORIGIN}),
            Expect(
                200,
                GrpcWeb(user_pb2.GetUserResponse, "application/grpc-web+proto", (user("u1"),)),
                headers={"access-control-allow-origin": ORIGIN},
                lists={
                    "access-control-expose-headers": (
                        "grpc-status",
                        "grpc-message",
                        "grpc-status-details-bin",
                    )
                },
            ),
            gateway="cors",
        ),
        Case(
            "cors.expose.connect-stream",
            f"{ISSUE}: Connect-* exposed: connect-es reads Connect-Content-Encoding to "
            "decompress a stream's envelopes, Connect-Accept-Encoding to compress its own",
            connect_stream(
                WATCH_USERS,
                user_pb2.WatchUsersRequest(start_revision=1, prev_user=True),
                headers={"Origin": ORIGIN},
            ),
            Expect(
                200,
                headers={"access-control-allow-origin": ORIGIN},
                lists={
                    "access-control-expose-headers": (
                        "connect-content-encoding",
                        "connect-accept-encoding",
                    )
                },
            ),
            gateway="cors",
        ),
    ]


def limit_cases() -> list[Case]:
    u1 = user_pb2.GetUserRequest(id="u1")
    return [
        Case(
            "limits.rate.connect",
            f"{ISSUE}: the per-caller rate limit as on REST (429 + RateLimit headers); "
            f'{CONNECT} §Error Codes: "Use resource_exhausted if a per-user quota (for example, '
            'a rate limit) is exhausted" → 429',
            connect(GET_USER, u1),
            Expect(429, error("resource_exhausted"), present=("ratelimit", "ratelimit-policy")),
            UNTOUCHED,
            gateway="limited",
            before=(connect(GET_USER, u1),),
        ),
        Case(
            "limits.rate.grpc-web",
            f'{ISSUE}: the per-caller rate limit; {GRPC_HTTP2}: "HTTP-Status → :status 200", '
            "the status RESOURCE_EXHAUSTED in the trailers",
            grpc_web(GET_USER, u1),
            Expect(
                200,
                GrpcWeb(user_pb2.GetUserResponse, "application/grpc-web+proto", (), frozenset({8})),
            ),
            UNTOUCHED,
            gateway="limited",
            before=(grpc_web(GET_USER, u1),),
        ),
    ]
