"""`make bench`: throughput and latency of the system beside its references (not a test).

In one run on this machine it starts the bare grpc.aio echo (the ceiling for a Python gRPC
server), our system (`tools/run.py` on a fresh SQLite directory) and the seed design (Flask +
gunicorn), the references from `../shared/bench` copied to a temp dir. At 32 requests in
flight it measures echo, GetUser and CreateOrder over gRPC with h2load, the same two through
the gateway with wrk, and the seed's POST /order with wrk: interleaved, `--rounds` times,
quoting medians. It prints a Markdown report with the machine's details and writes it as
JSON to bench/out/latest.json. h2load counts HTTP 200s, not gRPC statuses: each gRPC row is
checked by real calls before and after, and by the reply bytes (or orders) it got back.

With `--database postgresql` (or a URL) it starts the system a second time, on two databases
it creates on that server and drops at the end, and measures every row that touches a
database on it too, right after the same row on SQLite; the seed design stays on SQLite. The
server's settings are printed with the figures, and on a local server its processes' CPU time
is charged to those rows.

Before measuring, order_svc's view of users must hold every seeded user (its health entry
for the user feed SERVING): CreateOrder then checks users locally, as in production. The
change-feed rows (WatchUsers replay and live delivery) are in `benchmark.feed`; the report
states each target beside what was measured.

`tools/bench.py` is the entry point; `tools/` is on `sys.path` there (the script's own
directory), and the processes this package starts from its own modules run with `tools/` as
their working directory and `python -m`, so they import it the same way.

- `cli`: the command line and the order of the run; `errors`: why it stops
- `settings`: paths, and how hard the system is driven
- `session`: what one run started (temp dir, processes), stopped on exit
- `processes`: a started process and its output; `sh`; free ports
- `procfs`: process trees, CPU time and memory read from /proc
- `load`: h2load and wrk, and reading their output
- `calls`: real gRPC and HTTP calls that check a row before and after it
- `system`: the system under test, seeded and its view of users synced
- `postgres`: the `--database` server: its databases, settings and processes' CPU time;
  `pg_system`: the system (and the feed's user_svc) on it
- `references`: the echo server, the seed design and the two reference gateways
- `reference_gateway`: the trivial backend and the naive gateway (run as processes)
- `grpc_rows`, `rest_rows`: the measured rows; `scenarios`: their table and the measuring
- `machine`: the machine's description; `targets`: each target beside what was measured;
  `report`: Markdown and JSON
- `feed`: the change-feed rows
- `scale`: the scale mode (`--scale`): the system on loads of 10k to 1M users, its own rows
"""
