"""No secret in any line of log: the three real processes (`make run`'s script) in jwt mode,
with their database URLs carrying a password (PostgreSQL) and every log on (DEBUG, JSON),
are driven with good, refused and forged bearer tokens, through the gateway and straight at
the user service; then not one line of the three processes holds the password, a token or a
token's signature. And every line is a JSON object, and the lines of a request carry its
request id, across the hops."""

from __future__ import annotations

import asyncio
import base64
import json
import pathlib
import re
import secrets
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import jwt
import pytest
from sqlalchemy.engine import make_url

from shop.user.v1 import user_pb2, user_pb2_grpc
from tests import tokens
from tests.e2e.conftest import ROOT, System, started_system, system_env
from tests.support import POSTGRES_SKIP_REASON, PostgresDatabases, postgres_admin_url

pytestmark = pytest.mark.e2e

PASSWORD = "s3cr3t-pw"
SERVICE_SUBJECT = "svc-order"
ITEM = {"sku": "TEA-1", "quantity": 1, "unitPrice": {"currencyCode": "EUR", "units": "2"}}
_CHILD_LINE = re.compile(r"^(user_svc|order_svc|gateway)\s*\| (.*)$")


@dataclass
class Credentials:
    alice: str
    admin: str
    service: str
    refused: dict[str, str]
    """What each refused credential is (a forged signature, expired, ...) → the whole
    `Authorization` value that sends it."""

    def secrets(self) -> list[str]:
        """Every credential, whole, and every signature of those that are JWTs."""
        sent = [value.partition(" ")[2] for value in self.refused.values()]
        bearers = [self.alice, self.admin, self.service, *sent]
        signatures = [b.rpartition(".")[2] for b in bearers if b.count(".") == 2]
        return bearers + [s for s in signatures if s]  # alg none: no signature


def credentials(directory: pathlib.Path) -> Credentials:
    key = tokens.new_signing_key("ES256")
    tokens.write_jwks(directory / "jwks.json", key)
    stranger = tokens.new_signing_key("ES256", kid=key.kid)  # same kid, another key
    unknown = tokens.new_signing_key("ES256")  # a kid the JWKS does not publish
    alice = key.sign(tokens.claims("alice"))
    admin = key.sign(tokens.claims("root", scope="shop.admin"))
    now = int(time.time())
    forged = alice.rpartition(".")[0] + "." + admin.rpartition(".")[2]
    return Credentials(
        alice=alice,
        admin=admin,
        service=key.sign(tokens.claims(SERVICE_SUBJECT, lifetime=3600)),
        refused={
            what: f"Bearer {token}"
            for what, token in {
                "forged signature": forged,
                "another key": stranger.sign(tokens.claims("alice")),
                "unknown kid": unknown.sign(tokens.claims("alice")),
                "expired": key.sign(tokens.claims("alice", iat=now - 7200, exp=now - 3600)),
                "another audience": key.sign(tokens.claims("alice", audience="elsewhere")),
                "not a JWT": f"opaque-{secrets.token_hex(16)}",
                "alg none": jwt.encode(tokens.claims("alice"), "", algorithm="none"),
            }.items()
        }
        | {"basic": "Basic " + base64.b64encode(f"alice:{secrets.token_hex(8)}".encode()).decode()},
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_urls(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> Iterator[tuple[str, str]]:
    """The two services' database URLs; on PostgreSQL with a password in them (trust
    authentication takes it and ignores it)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/users.db", f"sqlite:///{tmp_path}/orders.db"
        return
    admin_url = postgres_admin_url()
    if admin_url is None:
        pytest.skip(POSTGRES_SKIP_REASON)
    postgres = PostgresDatabases(admin_url)
    try:

        async def create() -> list[str]:
            return [await postgres.create(), await postgres.create()]

        urls = [
            make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)
            for url in asyncio.run(create())
        ]
        assert all(PASSWORD in url for url in urls)
        yield urls[0], urls[1]
    finally:
        asyncio.run(postgres.drop_all())


def jwt_env(
    tmp_path: pathlib.Path,
    tmp_path_factory: pytest.TempPathFactory,
    creds: Credentials,
    urls: tuple[str, str],
) -> dict[str, str]:
    env = system_env(tmp_path_factory)
    for name in list(env):
        if name.startswith(("SHOP_TLS_", "SHOP_JWT_")):
            del env[name]
    token_file = tmp_path / "order-svc.token"
    token_file.write_text(creds.service)
    return env | {
        "SHOP_LOG_LEVEL": "DEBUG",
        "SHOP_LOG_FORMAT": "json",
        "SHOP_AUTH": "jwt",
        "SHOP_JWT_ISSUER": tokens.ISSUER,
        "SHOP_JWT_AUDIENCE": tokens.AUDIENCE,
        "SHOP_JWT_JWKS": str(tmp_path / "jwks.json"),
        "SHOP_SERVICE_SUBJECTS": f"order_svc={SERVICE_SUBJECT}",
        "ORDER_SVC_SERVICE_TOKEN_FILE": str(token_file),
        "USER_SVC_DATABASE_URL": urls[0],
        "ORDER_SVC_DATABASE_URL": urls[1],
        "GATEWAY_RATE_LIMIT_PER_SECOND": "0",
    }


class Driver:
    """Requests through the gateway, each with a request id of its own (remembered)."""

    def __init__(self, system: System) -> None:
        self.base = system.gateway_url
        self.ids: list[str] = []

    def send(
        self, method: str, path: str, bearer: str, body: Any = None
    ) -> tuple[httpx.Response, str]:
        """`bearer`: a token, or a whole `Authorization` value (`Basic ...`)."""
        request_id = f"logs-{uuid.uuid4().hex[:12]}"
        self.ids.append(request_id)
        response = httpx.request(
            method,
            self.base + path,
            json=body,
            headers={
                "Authorization": bearer if " " in bearer else f"Bearer {bearer}",
                "X-Request-Id": request_id,
            },
            timeout=10,
        )
        assert response.headers["x-request-id"] == request_id
        return response, request_id


@dataclass
class Driven:
    """The request ids sent through the gateway."""

    all: list[str]
    listed_by_alice: str
    """ListUsers as a user: refused by user_svc's policy, which logs it."""
    refused: dict[str, str]
    """What the credential was → the request it was refused on, at the gateway."""


def drive(system: System, creds: Credentials) -> Driven:
    """Good calls, errors and refusals, through the gateway and straight at user_svc."""
    driver = Driver(system)
    created, _ = driver.send(
        "POST", "/v1/users", creds.alice, {"email": f"{uuid.uuid4().hex}@example.com"}
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    assert driver.send("GET", f"/v1/users/{user_id}", creds.alice)[0].status_code == 200
    order, _ = driver.send("POST", "/v1/orders", creds.alice, {"userId": user_id, "items": [ITEM]})
    assert order.status_code == 201, order.text
    nobody = {"userId": str(uuid.uuid4()), "items": [ITEM]}
    missing, _ = driver.send("POST", "/v1/orders", creds.alice, nobody)
    assert missing.status_code == 400, missing.text  # FAILED_PRECONDITION: no such user
    listed, listed_by_alice = driver.send("GET", "/v1/users", creds.alice)
    assert listed.status_code == 403, listed.text  # user_svc's policy: admins only
    assert driver.send("GET", "/v1/users", creds.admin)[0].status_code == 200
    bad_body, _ = driver.send("POST", "/v1/orders", creds.alice, {"items": "not a list"})
    assert bad_body.status_code == 400, bad_body.text
    refused_at_gateway = {}
    for what, authorization in creds.refused.items():
        refused, request_id = driver.send("GET", f"/v1/users/{user_id}", authorization)
        assert refused.status_code == 401, (what, refused.text)
        refused_at_gateway[what] = request_id

    # A request the gateway cannot parse (a header line without a colon), a token in it.
    host, _, port = system.gateway_url.removeprefix("http://").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            f"GET /v1/users HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer {creds.alice}\r\n"
            "not a header\r\n\r\n".encode()
        )
        assert raw.recv(1024).startswith(b"HTTP/1.1 400 ")
    bad_id = httpx.get(
        f"{driver.base}/v1/users/{user_id}",
        headers={"Authorization": f"Bearer {creds.alice}", "X-Request-Id": "a b"},
    )
    assert bad_id.status_code == 400, bad_id.text

    # Straight at the user service: the bearers it refuses itself, with request ids good and bad.
    with grpc.insecure_channel(system.user_addr) as channel:
        stub = user_pb2_grpc.UserServiceStub(channel)
        for what, authorization in creds.refused.items():
            with pytest.raises(grpc.RpcError) as refused_call:
                stub.GetUser(
                    user_pb2.GetUserRequest(id=user_id),
                    metadata=(("authorization", authorization), ("x-request-id", "grpc-1")),
                    timeout=10,
                )
            assert refused_call.value.code() == grpc.StatusCode.UNAUTHENTICATED, what
        for unusable in ("has a space", "x" * 300):
            with pytest.raises(grpc.RpcError) as unusable_id:
                stub.ListUsers(
                    user_pb2.ListUsersRequest(),
                    metadata=(
                        ("authorization", creds.refused["forged signature"]),
                        ("x-request-id", unusable),
                    ),
                    timeout=10,
                )
            assert unusable_id.value.code() == grpc.StatusCode.UNAUTHENTICATED
    return Driven(driver.ids, listed_by_alice, refused_at_gateway)


def lines_of(output: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each process's lines (`tools/run.py` prefixes them with its name), parsed: each must
    be one JSON object with the formatter's fields."""
    found: dict[str, list[dict[str, Any]]] = {"user_svc": [], "order_svc": [], "gateway": []}
    for raw in output:
        match = _CHILD_LINE.match(raw)
        if match is None:
            continue  # tools/run.py's own lines: its table of addresses, "all stopped"
        line = json.loads(match.group(2))
        assert isinstance(line, dict), raw
        assert {"time", "level", "logger", "message"} <= line.keys(), raw
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]), raw
        found[match.group(1)].append(line)
    return found


def test_no_secret_reaches_a_log_line_and_every_line_is_json_with_its_request_id(
    tmp_path: pathlib.Path,
    tmp_path_factory: pytest.TempPathFactory,
    database_urls: tuple[str, str],
) -> None:
    creds = credentials(tmp_path)
    env = jwt_env(tmp_path, tmp_path_factory, creds, database_urls)
    with started_system([sys.executable, str(ROOT / "tools" / "run.py")], env) as system:
        driven = drive(system, creds)
    output = system.output

    text = "\n".join(output)
    leaked = [s for s in (PASSWORD, *creds.secrets()) if s in text]
    assert leaked == [], [line for line in output if any(s in line for s in leaked)][:5]

    lines = lines_of(output)
    assert all(lines.values()), "each process logged"
    assert any(line["level"] == "DEBUG" for line in lines["gateway"])

    # The request it could not parse was logged (and its token was not).
    assert [line for line in lines["gateway"] if line["logger"] == "gateway.transport"]
    # Every request the gateway served has lines carrying its id.
    gateway_ids = {line.get("request_id") for line in lines["gateway"]}
    assert set(driven.all) <= gateway_ids
    # Each refusal at the gateway is logged once, with its request's id.
    denials = [line for line in lines["gateway"] if line["message"].startswith("denied ")]
    for what, request_id in driven.refused.items():
        assert len([d for d in denials if d.get("request_id") == request_id]) == 1, what
    # The id crosses the hop: user_svc's policy denial carries the gateway's request id.
    user_denials = [line for line in lines["user_svc"] if line["message"].startswith("denied ")]
    assert [d for d in user_denials if d.get("request_id") == driven.listed_by_alice]
    # Straight calls: a usable x-request-id is on the line; an unusable one is not taken.
    refused_here = [d for d in user_denials if "unverified credentials" in d["message"]]
    assert len([d for d in refused_here if d.get("request_id") == "grpc-1"]) == len(creds.refused)
    unusable = [d for d in refused_here if "ListUsers" in d["message"]]
    assert len(unusable) == 2
    assert all("request_id" not in d for d in unusable)
    assert "x" * 300 not in text
    assert "has a space" not in text
