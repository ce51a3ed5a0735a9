"""`python -m gateway` as a process: logs the port it really bound, serves, and stops
cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import signal
import sys

import httpx

from tests.gateway.conftest import Backend

ROOT = pathlib.Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"gateway listening on (http://127\.0\.0\.1:(\d+))$")


async def test_python_m_gateway_serves_on_the_port_it_logs_and_stops_on_sigterm(
    backend: Backend,
) -> None:
    env = {
        **os.environ,
        "GATEWAY_LISTEN": "127.0.0.1:0",
        "GATEWAY_ADMIN_LISTEN": "127.0.0.1:0",
        "GATEWAY_USER_SVC_ADDR": backend.address,
        "GATEWAY_ORDER_SVC_ADDR": backend.address,
        "PYTHONUNBUFFERED": "1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    output: list[str] = []
    try:
        url = ""
        while not url:
            raw = await asyncio.wait_for(process.stderr.readline(), timeout=60)
            assert raw, f"the gateway exited before listening: {output}"
            output.append(raw.decode().rstrip())
            match = LISTENING.search(output[-1])
            if match:
                url = match.group(1)
                assert int(match.group(2)) != 0
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            response = await http.get("/v1/users/u-1")
            assert response.status_code == 200, response.text
            assert (await http.get("/healthz")).status_code == 200
        process.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(process.stderr.read(), timeout=60)
        output.extend(rest.decode().splitlines())
        status = await asyncio.wait_for(process.wait(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert status == 0, output
    assert sum("gateway listening on" in line for line in output) == 1, output
    # The access log, a line per request, names the route by its template.
    access = [line for line in output if " gateway.access: " in line]
    assert len(access) == 2, output
    # The request id ends a text line (the one the response's X-Request-Id carried).
    ends = r" \d+\.\dms request=[0-9a-f]{32}$"
    assert re.search(r"INFO  gateway\.access: GET /v1/users/\{id\} 200" + ends, access[0])
    assert re.search(r"gateway\.access: GET /healthz 200" + ends, access[1])
    assert not [line for line in access if "u-1" in line]
    assert not [line for line in output if "ERROR" in line or "Traceback" in line], output


async def test_a_bad_setting_exits_with_status_2_naming_it() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        cwd=ROOT,
        env={**os.environ, "GATEWAY_LISTEN": "nowhere"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 2
    assert b"GATEWAY_LISTEN" in stderr


async def test_a_busy_port_exits_with_status_1(backend: Backend) -> None:
    # The backend's port is taken: binding it must fail, not share it.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        cwd=ROOT,
        env={**os.environ, "GATEWAY_LISTEN": backend.address},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 1
    assert b"cannot start" in stderr
