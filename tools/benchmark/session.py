"""What one benchmark run started: its temp dir and processes, all stopped when it ends."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx

from benchmark.processes import Proc
from benchmark.procfs import cpu_seconds, runs_module

BASE_ENV = {
    # The load tools are one client at thousands of requests per second: the gateway's
    # per-caller rate limit (50/s) would measure itself. (The environment may set it.)
    "GATEWAY_RATE_LIMIT_PER_SECOND": "0",
    # Metrics on, as by default, each admin port picked free: the run starts two gateways.
    "USER_SVC_ADMIN_LISTEN": "127.0.0.1:0",
    "ORDER_SVC_ADMIN_LISTEN": "127.0.0.1:0",
    "GATEWAY_ADMIN_LISTEN": "127.0.0.1:0",
    # No access line per request: a line costs the gateway ~30 µs (README, "Logs"), and this
    # process would read and keep every one while measuring. (The environment may set it.)
    "GATEWAY_ACCESS_LOG": "false",
}
"""What the processes a run starts are given unless the environment says otherwise."""


class Session:
    """A temp dir, the processes started into it, the roots of the serving ones and notes for
    the report; `stack` stops them and removes the dir."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self.stack, self.notes = stack, list[str]()
        self.tmp = Path(tempfile.mkdtemp(prefix="shop-bench-"))
        stack.callback(shutil.rmtree, self.tmp, ignore_errors=True)
        (self.tmp / "logs").mkdir()
        self.roots: dict[str, int] = {}
        """Serving process name → the pid at the root of its process tree."""
        self.meters: dict[str, Callable[[], float]] = {}
        """CPU seconds of serving processes that are no tree of ours (PostgreSQL's), by name."""
        self.http = stack.enter_context(httpx.Client(timeout=10))

    def start(self, name: str, argv: list[str], cwd: Path, env: dict[str, str]) -> Proc:
        env = {**BASE_ENV, **os.environ, "PYTHONUNBUFFERED": "1", **env}
        proc = Proc(name, argv, cwd, env, self.tmp / "logs")
        self.stack.callback(proc.stop)
        return proc

    def cpu(self, name: str) -> float:
        """CPU seconds the serving processes `name` have spent so far."""
        meter = self.meters.get(name)
        return meter() if meter is not None else cpu_seconds(self.roots[name])

    def kill_leftovers(self, names: tuple[str, ...], suffix: str = "") -> None:
        """SIGKILL services tools/run.py started if they outlived it (it was killed); their
        roots are named `name + suffix`."""
        for name in names:
            if (pid := self.roots.get(name + suffix)) and runs_module(pid, name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
