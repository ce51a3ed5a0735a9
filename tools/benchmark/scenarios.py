"""The table of measured rows, and measuring one: its run, and the CPU time it cost each
serving process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from benchmark import browser_rows, grpc_rows, rest_rows
from benchmark.load import Run
from benchmark.pg_system import SUFFIX
from benchmark.procfs import elsewhere
from benchmark.references import Echo, Seed
from benchmark.session import Session
from benchmark.settings import MODERATE, MODERATE_RPS
from benchmark.system import System

PACED = f"{MODERATE} x {MODERATE_RPS}/s"
ROWS = (  # key, label, serving processes (their CPU time is charged); in the order they run
    ("echo", "echo (bare grpc.aio)", "echo"),
    ("get_user_grpc", "GetUser gRPC", "user_svc"),
    ("get_user_rest", "GetUser REST", "gateway user_svc"),
    ("get_user_connect", "GetUser Connect JSON", "gateway user_svc"),
    ("get_user_grpc_web", "GetUser gRPC-Web binary", "gateway user_svc"),
    ("create_order_grpc", "CreateOrder gRPC", "order_svc user_svc"),
    ("create_order_rest", "CreateOrder REST", "gateway order_svc user_svc"),
    ("create_order_connect", "CreateOrder Connect JSON", "gateway order_svc user_svc"),
    ("seed_post_order", "seed POST /order", "seed_order seed_user"),
    ("get_user_grpc_moderate", f"GetUser gRPC, {PACED}", "user_svc"),
    ("get_user_rest_moderate", f"GetUser REST, {PACED}", "gateway user_svc"),
    ("get_order_ours", "GetOrder REST, trivial backend: our gateway", "ref_gateway"),
    ("get_order_naive", "GetOrder REST, trivial backend: naive gateway", "naive_gateway"),
)
ON_DATABASE = (
    "get_user_grpc", "get_user_rest", "create_order_grpc", "create_order_rest",
    "get_user_grpc_moderate", "get_user_rest_moderate",
)  # fmt: skip
"""The rows that touch a database: with `--database`, each has a PostgreSQL twin (key
`<key>_pg`) measured right after it, so that their ratio holds within a round."""
ROTATED = (
    ("get_user_rest", "get_user_connect", "get_user_grpc_web"),
    ("create_order_rest", "create_order_connect"),
)
"""Rows compared with each other (one RPC over each protocol): their order turns from one
round to the next. Measured always in the same order, a row that comes after another pays
for what the one before left (measured: ±5% of the gateway's CPU per request)."""


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    procs: tuple[str, ...]
    """The serving processes whose CPU time the requests cost."""
    measure: Callable[[int], Run]


def scenarios(
    session: Session,
    system: System,
    echo: Echo,
    ref_urls: dict[str, str],
    seed: Seed | None,
    on_postgres: System | None = None,
) -> list[Scenario]:
    """The rows of ROWS whose processes were started (not the REST rows without a gateway,
    nor the seed's without the seed design), each row of ON_DATABASE followed by its twin
    on the PostgreSQL system when there is one."""
    measures = _measures(session, system, echo, ref_urls, seed)
    twins = _measures(session, on_postgres, echo, ref_urls, seed) if on_postgres else {}
    found: list[Scenario] = []
    for key, label, procs in ROWS:
        if key not in measures:
            continue
        found.append(Scenario(key, label, tuple(procs.split()), measures[key]))
        if key in ON_DATABASE and key in twins:
            charged = [p + SUFFIX for p in procs.split()] + list(session.meters)
            twin = Scenario(key + SUFFIX, f"{label} (PostgreSQL)", tuple(charged), twins[key])
            found.append(twin)
    return found


def _measures(
    session: Session, system: System, echo: Echo, ref_urls: dict[str, str], seed: Seed | None
) -> dict[str, Callable[[int], Run]]:
    """How each row that `system` and the references allow is measured."""
    h2, h1, http = session.tmp / "h2.log", session.tmp / "h1.log", session.http
    moderate = {"in_flight": MODERATE, "rps": MODERATE_RPS}
    measures: dict[str, Callable[[int], Run]] = {
        "echo": partial(grpc_rows.echo, echo, h2),
        "get_user_grpc": partial(grpc_rows.get_user_grpc, system, h2),
        "create_order_grpc": partial(grpc_rows.create_order_grpc, system, h2),
        "get_user_grpc_moderate": partial(grpc_rows.get_user_grpc, system, h2, **moderate),
    }
    if system.gateway is not None:
        get_order = session.tmp / "get_order.lua"
        measures |= {
            "get_user_rest": partial(rest_rows.get_user_rest, http, system),
            "get_user_connect": partial(browser_rows.get_user_connect, http, system, session.tmp),
            "get_user_grpc_web": partial(browser_rows.get_user_grpc_web, http, system, session.tmp),
            "create_order_connect": partial(
                browser_rows.create_order_connect, http, system, session.tmp
            ),
            "create_order_rest": partial(rest_rows.create_order_rest, http, system),
            "get_user_rest_moderate": partial(rest_rows.get_user_rest_paced, http, system, h1),
            "get_order_ours": partial(
                rest_rows.get_order_via, http, ref_urls["ref_gateway"], get_order
            ),
            "get_order_naive": partial(
                rest_rows.get_order_via, http, ref_urls["naive_gateway"], get_order
            ),
        }
    if seed is not None:
        measures["seed_post_order"] = partial(rest_rows.seed_post_order, http, seed)
    return measures


def measure(session: Session, scenario: Scenario, seconds: int) -> Run:
    """Runs `scenario`, charging its CPU time; notes what else kept the CPUs busy (not the
    servers it charged that are no children of ours, such as PostgreSQL's)."""
    before = {name: session.cpu(name) for name in scenario.procs}
    meters = [session.meters[name] for name in scenario.procs if name in session.meters]
    run, others = elsewhere(partial(scenario.measure, seconds), lambda: sum(m() for m in meters))
    run.other_cores = others
    for name in scenario.procs:
        spent = session.cpu(name) - before[name]
        run.cpu_us[name] = spent * 1e6 / max(1, run.requests)
    run.notes.append(f"other processes: {run.other_cores:.2f} CPUs")
    return run


def round_order(scenarios: list[Scenario], number: int) -> list[Scenario]:
    """`scenarios` in the order round `number` (from 1) measures them: each `ROTATED` group
    turned by one place per round, in the places its rows have."""
    ordered = list(scenarios)
    for group in ROTATED:
        places = [i for i, s in enumerate(ordered) if s.key in group]
        rows = [ordered[i] for i in places]
        turn = (number - 1) % len(rows) if rows else 0
        for place, row in zip(places, rows[turn:] + rows[:turn], strict=True):
            ordered[place] = row
    return ordered
