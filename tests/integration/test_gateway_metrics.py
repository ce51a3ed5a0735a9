"""The gateway's HTTP metrics and access log for real: user_svc and order_svc on loopback, a
gateway in front with its admin port on an ephemeral port, `/metrics` read with an HTTP GET
and parsed as Prometheus reads it. Requests are counted by route template and status,
refusals by status and reason (the HTTP server's too), streams while they are open; no
label ever carries a path's id."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import urllib.request
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import gateway.config
import gateway.server
from gateway.metrics import REFUSALS
from tests.gateway.rawhttp import connection, exchange, read_response, send
from tests.integration.helpers import new_email
from tests.integration.test_metrics import Samples, method, order_service, user_service, value
from tests.support import eventually

USERS = "shop.user.v1.UserService"
REQUESTS = "shop_gateway_requests_total"
DURATION = "shop_gateway_request_duration_seconds"
OPEN_STREAMS = "shop_gateway_open_streams"
REFUSED = "shop_gateway_refused_total"
WATCH = "/v1/users:watch"
NOW = {"progressNotify": "true"}
"""A watch from now, answered at once with a bookmark (so its response starts)."""


@contextlib.asynccontextmanager
async def system(
    tmp_path: pathlib.Path, **env: str
) -> AsyncIterator[tuple[gateway.server.RunningGateway, httpx.AsyncClient]]:
    """The two services and a gateway in front (metrics on unless `env` says otherwise)."""
    async with (
        user_service(tmp_path, admin_listen=None) as users,
        order_service(tmp_path, users.port) as orders,
    ):
        settings = gateway.config.Settings.from_env(
            {
                "GATEWAY_LISTEN": "127.0.0.1:0",
                "GATEWAY_ADMIN_LISTEN": "127.0.0.1:0",
                "GATEWAY_USER_SVC_ADDR": f"127.0.0.1:{users.port}",
                "GATEWAY_ORDER_SVC_ADDR": f"127.0.0.1:{orders.port}",
                "GATEWAY_RATE_LIMIT_PER_SECOND": "0",
                **env,
            }
        )
        running = await gateway.server.start(settings)
        try:
            async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
                yield running, http
        finally:
            await running.stop()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return str(response.read().decode())


async def scrape_text(running: gateway.server.RunningGateway) -> str:
    assert running.admin is not None
    return await asyncio.to_thread(_get, running.admin.url)


def samples_of(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scraped(running: gateway.server.RunningGateway) -> Samples:
    return samples_of(await scrape_text(running))


def requests(samples: Samples, http_method: str, route: str, status: int) -> float:
    return value(samples, REQUESTS, method=http_method, route=route, status=str(status))


def refused(samples: Samples, status: int, reason: str) -> float:
    return value(samples, REFUSED, status=str(status), reason=reason)


def gateway_series(samples: Samples) -> list[tuple[str, frozenset[tuple[str, str]]]]:
    return [key for key in samples if key[0].startswith("shop_gateway_")]


async def test_requests_are_counted_by_route_template_and_status(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    limits = {"GATEWAY_MAX_BODY_BYTES": "1024", "GATEWAY_MAX_URL_BYTES": "256"}
    async with system(tmp_path, **limits) as (running, http):
        before = await scraped(running)
        # Every route with its own method and success status, the stream kinds and every
        # refusal exist at zero before the first request.
        assert requests(before, "GET", "/v1/users/{id}", 200) == 0
        assert requests(before, "POST", "/v1/users", 201) == 0
        assert requests(before, "POST", "/v1/orders/{id}:cancel", 200) == 0
        assert requests(before, "GET", WATCH, 200) == 0
        assert requests(before, "GET", "/healthz", 200) == 0
        assert value(before, f"{DURATION}_count", method="GET", route="/v1/users/{id}") == 0
        assert value(before, f"{DURATION}_count", method="HEAD", route="/v1/users/{id}") == 0
        assert value(before, OPEN_STREAMS, kind="ndjson") == 0
        assert value(before, OPEN_STREAMS, kind="sse") == 0
        for status, reason in REFUSALS:
            assert refused(before, status, reason) == 0
        assert not [key for key in gateway_series(before) if ("route", "unmatched") in key[1]]

        with caplog.at_level(logging.INFO, logger="gateway.access"):
            created = await http.post("/v1/users", json={"email": new_email(), "displayName": "A"})
            assert created.status_code == 201, created.text
            user_id = created.json()["id"]
            got = await http.get(f"/v1/users/{user_id}")
            assert got.status_code == 200
            assert (await http.head(f"/v1/users/{user_id}")).status_code == 200
            assert (await http.get("/v1/users/not-an-id")).status_code == 400
            assert (await http.get(f"/v1/nothing/{user_id}")).status_code == 404
            assert (await http.delete("/v1/users")).status_code == 405
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.options("/v1/users/x")).status_code == 204
            too_large = await http.post("/v1/users", content=b"{" + b" " * 2000 + b"}")
            assert too_large.status_code == 413
            as_text = await http.post(
                "/v1/users",
                content=b"{}",
                headers={"origin": "https://elsewhere.test", "content-type": "text/plain"},
            )
            assert as_text.status_code == 415
            # Refused by the HTTP server before the app: counted as a refusal only.
            long_url = b"GET /v1/users/" + b"x" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
            assert (await exchange(running, long_url)).status == 414

        after = await scraped(running)
        assert requests(after, "POST", "/v1/users", 201) == 1
        assert requests(after, "GET", "/v1/users/{id}", 200) == 1
        assert requests(after, "HEAD", "/v1/users/{id}", 200) == 1
        assert requests(after, "GET", "/v1/users/{id}", 400) == 1
        assert requests(after, "GET", "unmatched", 404) == 1
        assert requests(after, "DELETE", "unmatched", 405) == 1
        assert requests(after, "GET", "/healthz", 200) == 1
        assert requests(after, "OPTIONS", "/v1/users/{id}", 204) == 1
        assert requests(after, "POST", "/v1/users", 413) == 1
        assert requests(after, "POST", "/v1/users", 415) == 1
        assert value(after, f"{DURATION}_count", method="GET", route="/v1/users/{id}") == 2
        assert value(after, f"{DURATION}_count", method="POST", route="/v1/users") == 3
        assert value(after, f"{DURATION}_sum", method="POST", route="/v1/users") > 0
        assert refused(after, 413, "BODY_TOO_LARGE") == 1
        assert refused(after, 415, "UNSUPPORTED_MEDIA_TYPE") == 1
        assert refused(after, 414, "URL_TOO_LONG") == 1
        # A 400 and a 404 are the client's mistakes, not refusals.
        assert sum(v for (name, _), v in after.items() if name == REFUSED) == 3
        # The calls to the services, recorded around them (HEAD is a GetUser too).
        get_user = method("unary", USERS, "GetUser")
        assert value(after, "grpc_client_started_total", **get_user) == 3
        assert value(after, "grpc_client_handled_total", **get_user, grpc_code="OK") == 2
        invalid = "InvalidArgument"
        assert value(after, "grpc_client_handled_total", **get_user, grpc_code=invalid) == 1
        assert value(after, "grpc_client_msg_received_total", **get_user) == 2
        assert value(after, "grpc_client_handling_seconds_count", **get_user) == 3
        # Bounded labels: the id in the paths appears nowhere, nor the raw paths.
        text = await scrape_text(running)
        assert user_id not in text
        assert "/v1/nothing" not in text
        assert "not-an-id" not in text

    # One access line a request, by template, with its fields as attributes.
    logged = [r for r in caplog.records if r.name == "gateway.access"]
    assert len(logged) == 10  # the 414 never reached the app
    by_id = {getattr(r, "request_id", None): r for r in logged}
    line = by_id[got.headers["x-request-id"]]
    assert line.levelno == logging.INFO
    assert line.getMessage().startswith("GET /v1/users/{id} 200 ")
    assert line.getMessage().endswith("ms")
    assert (line.http_method, line.route, line.status) == ("GET", "/v1/users/{id}", 200)  # type: ignore[attr-defined]
    assert line.duration_ms >= 0  # type: ignore[attr-defined]
    assert not [r for r in logged if user_id in r.getMessage()]
    assert "GET unmatched 404 " in caplog.text


async def test_open_streams_are_gauged_by_kind_until_they_end(tmp_path: pathlib.Path) -> None:
    async with system(tmp_path, GATEWAY_MAX_STREAMS_PER_CALLER="1") as (running, http):
        for kind, accept in (("ndjson", "application/x-ndjson"), ("sse", "text/event-stream")):
            async with http.stream("GET", WATCH, params=NOW, headers={"accept": accept}) as watch:
                assert watch.status_code == 200
                lines = watch.aiter_lines()
                await anext(lines)
                during = await scraped(running)
                assert value(during, OPEN_STREAMS, kind=kind) == 1
                # One stream a caller: a second is refused while this one is open.
                second = await http.get(WATCH, params=NOW, headers={"accept": accept})
                assert second.status_code == 429

            async def closed(kind: str = kind) -> bool:
                assert value(await scraped(running), OPEN_STREAMS, kind=kind) == 0
                return True

            await eventually(closed, 10, f"the {kind} stream is no longer counted open")

        after = await scraped(running)
        assert requests(after, "GET", WATCH, 200) == 2
        assert requests(after, "GET", WATCH, 429) == 2
        assert refused(after, 429, "TOO_MANY_STREAMS") == 2
        # Streams are not in the latency histogram.
        assert not [
            key for key in after if key[0].startswith(DURATION) and ("route", WATCH) in key[1]
        ]
        watch_users = method("server_stream", USERS, "WatchUsers")
        assert value(after, "grpc_client_started_total", **watch_users) == 2
        assert value(after, "grpc_client_handled_total", **watch_users, grpc_code="Canceled") == 2


async def test_a_caller_over_its_rate_is_counted_as_refused(tmp_path: pathlib.Path) -> None:
    limits = {"GATEWAY_RATE_LIMIT_PER_SECOND": "0.001", "GATEWAY_RATE_LIMIT_BURST": "1"}
    async with system(tmp_path, **limits) as (running, http):
        assert (await http.get("/v1/users")).status_code == 200
        assert (await http.get("/v1/users")).status_code == 429
        after = await scraped(running)
        assert requests(after, "GET", "/v1/users", 200) == 1
        assert requests(after, "GET", "/v1/users", 429) == 1
        assert refused(after, 429, "RATE_LIMITED") == 1
        list_users = method("unary", USERS, "ListUsers")
        assert value(after, "grpc_client_started_total", **list_users) == 1  # refused: no call


async def test_a_connection_over_the_cap_is_counted_as_refused(tmp_path: pathlib.Path) -> None:
    async with (
        system(tmp_path, GATEWAY_MAX_CONNECTIONS="1") as (running, _),
        connection(running) as (reader, writer),
    ):
        await send(writer, b"GET /v1/users HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(reader)).status == 200  # and the connection stays open
        over = await exchange(running, b"GET /v1/users HTTP/1.1\r\nHost: x\r\n\r\n")
        assert over.status == 503
        after = await scraped(running)
        assert refused(after, 503, "TOO_MANY_CONNECTIONS") == 1
        assert requests(after, "GET", "/v1/users", 200) == 1  # the refused one is in no route


async def test_metrics_off_means_no_admin_port_and_requests_still_served(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with system(tmp_path, GATEWAY_ADMIN_LISTEN="") as (running, http):
        assert running.admin is None
        assert running.app.metrics is None
        with caplog.at_level(logging.INFO, logger="gateway.access"):
            assert (await http.get("/v1/users")).status_code == 200
            assert (await http.get("/v1/nothing")).status_code == 404
            async with http.stream("GET", WATCH, params=NOW) as watch:
                assert watch.status_code == 200
                await anext(watch.aiter_lines())
        # The access log does not depend on metrics.
        assert "GET /v1/users 200 " in caplog.text


async def test_the_access_log_can_be_switched_off(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with system(tmp_path, GATEWAY_ACCESS_LOG="false") as (running, http):
        with caplog.at_level(logging.INFO, logger="gateway.access"):
            assert (await http.get("/v1/users")).status_code == 200
        assert not [r for r in caplog.records if r.name == "gateway.access"]
        # Metrics are still recorded.
        assert requests(await scraped(running), "GET", "/v1/users", 200) == 1
