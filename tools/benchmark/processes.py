"""Processes the benchmark starts and waits for: servers with their output, and commands."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from benchmark.errors import BenchError


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
        with log_path.open("w") as log, self.popen.stdout:
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sh(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, check=True, text=True, capture_output=True, **kwargs)
    except subprocess.CalledProcessError as error:
        raise BenchError(f"{' '.join(argv)} failed:\n{error.stdout}{error.stderr}") from None
