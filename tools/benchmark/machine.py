"""The machine and the versions a run was measured with, for the report."""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
from pathlib import Path

import grpc

from benchmark.processes import sh
from benchmark.settings import REPO


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
