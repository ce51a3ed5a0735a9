"""Process trees, CPU time and memory, read from /proc."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

CLK_TCK = os.sysconf("SC_CLK_TCK")

T = TypeVar("T")


def stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from `state` on: [1] ppid, [11] utime, [12] stime."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    pids = (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    parents = {pid: int(s[1]) for pid in pids if (s := stat_fields(pid))}
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
    return sum(int(s[11]) + int(s[12]) for pid in tree(root) if (s := stat_fields(pid))) / CLK_TCK


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


def elsewhere(work: Callable[[], T], foreign: Callable[[], float] | None = None) -> tuple[T, float]:
    """The result of `work`, and the CPUs kept busy meanwhile by processes this one did not
    start (nor its children), apart from those `foreign` counts (CPU seconds so far: the
    servers a row is charged for that are no children of ours, such as PostgreSQL's)."""
    count = foreign or (lambda: 0.0)
    busy, ours, start = machine_busy(), own_cpu() + count(), time.monotonic()
    result = work()
    others = (machine_busy() - busy) - (own_cpu() + count() - ours)
    return result, max(0.0, others / (time.monotonic() - start))
