"""`make run`: the whole system on one machine, with prefixed logs; Ctrl-C stops it all.

Starts user_svc, then order_svc (pointed at it), then the gateway (pointed at both),
each as `python -m <name>` configured by environment, exactly as one would start
them by hand. Any listen address may use port 0: the real port each one logs is
passed on to the next. Every variable of the environment is passed through, so
`USER_SVC_DATABASE_URL=postgresql://… make run` works too.

`--certs DIR` (`make run ARGS="--certs certs"`, after `make certs`): each part gets its own
certificate from DIR as its TLS identity (`SHOP_TLS_*`: mutual TLS between the parts), and
the gateway serves HTTPS with its certificate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pathlib
import re
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass

# Read from text lines and from JSON ones (SHOP_LOG_FORMAT=json): an address ends at a quote.
_LISTENING = re.compile(r"(\w+) listening on (https?://)?([^\s\"]+):(\d+)")
_METRICS = re.compile(r"(\w+) metrics on (http://[^\s\"]+)")
_COLORS = {"user_svc": "\033[36m", "order_svc": "\033[35m", "gateway": "\033[33m"}
_STOP_SECONDS = 15.0


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    address: asyncio.Future[str]
    metrics: str | None = None
    """Its admin port's `/metrics` URL, once logged (before it listens); None: metrics off."""


def _prefix(name: str) -> str:
    label = f"{name:<9}|"
    if sys.stdout.isatty():
        return f"{_COLORS.get(name, '')}{label}\033[0m "
    return f"{label} "


async def _pump(child: Child) -> None:
    assert child.process.stdout is not None
    prefix = _prefix(child.name)
    async for raw in child.process.stdout:
        line = raw.decode(errors="replace").rstrip()
        print(prefix + line, flush=True)
        metrics = _METRICS.search(line)
        if metrics and metrics.group(1) == child.name:
            child.metrics = metrics.group(2)
        match = _LISTENING.search(line)
        if match and match.group(1) == child.name and not child.address.done():
            scheme = match.group(2) or ""  # the gateway's: http:// or https://
            child.address.set_result(f"{scheme}{match.group(3)}:{match.group(4)}")


async def _start(name: str, env: Mapping[str, str], pumps: list[asyncio.Task[None]]) -> Child:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        name,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
    )
    child = Child(name, process, asyncio.get_running_loop().create_future())
    pumps.append(asyncio.create_task(_pump(child)))
    exited: asyncio.Future[object] = asyncio.ensure_future(process.wait())
    listening: asyncio.Future[object] = child.address  # type: ignore[assignment]
    done, _ = await asyncio.wait({listening, exited}, return_when=asyncio.FIRST_COMPLETED)
    if listening not in done:
        raise RuntimeError(f"{name} exited with status {process.returncode} before listening")
    exited.cancel()
    return child


def _identity(name: str, certs: pathlib.Path | None) -> dict[str, str]:
    """`name`'s TLS settings from the certificates in `certs` (none without)."""
    if certs is None:
        return {}
    cert, key = str(certs / f"{name}.pem"), str(certs / f"{name}-key.pem")
    found = {
        "SHOP_TLS_CA_FILE": str(certs / "ca.pem"),
        "SHOP_TLS_CERT_FILE": cert,
        "SHOP_TLS_KEY_FILE": key,
    }
    if name == "gateway":
        found |= {"GATEWAY_TLS_CERT_FILE": cert, "GATEWAY_TLS_KEY_FILE": key}
    return found


async def _stop(children: list[Child]) -> None:
    for child in reversed(children):  # gateway first, user_svc last
        if child.process.returncode is None:
            child.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(child.process.wait(), _STOP_SECONDS)
            except TimeoutError:
                child.process.kill()
                await child.process.wait()


async def main(certs: pathlib.Path | None) -> int:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("USER_SVC_LISTEN", "127.0.0.1:50051")
    env.setdefault("ORDER_SVC_LISTEN", "127.0.0.1:50052")
    env.setdefault("GATEWAY_LISTEN", "127.0.0.1:8080")
    children: list[Child] = []
    pumps: list[asyncio.Task[None]] = []
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    status = 0
    try:
        user = await _start("user_svc", env | _identity("user_svc", certs), pumps)
        children.append(user)
        user_addr = user.address.result()
        env.setdefault("ORDER_SVC_USER_SVC_ADDR", user_addr)
        order = await _start("order_svc", env | _identity("order_svc", certs), pumps)
        children.append(order)
        env.setdefault("GATEWAY_USER_SVC_ADDR", user_addr)
        env.setdefault("GATEWAY_ORDER_SVC_ADDR", order.address.result())
        gateway = await _start("gateway", env | _identity("gateway", certs), pumps)
        children.append(gateway)
        metrics = "".join(
            f"  {c.name:<10} metrics  {c.metrics}\n" for c in children if c.metrics is not None
        )
        print(
            "\nready:\n"
            f"  user_svc   grpc  {user_addr}\n"
            f"  order_svc  grpc  {order.address.result()}\n"
            f"  gateway    http  {gateway.address.result()}\n"
            f"{metrics}"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        waits = [asyncio.create_task(c.process.wait()) for c in children]
        stop = asyncio.create_task(stopping.wait())
        done, _ = await asyncio.wait([stop, *waits], return_when=asyncio.FIRST_COMPLETED)
        if stop not in done:
            exited = next(c for c in children if c.process.returncode is not None)
            print(f"{exited.name} exited with status {exited.process.returncode}; stopping all")
            status = 1
        stop.cancel()
    except RuntimeError as error:
        print(f"run: {error}", file=sys.stderr)
        status = 1
    finally:
        await _stop(children)
        for pump in pumps:
            with contextlib.suppress(asyncio.CancelledError):
                await pump
    print("all stopped", flush=True)
    return status


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certs", type=pathlib.Path, help="each part's TLS identity from here")
    sys.exit(asyncio.run(main(parser.parse_args().certs)))
