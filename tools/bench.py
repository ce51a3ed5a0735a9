"""`make bench`: throughput and latency of the system beside its references (not a test).

In one run on this machine it starts the bare grpc.aio echo (the ceiling for a Python gRPC
server), our system (`tools/run.py` on a fresh SQLite directory) and the seed design (Flask +
gunicorn), the references from `../shared/bench` copied to a temp dir. At 32 requests in
flight it measures echo, GetUser and CreateOrder over gRPC with h2load, the same two through
the gateway with wrk, and the seed's POST /order with wrk: interleaved, `--rounds` times,
quoting medians. It prints a Markdown report with the machine's details and writes it as
JSON to bench/out/latest.json. h2load counts HTTP 200s, not gRPC statuses: each gRPC row is
checked by real calls before and after, and by the reply bytes (or orders) it got back.

Before measuring, order_svc's view of users must hold every seeded user (its health entry
for the user feed SERVING): CreateOrder then checks users locally, as in production. The
change-feed rows (WatchUsers replay and live delivery) are in tools/bench_feed.py; the
report states each target beside what was measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import grpc
import httpx
from bench_feed import FeedBench, FeedError, Live, Replay, current_revision
from bench_feed import markdown as feed_markdown
from bench_feed import summary as feed_summary
from benchmark.reference_gateway import PATH as REF_PATH
from google.protobuf.message import Message
from google.type import money_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from order_svc.user_feed import HEALTH_NAME as USER_FEED_HEALTH
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "bench"
OUT = REPO / "bench" / "out" / "latest.json"
IN_FLIGHT = 32
MODERATE = 1
MODERATE_RPS = 400
"""The latency rows: the gateway's added p99 at moderate load, MODERATE clients sending
MODERATE_RPS requests/s each on a fixed schedule (about a quarter of what the gateway serves
at 32 in flight here). Both rows are driven by h2load, gRPC over h2c and REST over HTTP/1.1,
so that the difference is the gateway's and not the load tools'. One client: h2load starts
every client's schedule at the same instant, so several clients would arrive in bursts."""
USERS = 1000
CLK_TCK = os.sysconf("SC_CLK_TCK")
ITEMS_JSON = '[{"sku":"A-1","quantity":1,"unitPrice":{"currencyCode":"EUR","units":"2"}}]'
ORDER_TARGET = 5.0
"""CreateOrder through the gateway: at least this many times the seed's POST /order rate."""
GATEWAY_SHARE = 0.5
"""GetUser through the gateway: at least this share of direct gRPC requests/s."""
GATEWAY_CPU_US = 300.0
NAIVE_REFERENCE_CPU_US = 450.0
"""The naive gateway's CPU per request where the issue set GATEWAY_CPU_US (over a trivial
backend and a message of about ten fields): the same-run comparison scales by it."""
REF_ORDER_ID = "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c"
GATEWAY_ADDED_P99_MS = 2.0
GATEWAY_RSS_MB = 80.0
VIEW_SYNC_SECONDS = 60.0
OTHERS_UNRELIABLE = 0.25
"""CPUs busy in processes the benchmark did not start, past which a comparison is unreliable."""


T = TypeVar("T")


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


# ---------------------------------------------------------------- processes


class Proc:
    """A process started in its own session, its output pumped into a log file."""

    def __init__(self, name: str, argv: list[str], cwd: Path, env: dict[str, str], logs: Path):
        self.name, self.lines, self._eof = name, list[str](), False
        self.popen = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace", start_new_session=True,  # Ctrl-C reaches us only
        )  # fmt: skip
        self._changed = threading.Condition()
        threading.Thread(target=self._pump, args=(logs / f"{name}.log",), daemon=True).start()

    def _pump(self, log_path: Path) -> None:
        assert self.popen.stdout is not None
        with log_path.open("w") as log:
            for line in self.popen.stdout:
                log.write(line)
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """The first output line matching `pattern`; fails if the process ends first."""
        regex, seen, deadline = re.compile(pattern), 0, time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if match := regex.search(line):
                        return match
                seen = len(self.lines)
                if self._eof or time.monotonic() > deadline:
                    why = "exited" if self._eof else f"did not print {pattern!r} in {timeout:g}s"
                    raise self.failure(why)
                self._changed.wait(0.5)

    def finish(self) -> None:
        """Waits for the process to end; fails unless it succeeded."""
        if self.popen.wait() != 0:
            raise self.failure(f"failed with status {self.popen.returncode}")

    def failure(self, why: str) -> BenchError:
        time.sleep(0.2)  # let the pump catch up
        tail = "\n".join("    " + line for line in self.lines[-25:])
        return BenchError(f"{self.name} {why}; last output:\n{tail}")

    def stop(self) -> None:
        """SIGTERM to its process group, then SIGKILL if it lingers."""
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, None)):
            if self.popen.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(wait)


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from `state` on: [1] ppid, [11] utime, [12] stime."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    pids = (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    parents = {pid: int(s[1]) for pid in pids if (s := _stat(pid))}
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += frontier
    return found


def runs_module(pid: int, module: str) -> bool:
    """Whether `pid` is a `python -m <module>` process."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return argv[1:3] == [b"-m", module.encode()]


def cpu_seconds(root: int) -> float:
    return sum(int(s[11]) + int(s[12]) for pid in tree(root) if (s := _stat(pid))) / CLK_TCK


def rss_mb(root: int) -> float:
    """VmRSS summed over the process tree (shared pages count once per process)."""
    total_kb = 0
    for pid in tree(root):
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            total_kb += int(re.search(r"^VmRSS:\s+(\d+)", status, re.M)[1])  # type: ignore[index]
    return total_kb / 1024


def machine_busy() -> float:
    """CPU seconds all CPUs have spent busy (not idle, not waiting for I/O) since boot."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def own_cpu() -> float:
    """CPU seconds of this process, of all it started that still runs, and of its finished
    children (h2load, wrk, checks)."""
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    return cpu_seconds(os.getpid()) + done.ru_utime + done.ru_stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sh(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, check=True, text=True, capture_output=True, **kwargs)
    except subprocess.CalledProcessError as error:
        raise BenchError(f"{' '.join(argv)} failed:\n{error.stdout}{error.stderr}") from None


def ensure_tools() -> None:
    if shutil.which("h2load") and shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        raise BenchError("h2load/wrk missing: apt-get install -y wrk nghttp2-client (as root)")
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "wrk", "nghttp2-client"]):
        print(f"installing the load tools: {' '.join(argv)}", flush=True)
        sh(argv, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not (shutil.which("h2load") and shutil.which("wrk")):
        raise BenchError("apt-get ran but h2load or wrk is still missing")


# ---------------------------------------------------------------- load tools


@dataclass
class Run:
    """One measured run."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us: dict[str, float] = field(default_factory=dict)
    """CPU time per request of each serving process (tree), in µs."""
    notes: list[str] = field(default_factory=list)
    other_cores: float = 0.0
    """CPUs kept busy meanwhile by processes neither served nor loaded by the benchmark."""


def percentile(ordered: list[float], pct: float) -> float:
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def h2load(
    url: str,
    frame: Path | None,
    seconds: int,
    log: Path,
    in_flight: int = IN_FLIGHT,
    rps: int | None = None,
) -> tuple[Run, int, int]:
    """The run, the HTTP 2xx count and the response DATA bytes. With a gRPC `frame`, gRPC over
    h2c; without, a plain GET over HTTP/1.1. With `rps`, each client sends that many requests
    per second on a fixed schedule instead of one after another."""
    argv = f"h2load -t1 -c{in_flight} -m1 -D {seconds} --log-file={log}".split()
    argv += [f"--rps={rps}"] if rps else []
    if frame is not None:
        headers = ["-d", str(frame), "-H", "content-type: application/grpc", "-H", "te: trailers"]
    else:
        headers = ["--h1"]
    log.unlink(missing_ok=True)  # h2load appends to it
    out = sh([*argv, *headers, url]).stdout
    counts = re.search(r"(\d+) done, (\d+) succeeded, (\d+) failed", out)
    traffic = re.search(r"traffic: .*\((\d+)\) data", out)
    rate = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out)
    if not (counts and traffic and rate):
        raise BenchError(f"cannot read h2load's output:\n{out}")
    done, succeeded, failed = (int(n) for n in counts.groups())
    ms = sorted(int(line.split("\t")[2]) / 1000 for line in log.read_text().splitlines())
    if not ms:
        raise BenchError(f"h2load completed no request:\n{out}")
    run = Run(float(rate[1]), percentile(ms, 50), percentile(ms, 99), done, failed)
    run.notes.append(f"h2load: {done} done, {succeeded} HTTP 2xx, {failed} failed")
    return run, succeeded, int(traffic[1])


def wrk(
    url: str, script: Path, seconds: int, cwd: Path | None = None, in_flight: int = IN_FLIGHT
) -> Run:
    threads = min(2, in_flight)
    argv = [*f"wrk -t{threads} -c{in_flight} -d{seconds}s --latency -s".split(), str(script), url]
    out = sh(argv, env={**os.environ, "NUSERS": str(USERS)}, cwd=cwd).stdout
    total, rate = re.search(r"(\d+) requests in", out), re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50, p99 = (re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M) for p in (50, 99))
    if not (total and rate and p50 and p99):
        raise BenchError(f"cannot read wrk's output:\n{out}")
    unit_ms = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = sum(int(n) for n in sockets.groups()) if sockets else 0
    errors += int(non_2xx[1]) if non_2xx else 0
    p50_ms, p99_ms = (float(p[1]) * unit_ms[p[2]] for p in (p50, p99))
    run = Run(float(rate[1]), p50_ms, p99_ms, int(total[1]), errors)
    run.notes.append(f"wrk: {total[1]} requests, {errors} non-2xx or socket errors")
    return run


# ---------------------------------------------------------------- real calls


def grpc_frame(message: Message) -> bytes:
    """A length-prefixed gRPC message: flag 0, 4-byte big-endian length, bytes."""
    body = message.SerializeToString()
    return b"\0" + struct.pack(">I", len(body)) + body


def new_order(user_id: str) -> order_pb2.CreateOrderRequest:
    price = money_pb2.Money(currency_code="EUR", units=2)
    item = order_pb2.LineItem(sku="A-1", quantity=1, unit_price=price)
    return order_pb2.CreateOrderRequest(order=order_pb2.Order(user_id=user_id, items=[item]))


async def seed_users(address: str) -> list[str]:
    token = os.urandom(4).hex()
    async with grpc.aio.insecure_channel(address) as channel:
        users, slots = user_pb2_grpc.UserServiceStub(channel), asyncio.Semaphore(IN_FLIGHT)

        async def create(i: int) -> str:
            user = user_pb2.User(email=f"bench-{token}-{i}@example.com", display_name=f"Bench {i}")
            async with slots:
                reply = await users.CreateUser(user_pb2.CreateUserRequest(user=user), timeout=10)
            return reply.user.id

        return list(await asyncio.gather(*(create(i) for i in range(USERS))))


async def get_user(address: str, user_id: str) -> int:
    """One real GetUser (raises unless its status is OK); the size of the reply's frame."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = user_pb2_grpc.UserServiceStub(channel)
        reply = await stub.GetUser(user_pb2.GetUserRequest(id=user_id), timeout=5)
    if reply.user.id != user_id:
        raise BenchError(f"GetUser({user_id}) answered user {reply.user.id!r}")
    return len(grpc_frame(reply))


async def create_order(address: str, user_id: str) -> int:
    """One real CreateOrder (raises unless its status is OK); the orders' revision after it."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        if not (await stub.CreateOrder(new_order(user_id), timeout=5)).order.id:
            raise BenchError("CreateOrder answered an order without id")
        return (await stub.ListOrders(order_pb2.ListOrdersRequest(page_size=1), timeout=5)).revision


def check_http(client: httpx.Client, method: str, url: str, body: str | None = None) -> None:
    headers = {"content-type": "application/json"} if body else None
    response = client.request(method, url, content=body, headers=headers)
    if response.status_code not in (200, 201):
        raise BenchError(f"{method} {url} answered {response.status_code}: {response.text[:300]}")


async def health_status(address: str, service: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(reply.status)


def view_revision(db: Path) -> int | None:
    """The user revision order_svc's view is current to, read from its SQLite file (None
    when there is no such file); 0 before its first listing."""
    if not db.exists():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        row = conn.execute("SELECT revision FROM user_view_state WHERE id = 1").fetchone()
    return int(row[0] or 0) if row else 0


def lua_cycling(ids: list[str], request: str, prelude: str = "") -> str:
    """A wrk script cycling over `ids`, each thread from its own offset."""
    return f"""local ids = {{{",".join(f'"{i}"' for i in ids)}}}
local threads = 0
function setup(thread) threads = threads + 1; thread:set("offset", threads * 397) end
function init(args) i = offset or 0 end
{prelude}
request = function()
  i = i % #ids + 1
  return {request}
end
"""


# ---------------------------------------------------------------- the benchmark


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    procs: tuple[str, ...]
    """The serving processes whose CPU time the requests cost."""
    measure: Callable[[int], Run]


class Bench:
    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        self.args, self.stack, self.notes = args, stack, list[str]()
        self.tmp = Path(tempfile.mkdtemp(prefix="shop-bench-"))
        stack.callback(shutil.rmtree, self.tmp, ignore_errors=True)
        (self.tmp / "logs").mkdir()
        self.roots: dict[str, int] = {}
        """Serving process name → the pid at the root of its process tree."""
        self.http = stack.enter_context(httpx.Client(timeout=10))

    def start(self, name: str, argv: list[str], cwd: Path, env: dict[str, str]) -> Proc:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        proc = Proc(name, argv, cwd, env, self.tmp / "logs")
        self.stack.callback(proc.stop)
        return proc

    def kill_leftovers(self, names: tuple[str, ...]) -> None:
        """SIGKILL services tools/run.py started if they outlived it (it was killed)."""
        for name in names:
            if (pid := self.roots.get(name)) and runs_module(pid, name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def setup_echo(self) -> None:
        self.refs, py = self.tmp / "bench", sys.executable
        shutil.copytree(SHARED, self.refs)
        echo = self.refs / "echo"
        site = sh([py, "-c", "import site; print(site.getsitepackages()[0])"]).stdout.strip()
        protoc = f"-m grpc_tools.protoc -I. -I{site} --python_out=. --grpc_python_out=. echo.proto"
        sh([py, *protoc.split()], cwd=echo)
        sh([py, "make_frame.py", "echo_hello.bin", "hello"], cwd=echo)
        self.echo_port = free_port()
        proc = self.start("echo", [py, "echo_aio_server.py", str(self.echo_port)], echo, {})
        proc.wait_for("listening on")
        self.roots["echo"] = proc.popen.pid

    def setup_system(self) -> None:
        env = {f"{s}_LISTEN": "127.0.0.1:0" for s in ("USER_SVC", "ORDER_SVC", "GATEWAY")}
        env |= {"SHOP_DATA_DIR": str(self.tmp / "data"), "SHOP_GRACE_SECONDS": "1"}
        self.gateway: str | None = None
        if (REPO / "gateway" / "__main__.py").exists() and not self.args.no_gateway:
            names = ("user_svc", "order_svc", "gateway")
            self.stack.callback(self.kill_leftovers, names)
            run = self.start("run", [sys.executable, "tools/run.py"], REPO, env)
            self.gateway = "http://" + run.wait_for(r"^\s+gateway\s+http\s+http://(\S+)$")[1]
            self.user_addr = run.wait_for(r"^\s+user_svc\s+grpc\s+(\S+)$")[1]
            self.order_addr = run.wait_for(r"^\s+order_svc\s+grpc\s+(\S+)$")[1]
            children = tree(run.popen.pid)[1:]
            self.roots |= {n: next(p for p in children if runs_module(p, n)) for n in names}
        else:  # the two services alone, started as tools/run.py starts them
            self.notes.append("no gateway (absent, or --no-gateway): the REST rows are skipped")
            user = self.start("user_svc", [sys.executable, "-m", "user_svc"], REPO, env)
            self.user_addr = user.wait_for(r"user_svc listening on (\S+)")[1]
            env["ORDER_SVC_USER_SVC_ADDR"] = self.user_addr
            order = self.start("order_svc", [sys.executable, "-m", "order_svc"], REPO, env)
            self.order_addr = order.wait_for(r"order_svc listening on (\S+)")[1]
            self.roots |= {"user_svc": user.popen.pid, "order_svc": order.popen.pid}
        print(f"seeding {USERS} users over gRPC at {self.user_addr}", flush=True)
        self.ids = asyncio.run(seed_users(self.user_addr))
        self.wait_user_view()
        self.user_frame, self.order_frame = self.tmp / "get_user.bin", self.tmp / "order.bin"
        self.user_frame.write_bytes(grpc_frame(user_pb2.GetUserRequest(id=self.ids[0])))
        self.order_frame.write_bytes(grpc_frame(new_order(self.ids[0])))
        get = 'wrk.format("GET", "/v1/users/" .. ids[i])'
        body = f"""'{{"userId":"' .. ids[i] .. '","items":{ITEMS_JSON}}}'"""
        post = f'wrk.format("POST", "/v1/orders", nil, {body})'
        json_type = 'wrk.headers["Content-Type"] = "application/json"'
        (self.tmp / "get_user.lua").write_text(lua_cycling(self.ids, get))
        (self.tmp / "create_order.lua").write_text(lua_cycling(self.ids, post, json_type))

    def setup_reference_gateways(self) -> None:
        """Our gateway and the naive one (benchmark.reference_gateway) over one trivial backend.
        Those two run as `python -m` from tools/, where this script finds the package too."""
        py, module = sys.executable, [sys.executable, "-m", "benchmark.reference_gateway"]
        port = free_port()
        backend = self.start("ref_backend", [*module, "backend", str(port)], REPO / "tools", {})
        backend.wait_for("listening on")
        address, ours_port, naive_port = f"127.0.0.1:{port}", free_port(), free_port()
        env = {"GATEWAY_LISTEN": f"127.0.0.1:{ours_port}"}
        env |= {"GATEWAY_USER_SVC_ADDR": address, "GATEWAY_ORDER_SVC_ADDR": address}
        ours = self.start("ref_gateway", [py, "-m", "gateway"], REPO, env)
        naive_argv = [*module, "naive", str(naive_port), address]
        naive = self.start("naive_gateway", naive_argv, REPO / "tools", {})
        ours.wait_for("gateway listening on")
        naive.wait_for("listening on")
        self.ref_urls = {
            "ref_gateway": f"http://127.0.0.1:{ours_port}",
            "naive_gateway": f"http://127.0.0.1:{naive_port}",
        }
        path = REF_PATH.format(id=REF_ORDER_ID)
        (self.tmp / "get_order.lua").write_text(f'wrk.method = "GET"\nwrk.path = "{path}"\n')
        replies = {}
        for name, url in self.ref_urls.items():
            reply = self.http.get(url + path)
            if reply.status_code != 200:
                raise BenchError(f"{name} answered {reply.status_code}: {reply.text}")
            replies[name] = reply.json()
        if replies["ref_gateway"] != replies["naive_gateway"]:
            raise BenchError(f"the two gateways answered differently: {replies}")
        self.roots |= {
            "ref_backend": backend.popen.pid,
            "ref_gateway": ours.popen.pid,
            "naive_gateway": naive.popen.pid,
        }

    def wait_user_view(self) -> None:
        """Waits until order_svc's view of users is current: its user-feed health entry
        SERVING and, read from its database, the view at the seeding's last revision."""
        revision = asyncio.run(current_revision(self.user_addr))
        db = self.tmp / "data" / "order_svc.db"
        print(f"waiting for order_svc's view of users to reach revision {revision}", flush=True)
        deadline, status, view = time.monotonic() + VIEW_SYNC_SECONDS, 0, None
        while time.monotonic() < deadline:
            status = asyncio.run(health_status(self.order_addr, USER_FEED_HEALTH))
            view = view_revision(db)
            serving = status == health_pb2.HealthCheckResponse.SERVING
            if serving and (view is None or view >= revision):
                self.notes.append(
                    f"order_svc's view of users was synced before measuring: {USER_FEED_HEALTH}"
                    " SERVING, "
                    + (f"view at revision {view} ≥ {revision}" if view is not None else
                       f"(no {db.name} to read the view's revision from)")
                )  # fmt: skip
                return
            time.sleep(0.1)
        raise BenchError(
            f"order_svc's view of users did not catch up in {VIEW_SYNC_SECONDS:g}s: "
            f"{USER_FEED_HEALTH} status {status}, view at {view}, user_svc at {revision}"
        )

    def setup_feed(self) -> None:
        """A user_svc of its own with a seeded history, for the change-feed rows."""
        changes = self.args.feed_history or (10_000 if self.args.quick else 50_000)
        print(f"feed rows: seeding a user_svc with a history of {changes:,} changes", flush=True)
        self.feed = FeedBench(
            self.tmp / "feed", changes, self.start, cpu_seconds,
            watchers=self.args.watchers, writers=self.args.writers,
        )  # fmt: skip
        self.stack.callback(self.feed.close)
        self.roots["feed_user_svc"] = self.feed.pid
        print(f"  seeded in {self.feed.seed_seconds:.1f} s; serving at {self.feed.address}")

    def make_seed_venv(self) -> Proc:
        """Starts making a venv for the seed design; `setup_seed` waits for it."""
        self.venv = self.tmp / "venv"
        venv, python = shlex.quote(str(self.venv)), shlex.quote(sys.executable)
        script = f"{python} -m venv {venv} && {venv}/bin/pip install -q flask gunicorn requests"
        return self.start("seed_venv", ["/bin/sh", "-c", script], self.tmp, {})

    def setup_seed(self, making_venv: Proc) -> None:
        making_venv.finish()
        (self.refs / "data").mkdir(exist_ok=True)
        self.seed_user, self.seed_order = free_port(), free_port()
        user_url = f"http://127.0.0.1:{self.seed_user}"
        envs = {  # as in the README, on free ports
            "user": {"USER_DB": "../data/users.db"},
            "order": {"ORDER_DB": "../data/orders.db", "USER_SERVICE_URL": user_url},
        }
        for service, port in (("user", self.seed_user), ("order", self.seed_order)):
            app = f"{service}_service:app"
            argv = f"{self.venv}/bin/gunicorn -w 2 -k sync -b 127.0.0.1:{port} {app}".split()
            proc = self.start(f"seed_{service}", argv, self.refs / "seed_flask", envs[service])
            proc.wait_for(r"Listening at")
            self.roots[f"seed_{service}"] = proc.popen.pid
        print(f"seeding {USERS} users into the seed design", flush=True)
        for i in range(1, USERS + 1):
            body = json.dumps({"name": f"u{i}", "email": f"u{i}@x"})
            check_http(self.http, "POST", f"{user_url}/user", body)

    def scenarios(self) -> list[Scenario]:
        rows: list[tuple[str, str, str, Callable[[int], Run]]] = [
            ("echo", "echo (bare grpc.aio)", "echo", self.echo),
            ("get_user_grpc", "GetUser gRPC", "user_svc", self.get_user_grpc),
            ("get_user_rest", "GetUser REST", "gateway user_svc", self.get_user_rest),
            ("create_order_grpc", "CreateOrder gRPC", "order_svc user_svc", self.order_grpc),
            (
                "create_order_rest",
                "CreateOrder REST",
                "gateway order_svc user_svc",
                self.order_rest,
            ),
            ("seed_post_order", "seed POST /order", "seed_order seed_user", self.seed),
            (
                "get_user_grpc_moderate",
                f"GetUser gRPC, {MODERATE} x {MODERATE_RPS}/s",
                "user_svc",
                functools.partial(self.get_user_grpc, in_flight=MODERATE, rps=MODERATE_RPS),
            ),
            (
                "get_user_rest_moderate",
                f"GetUser REST, {MODERATE} x {MODERATE_RPS}/s",
                "gateway user_svc",
                self.get_user_rest_paced,
            ),
        ]
        rows += [
            (
                "get_order_ours",
                "GetOrder REST, trivial backend: our gateway",
                "ref_gateway",
                functools.partial(self.get_order_via, "ref_gateway"),
            ),
            (
                "get_order_naive",
                "GetOrder REST, trivial backend: naive gateway",
                "naive_gateway",
                functools.partial(self.get_order_via, "naive_gateway"),
            ),
        ]
        rest_rows = {"get_user_rest", "create_order_rest", "get_user_rest_moderate"}
        rest_rows |= {"get_order_ours", "get_order_naive"}
        skip = set() if self.gateway else rest_rows
        skip |= {"seed_post_order"} if self.args.no_seed else set()
        return [Scenario(k, label, tuple(p.split()), f) for k, label, p, f in rows if k not in skip]

    def echo(self, seconds: int) -> Run:
        check = [sys.executable, "check_echo.py", f"127.0.0.1:{self.echo_port}"]
        sh(check, cwd=self.refs / "echo")
        frame = self.refs / "echo" / "echo_hello.bin"  # the reply is the same message
        url = f"http://127.0.0.1:{self.echo_port}/echo.Echo/Echo"
        run, ok_http, data = h2load(url, frame, seconds, self.tmp / "h2.log")
        sh(check, cwd=self.refs / "echo")
        return self.count_replies(run, ok_http, data, frame.stat().st_size)

    def get_user_grpc(
        self, seconds: int, in_flight: int = IN_FLIGHT, rps: int | None = None
    ) -> Run:
        size = asyncio.run(get_user(self.user_addr, self.ids[0]))
        url = f"http://{self.user_addr}/shop.user.v1.UserService/GetUser"
        log = self.tmp / "h2.log"
        run, ok_http, data = h2load(url, self.user_frame, seconds, log, in_flight, rps)
        asyncio.run(get_user(self.user_addr, self.ids[0]))
        return self.count_replies(run, ok_http, data, size)

    @staticmethod
    def count_replies(run: Run, ok_http: int, data: int, size: int) -> Run:
        """Every OK reply is `size` bytes of DATA; a failed status sends none."""
        run.errors += max(0, round((size * ok_http - data) / size))
        run.notes.append(f"reply DATA {data} B for {ok_http} replies of {size} B")
        return run

    def order_grpc(self, seconds: int) -> Run:
        before = asyncio.run(create_order(self.order_addr, self.ids[0]))
        url = f"http://{self.order_addr}/shop.order.v1.OrderService/CreateOrder"
        run, ok_http, data = h2load(url, self.order_frame, seconds, self.tmp / "h2.log")
        created = asyncio.run(create_order(self.order_addr, self.ids[0])) - before - 1
        # Replies vary in size (timestamps, etag): count the orders made instead.
        run.errors += max(0, ok_http - created)
        run.notes.append(
            f"{created} orders made for {ok_http} replies, {data / max(1, ok_http):.0f} B each"
        )
        return run

    def rest(
        self,
        seconds: int,
        script: str,
        method: str,
        path: str,
        body: str | None,
        in_flight: int = IN_FLIGHT,
    ) -> Run:
        assert self.gateway
        check_http(self.http, method, self.gateway + path, body)
        run = wrk(self.gateway, self.tmp / script, seconds, in_flight=in_flight)
        check_http(self.http, method, self.gateway + path, body)
        return run

    def get_user_rest(self, seconds: int, in_flight: int = IN_FLIGHT) -> Run:
        path = f"/v1/users/{self.ids[0]}"
        return self.rest(seconds, "get_user.lua", "GET", path, None, in_flight)

    def get_user_rest_paced(self, seconds: int) -> Run:
        """GetUser through the gateway as the paced gRPC row drives it: h2load, HTTP/1.1."""
        assert self.gateway
        url = f"{self.gateway}/v1/users/{self.ids[0]}"
        check_http(self.http, "GET", url)
        run, ok_http, _ = h2load(url, None, seconds, self.tmp / "h1.log", MODERATE, MODERATE_RPS)
        run.errors = run.requests - ok_http  # done, not 2xx (h2load's failed among them)
        check_http(self.http, "GET", url)
        return run

    def order_rest(self, seconds: int) -> Run:
        body = f'{{"userId":"{self.ids[0]}","items":{ITEMS_JSON}}}'
        return self.rest(seconds, "create_order.lua", "POST", "/v1/orders", body)

    def get_order_via(self, gateway: str, seconds: int) -> Run:
        url, path = self.ref_urls[gateway], REF_PATH.format(id=REF_ORDER_ID)
        check_http(self.http, "GET", url + path)
        run = wrk(url, self.tmp / "get_order.lua", seconds)
        check_http(self.http, "GET", url + path)
        return run

    def seed(self, seconds: int) -> Run:
        url = f"http://127.0.0.1:{self.seed_order}"
        body = json.dumps({"user_id": 1, "item": "widget", "quantity": 2})
        check_http(self.http, "POST", url + "/order", body)
        run = wrk(url, Path("lua/post_order.lua"), seconds, cwd=self.refs)
        check_http(self.http, "POST", url + "/order", body)
        return run

    def measure(self, scenario: Scenario, seconds: int) -> Run:
        """Runs `scenario`, charging its CPU time; notes what else kept the CPUs busy."""
        before = {name: cpu_seconds(self.roots[name]) for name in scenario.procs}
        busy, ours, start = machine_busy(), own_cpu(), time.monotonic()
        run = scenario.measure(seconds)
        others = (machine_busy() - busy) - (own_cpu() - ours)
        run.other_cores = max(0.0, others / (time.monotonic() - start))
        for name in scenario.procs:
            spent = cpu_seconds(self.roots[name]) - before[name]
            run.cpu_us[name] = spent * 1e6 / max(1, run.requests)
        run.notes.append(f"other processes: {run.other_cores:.2f} CPUs")
        return run


# ---------------------------------------------------------------- report

RATIOS = {  # row: the row its rate is compared with, in the same round
    "get_user_grpc": ("echo", "GetUser gRPC / echo"),
    "get_user_rest": ("get_user_grpc", "GetUser REST / GetUser gRPC"),
    "create_order_rest": ("seed_post_order", "CreateOrder REST / seed POST /order"),
    "create_order_grpc": ("seed_post_order", "CreateOrder gRPC / seed POST /order"),
    "get_order_ours": ("get_order_naive", "ours / naive"),
}


def machine() -> dict[str, str]:
    model = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    git = ["git", "-C", str(REPO), "describe", "--always", "--dirty"]
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model[1] if model else platform.machine(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "h2load": sh(["h2load", "--version"]).stdout.strip(),
        "wrk": wrk_version.split(" Copyright")[0],
        "commit": subprocess.run(git, capture_output=True, text=True).stdout.strip(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


@dataclass
class FeedRounds:
    """The change-feed rows of each round: one replay, one live run per write rate."""

    history: int
    replays: list[Replay] = field(default_factory=list)
    lives: list[list[Live]] = field(default_factory=list)


def order_target(medians: dict[str, Run], ratio: float | None) -> tuple[list[str], dict[str, Any]]:
    """The line stating CreateOrder through the gateway against 5x the seed's POST /order."""
    rest, seed = medians.get("create_order_rest"), medians.get("seed_post_order")
    if rest is None or seed is None or ratio is None:
        return ["- CreateOrder target (≥ 5x the seed's POST /order): not measured (no seed or "
                "no gateway in this run)"], {}  # fmt: skip
    met, others = ratio >= ORDER_TARGET, max(rest.other_cores, seed.other_cores)
    line = (
        f"- CreateOrder through the gateway: {rest.rps:,.0f} requests/s = {ratio:.2f}x the seed "
        f"design's POST /order ({seed.rps:,.0f}/s), measured in the same round(s); target ≥ "
        f"{ORDER_TARGET:g}x ({ORDER_TARGET * seed.rps:,.0f}/s): {'met' if met else '**not met**'}"
        " (the view of users synced first, so no order asked the user service)"
    )
    if others > OTHERS_UNRELIABLE:
        line += (
            f"; **unreliable**: other processes kept {others:.2f} CPUs busy during these rows, "
            "run again on a quiet machine"
        )
    figures = {"ratio": ratio, "rps": rest.rps, "seed_rps": seed.rps, "target_ratio": ORDER_TARGET}
    return [line], {**figures, "met": met, "reliable": others <= OTHERS_UNRELIABLE}


def gateway_targets(
    medians: dict[str, Run], share: float | None, rss: dict[str, float]
) -> tuple[list[str], dict[str, Any]]:
    """The gateway's cost beside its targets: share of direct GetUser, CPU per request,
    p99 added at moderate load, memory."""
    rest, direct = medians.get("get_user_rest_moderate"), medians.get("get_user_grpc_moderate")
    full = medians.get("get_user_rest")
    if share is None or rest is None or direct is None or full is None:
        return ["- gateway targets: not measured (no gateway in this run)"], {}
    cpu = full.cpu_us["gateway"]
    ours, naive = medians.get("get_order_ours"), medians.get("get_order_naive")
    ours_cpu = ours.cpu_us["ref_gateway"] if ours else math.nan
    naive_cpu = naive.cpu_us["naive_gateway"] if naive else math.nan
    # In the terms: what ours would spend where the naive gateway spends 450 µs.
    scaled = ours_cpu * NAIVE_REFERENCE_CPU_US / naive_cpu
    added = rest.p99_ms - direct.p99_ms
    memory = rss.get("gateway", math.nan)
    checks = {
        "share_of_direct": (share, share >= GATEWAY_SHARE, f"≥ {GATEWAY_SHARE:.0%}"),
        "cpu_us_per_request": (cpu, cpu <= GATEWAY_CPU_US, f"≤ {GATEWAY_CPU_US:.0f} µs"),
        "cpu_us_in_reference_terms": (
            scaled,
            scaled <= GATEWAY_CPU_US,
            f"≤ {GATEWAY_CPU_US:.0f} µs where the naive gateway spends "
            f"{NAIVE_REFERENCE_CPU_US:.0f} µs",
        ),
        "added_p99_ms": (added, added < GATEWAY_ADDED_P99_MS, f"< {GATEWAY_ADDED_P99_MS:g} ms"),
        "rss_mb": (memory, memory < GATEWAY_RSS_MB, f"< {GATEWAY_RSS_MB:.0f} MB"),
    }
    shown = {
        "share_of_direct": f"GetUser through the gateway at {share:.0%} of direct gRPC",
        "cpu_us_per_request": f"gateway CPU {cpu:,.0f} µs per GetUser on this machine",
        "cpu_us_in_reference_terms": (
            f"gateway CPU over the trivial backend {ours_cpu:,.0f} µs per GetOrder against "
            f"the naive gateway's {naive_cpu:,.0f} µs in the same run "
            f"({ours_cpu / naive_cpu:.0%}), so {scaled:,.0f} µs in the issue's terms"
        ),
        "added_p99_ms": (
            f"p99 added at {MODERATE} clients x {MODERATE_RPS}/s {added:.2f} ms "
            f"(REST {rest.p99_ms:.2f} minus gRPC {direct.p99_ms:.2f})"
        ),
        "rss_mb": f"gateway RSS {memory:.0f} MB",
    }
    lines = [
        f"- {shown[key]}: target {goal}: {'met' if met else '**not met**'}"
        for key, (_, met, goal) in checks.items()
    ]
    figures = {key: {"value": value, "met": met} for key, (value, met, _) in checks.items()}
    return lines, figures


def report(
    bench: Bench, rounds: list[dict[str, Run]], seconds: int, feed: FeedRounds | None
) -> dict[str, Any]:
    med, scenarios, medians = statistics.median, bench.scenarios(), {}
    for s in scenarios:
        runs = [r[s.key] for r in rounds]
        medians[s.key] = Run(
            med(r.rps for r in runs), med(r.p50_ms for r in runs), med(r.p99_ms for r in runs),
            sum(r.requests for r in runs), sum(r.errors for r in runs),
            {n: med(r.cpu_us[n] for r in runs) for n in s.procs},
            other_cores=med(r.other_cores for r in runs),
        )  # fmt: skip
    ratios = {
        key: (label, med(r[key].rps / r[base].rps for r in rounds))
        for key, (base, label) in RATIOS.items()
        if key in medians and base in medians
    }
    rss = {name: round(rss_mb(pid), 1) for name, pid in bench.roots.items()}
    info = machine()
    others = max(r.other_cores for each in rounds for r in each.values())
    if feed is not None:
        others = max([others, *(r.other_cores for r in feed.replays)])
        others = max([others, *(x.other_cores for lives in feed.lives for x in lives)])
    if others > 0.1:
        bench.notes.append(f"other processes kept up to {others:.2f} CPUs busy during a run")
    lines = [
        f"{IN_FLIGHT} requests in flight, {seconds} s per run, median of {len(rounds)} round(s)",
        "",
        "| | requests/s | p50 ms | p99 ms | errors | ratio | CPU µs per request |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for s in scenarios:
        m = medians[s.key]
        ratio = f"{ratios[s.key][0]} = {ratios[s.key][1]:.2f}" if s.key in ratios else ""
        cpu = " + ".join(f"{n} {v:,.0f}" for n, v in m.cpu_us.items())
        cpu += f" = {sum(m.cpu_us.values()):,.0f}" if len(m.cpu_us) > 1 else ""
        cells = [s.label, f"{m.rps:,.0f}", f"{m.p50_ms:.2f}", f"{m.p99_ms:.2f}", str(m.errors)]
        lines.append("| " + " | ".join([*cells, ratio, cpu]) + " |")
    order_lines, order_figures = order_target(
        medians, ratios["create_order_rest"][1] if "create_order_rest" in ratios else None
    )
    gateway_lines, gateway_figures = gateway_targets(
        medians, ratios["get_user_rest"][1] if "get_user_rest" in ratios else None, rss
    )
    lines += ["", *order_lines, *gateway_lines]
    targets: dict[str, Any] = {
        "create_order_rest_vs_seed": order_figures,
        "gateway": gateway_figures,
    }
    feed_json: dict[str, Any] = {}
    if feed is not None:
        lines += feed_markdown(feed.replays, feed.lives, feed.history)
        feed_json = feed_summary(feed.replays, feed.lives, feed.history)
        feed_json["rounds"] = [
            {"replay": asdict(r), "live": [asdict(x) for x in lives]}
            for r, lives in zip(feed.replays, feed.lives, strict=True)
        ]
        targets["feed_replay"] = feed_json.get("replay", {})
        targets["feed_live"] = feed_json["live"]
    lines += [
        "",
        "RSS at the end, MB (gunicorn: master + 2 workers): "
        + ", ".join(f"{n} {v:.0f}" for n, v in rss.items()),
        "",
        *(f"- {k}: {v}" for k, v in info.items()),
        *(f"- note: {n}" for n in bench.notes),
        "",
        f"gRPC rows: h2load -t1 -c{IN_FLIGHT} -m1 -D {seconds}; REST and seed rows: wrk -t2 "
        f"-c{IN_FLIGHT} -d{seconds}s --latency; paced rows: h2load -c{MODERATE} "
        f"--rps={MODERATE_RPS} (REST: --h1). Errors: "
        "non-2xx, socket errors, failed gRPC calls (reply bytes, or orders made).",
    ]
    return {
        "markdown": "\n".join(lines),
        "machine": info,
        "settings": {"in_flight": IN_FLIGHT, "seconds": seconds, "rounds": len(rounds)},
        "median": {k: asdict(v) for k, v in medians.items()},
        "ratios": {k: {"of": label, "value": value} for k, (label, value) in ratios.items()},
        "targets": targets,
        "feed": feed_json,
        "rss_mb": rss,
        "rounds": [{k: asdict(v) for k, v in r.items()} for r in rounds],
        "notes": bench.notes,
    }


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> dict[str, Any]:
    seconds: int = args.duration or (3 if args.quick else 10)
    ensure_tools()
    bench = Bench(args, stack)
    venv: Proc | None = None
    if args.no_seed:
        bench.notes.append("--no-seed: the seed design was not measured")
    else:
        print("creating the seed design's venv (flask, gunicorn, requests) meanwhile", flush=True)
        venv = bench.make_seed_venv()
    print("generating the echo stubs, starting the echo server", flush=True)
    bench.setup_echo()
    print("starting the system (tools/run.py)", flush=True)
    bench.setup_system()
    if bench.gateway:
        print("starting the gateway references: ours and a naive one on a trivial backend")
        bench.setup_reference_gateways()
    if venv is not None:
        bench.setup_seed(venv)
    feed: FeedRounds | None = None
    if args.no_feed:
        bench.notes.append("--no-feed: the change-feed rows were not measured")
    else:
        bench.setup_feed()
        feed = FeedRounds(bench.feed.changes)
    scenarios = bench.scenarios()
    print("warming up: 1 s each", flush=True)
    for scenario in scenarios:
        bench.measure(scenario, 1)
    rounds: list[dict[str, Run]] = []
    for number in range(1, args.rounds + 1):
        rounds.append({})
        for s in scenarios:
            r = rounds[-1][s.key] = bench.measure(s, seconds)
            figures = (
                f"{r.rps:7,.0f}/s  p50 {r.p50_ms:.2f} ms  p99 {r.p99_ms:.2f} ms  errors {r.errors}"
            )
            print(f"round {number}: {s.label:<20} {figures}  ({'; '.join(r.notes)})", flush=True)
        if feed is not None:
            measure_feed(bench.feed, feed, number, seconds, args.write_rates)
    return report(bench, rounds, seconds, feed)


def elsewhere(work: Callable[[], T]) -> tuple[T, float]:
    """The result of `work`, and the CPUs kept busy meanwhile by processes this one did not
    start (nor its children)."""
    busy, ours, start = machine_busy(), own_cpu(), time.monotonic()
    result = work()
    others = (machine_busy() - busy) - (own_cpu() - ours)
    return result, max(0.0, others / (time.monotonic() - start))


def measure_feed(
    bench: FeedBench, feed: FeedRounds, number: int, seconds: int, rates: list[float]
) -> None:
    replay, others = elsewhere(bench.replay)
    replay.other_cores = others
    feed.replays.append(replay)
    print(
        f"round {number}: feed replay          {replay.events_per_s:7,.0f} events/s  "
        f"{replay.cpu_us_per_event:.1f} µs CPU per event  gaps {replay.gaps}",
        flush=True,
    )
    feed.lives.append([])
    for rate in rates:
        live, others = elsewhere(functools.partial(bench.live, rate, seconds))
        live.other_cores = others
        feed.lives[-1].append(live)
        print(
            f"round {number}: feed live {rate:,.0f}/s asked  {live.writes_per_s:,.0f} writes/s  "
            f"lag p50 {live.lag_p50_ms} ms  p99 {live.lag_p99_ms} ms  max {live.lag_max_ms} ms  "
            f"every event delivered: {live.complete}",
            flush=True,
        )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description="Throughput and latency, beside references.")
    parser.add_argument("--duration", type=int, help="seconds per run (10; 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="3 s runs")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (medians)")
    parser.add_argument("--no-seed", action="store_true", help="skip the Flask seed design")
    parser.add_argument("--no-gateway", action="store_true", help="only the gRPC rows")
    parser.add_argument("--no-feed", action="store_true", help="skip the change-feed rows")
    parser.add_argument(
        "--feed-history", type=int, help="changes of history to replay (50,000; 10,000 --quick)"
    )
    parser.add_argument(
        "--write-rates",
        type=lambda text: [float(r) for r in text.split(",")],
        default=[1000.0, 300.0],
        help="writes/s of the live feed runs, comma-separated (1000,300: the target, and a "
        "rate below user_svc's saturation, where the lag is the feed's own)",
    )
    parser.add_argument("--watchers", type=int, default=10, help="live feed watchers (10)")
    parser.add_argument("--writers", type=int, default=2, help="live feed writer processes (2)")
    args = parser.parse_args()
    if (args.duration is not None and args.duration < 1) or args.rounds < 1:
        parser.error("--duration and --rounds must be at least 1")
    if min(args.watchers, args.writers, args.feed_history or 1) < 1 or min(args.write_rates) <= 0:
        parser.error("--watchers, --writers, --feed-history and --write-rates must be positive")
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with contextlib.ExitStack() as stack:
            result = run(args, stack)
            print("stopping everything", flush=True)
    except (BenchError, FeedError) as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    except (grpc.RpcError, httpx.HTTPError) as error:
        print(f"bench: a check call failed: {error!r}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; what it started is stopped", file=sys.stderr)
        return 130
    print("\n" + result.pop("markdown"))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten: {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
