"""`make bench`: throughput and latency of the system beside its references (not a test).

The entry point; the benchmark itself is the package `tools/benchmark/`, importable here
because this script's directory is first on `sys.path`.
"""

from __future__ import annotations

import sys

from benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
