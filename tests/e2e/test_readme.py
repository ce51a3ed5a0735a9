"""The README's commands ("Call it from your language", "The REST gateway", "From a browser"),
run as written against the system `make run` starts (only the addresses are swapped for the
test system's ephemeral ports)."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess

import pytest

from tests.e2e.conftest import ROOT, System

pytestmark = pytest.mark.e2e

SECTIONS = ("## Call it from your language", "## The REST gateway", "## From a browser")


def readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = []
    for title in SECTIONS:
        section = text[text.index(title) :]
        section = section[: section.index("\n## ", len(title))]
        blocks += re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return blocks


def localized(block: str, system: System, tmp_path: pathlib.Path) -> str:
    gateway = system.gateway_url.removeprefix("http://")
    return (
        block.replace("127.0.0.1:50051", system.user_addr)
        .replace("127.0.0.1:50052", system.order_addr)
        .replace("localhost:8080", gateway)
        .replace("/tmp/shop-client", str(tmp_path / "shop-client"))
    )


def streams(block: str) -> bool:
    return "Watch" in block or ":watch" in block


BLOCKS = readme_blocks()


def test_the_section_has_every_language() -> None:
    joined = "\n".join(BLOCKS)
    for needle in ("grpcurl", "curl -s", "example.py", "example.mjs", "WatchUsers", ":watch"):
        assert needle in joined, needle


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if not streams(b)], ids=lambda b: b.split()[0].strip("=")[:20]
)
def test_command_block_runs(block: str, system: System, tmp_path: pathlib.Path) -> None:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", localized(block, system, tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip(), "the block printed nothing"
    assert "Failed to" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if streams(b)], ids=["grpcurl", "curl-ndjson", "curl-sse"]
)
def test_watch_block_streams_the_history(
    block: str, system: System, tmp_path: pathlib.Path
) -> None:
    # A watch runs until stopped: give it a moment, then stop it as Ctrl-C would.
    process = subprocess.Popen(
        ["bash", "-c", f"exec {localized(block, system, tmp_path).strip()}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=3)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert '"revision"' in out, out + err
    assert "TYPE_PUT" in out, out + err
