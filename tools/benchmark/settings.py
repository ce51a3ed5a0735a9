"""Where the benchmark reads and writes, and how hard it drives the system."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tools"
"""On `sys.path` of every process this package starts from its own modules (`python -m`)."""
SHARED = REPO.parent / "shared" / "bench"
OUT = REPO / "bench" / "out" / "latest.json"
IN_FLIGHT = 32
MODERATE = 1
MODERATE_RPS = 400
"""The latency rows: the gateway's added p99 at moderate load, MODERATE clients sending
MODERATE_RPS requests/s each on a fixed schedule (well below what the gateway serves at
IN_FLIGHT). Both rows are driven by h2load, gRPC over h2c and REST over HTTP/1.1, so that the
difference is the gateway's and not the load tools'. One client: h2load starts every
client's schedule at the same instant, so several clients would arrive in bursts."""
USERS = 1000
ITEMS_JSON = '[{"sku":"A-1","quantity":1,"unitPrice":{"currencyCode":"EUR","units":"2"}}]'
REF_ORDER_ID = "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c"
VIEW_SYNC_SECONDS = 60.0
