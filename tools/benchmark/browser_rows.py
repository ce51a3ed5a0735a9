"""The rows of the RPC protocols a browser speaks, through the same gateway as the REST rows:
GetUser over Connect (JSON) and gRPC-Web (binary), CreateOrder over Connect (JSON). Each is
checked by a real call before and after it; the gateway's CPU per request is charged as in
the REST rows, so the protocols compare with REST within a round."""

from __future__ import annotations

import struct
from pathlib import Path

import httpx

from benchmark.calls import grpc_frame
from benchmark.errors import BenchError
from benchmark.load import Run, lua_cycling, wrk
from benchmark.settings import IN_FLIGHT, ITEMS_JSON
from benchmark.system import System
from shop.user.v1 import user_pb2

GET_USER = "/shop.user.v1.UserService/GetUser"
CREATE_ORDER = "/shop.order.v1.OrderService/CreateOrder"
GRPC_WEB = "application/grpc-web+proto"


def get_user_connect(http: httpx.Client, system: System, tmp: Path, seconds: int) -> Run:
    """POST /shop.user.v1.UserService/GetUser, `application/json`, cycling over the users."""
    assert system.gateway
    body = """'{"id":"' .. ids[i] .. '"}'"""
    script = _script(tmp / "get_user_connect.lua", system, GET_USER, body, "application/json")
    check = f'{{"id":"{system.ids[0]}"}}'.encode()
    return _run(http, system.gateway, script, GET_USER, check, "application/json", seconds)


def create_order_connect(http: httpx.Client, system: System, tmp: Path, seconds: int) -> Run:
    """POST /shop.order.v1.OrderService/CreateOrder, `application/json`, cycling over users."""
    assert system.gateway
    body = f"""'{{"order":{{"userId":"' .. ids[i] .. '","items":{ITEMS_JSON}}}}}'"""
    script = _script(
        tmp / "create_order_connect.lua", system, CREATE_ORDER, body, "application/json"
    )
    check = f'{{"order":{{"userId":"{system.ids[0]}","items":{ITEMS_JSON}}}}}'.encode()
    return _run(http, system.gateway, script, CREATE_ORDER, check, "application/json", seconds)


def get_user_grpc_web(http: httpx.Client, system: System, tmp: Path, seconds: int) -> Run:
    """POST /shop.user.v1.UserService/GetUser, `application/grpc-web+proto`: the binary
    GetUserRequest of each user, enveloped, cycling over the users."""
    assert system.gateway
    frames = [grpc_frame(user_pb2.GetUserRequest(id=i)) for i in system.ids]
    prelude = "local bodies = {" + ",".join(_lua_bytes(f) for f in frames) + "}"
    script = _script(
        tmp / "get_user_grpc_web.lua", system, GET_USER, "bodies[i]", GRPC_WEB, prelude
    )
    return _run(http, system.gateway, script, GET_USER, frames[0], GRPC_WEB, seconds)


def _script(
    path: Path, system: System, procedure: str, body: str, content_type: str, prelude: str = ""
) -> Path:
    header = f'wrk.headers["Content-Type"] = "{content_type}"'
    request = f'wrk.format("POST", "{procedure}", nil, {body})'
    path.write_text(lua_cycling(system.ids, request, f"{prelude}\n{header}"))
    return path


def _run(
    http: httpx.Client,
    gateway: str,
    script: Path,
    procedure: str,
    body: bytes,
    content_type: str,
    seconds: int,
) -> Run:
    _check(http, gateway + procedure, body, content_type)
    run = wrk(gateway, script, seconds, in_flight=IN_FLIGHT)
    _check(http, gateway + procedure, body, content_type)
    return run


def _check(http: httpx.Client, url: str, body: bytes, content_type: str) -> None:
    """One call; a Connect error, or a gRPC-Web call whose trailers are not OK, is a
    `BenchError` (gRPC-Web answers 200 either way)."""
    response = http.post(url, content=body, headers={"content-type": content_type})
    if response.status_code != 200:
        raise BenchError(f"POST {url} answered {response.status_code}: {response.text[:300]}")
    if content_type == GRPC_WEB:
        data = response.content
        while data:
            flags, length = struct.unpack_from(">BI", data)
            if flags & 0x80 and b"grpc-status: 0\r\n" not in data[5 : 5 + length]:
                raise BenchError(f"POST {url} (gRPC-Web) ended {data[5 : 5 + length]!r}")
            data = data[5 + length :]


def _lua_bytes(data: bytes) -> str:
    """A Lua string literal holding `data` (three-digit decimal escapes: unambiguous)."""
    return '"' + "".join(f"\\{byte:03d}" for byte in data) + '"'
