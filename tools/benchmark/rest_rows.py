"""The rows measured over HTTP/1.1: through our gateway, through the two reference gateways,
and the seed design's POST /order; each checked by a real call before and after it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from benchmark.calls import check_http
from benchmark.load import Run, h2load, wrk
from benchmark.reference_gateway import PATH as REF_PATH
from benchmark.references import Seed
from benchmark.settings import IN_FLIGHT, ITEMS_JSON, MODERATE, MODERATE_RPS, REF_ORDER_ID
from benchmark.system import System


def _through_gateway(
    http: httpx.Client,
    gateway: str | None,
    script: Path,
    method: str,
    path: str,
    body: str | None,
    seconds: int,
    in_flight: int = IN_FLIGHT,
) -> Run:
    assert gateway
    check_http(http, method, gateway + path, body)
    run = wrk(gateway, script, seconds, in_flight=in_flight)
    check_http(http, method, gateway + path, body)
    return run


def get_user_rest(
    http: httpx.Client, system: System, seconds: int, in_flight: int = IN_FLIGHT
) -> Run:
    path = f"/v1/users/{system.ids[0]}"
    script = system.get_user_lua
    return _through_gateway(http, system.gateway, script, "GET", path, None, seconds, in_flight)


def get_user_rest_paced(http: httpx.Client, system: System, log: Path, seconds: int) -> Run:
    """GetUser through the gateway as the paced gRPC row drives it: h2load, HTTP/1.1."""
    assert system.gateway
    url = f"{system.gateway}/v1/users/{system.ids[0]}"
    check_http(http, "GET", url)
    run, ok_http, _ = h2load(url, None, seconds, log, MODERATE, MODERATE_RPS)
    run.errors = run.requests - ok_http  # done, not 2xx (h2load's failed among them)
    check_http(http, "GET", url)
    return run


def create_order_rest(http: httpx.Client, system: System, seconds: int) -> Run:
    body = f'{{"userId":"{system.ids[0]}","items":{ITEMS_JSON}}}'
    script = system.create_order_lua
    return _through_gateway(http, system.gateway, script, "POST", "/v1/orders", body, seconds)


def create_order_rest_paced(http: httpx.Client, system: System, log: Path, seconds: int) -> Run:
    """CreateOrder through the gateway from one client on the paced rows' schedule: h2load,
    HTTP/1.1, the same order for the same user each time."""
    assert system.gateway
    url = f"{system.gateway}/v1/orders"
    body = f'{{"userId":"{system.ids[0]}","items":{ITEMS_JSON}}}'
    check_http(http, "POST", url, body)
    body_file = log.with_name("create_order.json")
    body_file.write_text(body)
    run, ok_http, _ = h2load(url, None, seconds, log, MODERATE, MODERATE_RPS, json_body=body_file)
    run.errors = run.requests - ok_http  # done, not 2xx (h2load's failed among them)
    return run


def get_order_via(http: httpx.Client, url: str, script: Path, seconds: int) -> Run:
    """GET /v1/orders/{id} through one of the reference gateways."""
    path = REF_PATH.format(id=REF_ORDER_ID)
    check_http(http, "GET", url + path)
    run = wrk(url, script, seconds)
    check_http(http, "GET", url + path)
    return run


def seed_post_order(http: httpx.Client, seed: Seed, seconds: int) -> Run:
    url = f"http://127.0.0.1:{seed.order_port}"
    body = json.dumps({"user_id": 1, "item": "widget", "quantity": 2})
    check_http(http, "POST", url + "/order", body)
    run = wrk(url, Path("lua/post_order.lua"), seconds, cwd=seed.refs)
    check_http(http, "POST", url + "/order", body)
    return run
