"""The load tools, h2load and wrk: installing them, running them, reading their output."""

from __future__ import annotations

import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.errors import BenchError
from benchmark.processes import sh
from benchmark.settings import IN_FLIGHT, USERS


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


def percentile(ordered: list[float], pct: float) -> float:
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def h2load(
    url: str,
    frame: Path | None,
    seconds: int,
    log: Path,
    in_flight: int = IN_FLIGHT,
    rps: int | None = None,
    json_body: Path | None = None,
) -> tuple[Run, int, int]:
    """The run, the HTTP 2xx count and the response DATA bytes. With a gRPC `frame`, gRPC over
    h2c; without, a plain GET over HTTP/1.1 (a POST of `json_body`, if given). With `rps`, each
    client sends that many requests per second on a fixed schedule instead of one after
    another."""
    argv = f"h2load -t1 -c{in_flight} -m1 -D {seconds} --log-file={log}".split()
    argv += [f"--rps={rps}"] if rps else []
    if frame is not None:
        headers = ["-d", str(frame), "-H", "content-type: application/grpc", "-H", "te: trailers"]
    elif json_body is not None:
        headers = ["--h1", "-d", str(json_body), "-H", "content-type: application/json"]
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
