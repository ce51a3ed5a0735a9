"""The dashboard and the rules against a real Prometheus (Debian's package) scraping the real
system: `tools/run.py` starts user_svc, order_svc and the gateway as `make run` does (on
ephemeral ports, their admin ports too), Prometheus scrapes each every second under the job
names of deploy/monitoring/prometheus/prometheus.yml and loads the repository's rules.yml,
and the test drives traffic through the gateway and over gRPC.

Then **every** expression is evaluated through Prometheus's HTTP API: each query of the
dashboard (its variables filled in as Grafana fills them, `All` selected) and each rule's
(an alert's without its threshold comparison, so the series it compares are asked for).
Each must parse and return at least one series with a number in it: a panel that would
show nothing, or an alert watching a metric nobody exports, fails the test, which names
every such expression at once."""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import pytest
import yaml

from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from tests.e2e.conftest import ROOT, System, started_system, system_env
from tests.monitoring.support import (
    JOBS,
    RULES,
    binary,
    dashboard,
    dashboard_exprs,
    load_yaml,
    rule_exprs,
    rules,
    variables_used,
)

pytestmark = pytest.mark.e2e

_METRICS_LINE = re.compile(r"^\s+(user_svc|order_svc|gateway)\s+metrics\s+(http://\S+)$")
RATE_INTERVAL = "1m"
"""`$__rate_interval`: a window over the whole test, so every rate sees the traffic."""
WAIT_SECONDS = 30.0
UNKNOWN_ID = "01a21966-e263-7607-918a-d4d32f874249"  # well formed, never issued


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(what: str, check: Callable[[], bool], context: Callable[[], str]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not {what} within {WAIT_SECONDS}s\n{context()}")
        time.sleep(0.2)


def metrics_urls(system: System) -> dict[str, str]:
    """Each part's `/metrics` URL, from the table `tools/run.py` prints once all serve."""
    found: dict[str, str] = {}

    def all_printed() -> bool:
        for line in list(system.output):
            if match := _METRICS_LINE.match(line):
                found[match.group(1)] = match.group(2)
        return len(found) == len(JOBS)

    wait_until("every metrics address printed", all_printed, lambda: "\n".join(system.output))
    return found


class Prometheus:
    """A Prometheus process of the test's own and its HTTP API."""

    def __init__(self, url: str, log: pathlib.Path) -> None:
        self.url = url
        self.log = log

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:
            return json.loads(response.read())

    def query(self, expr: str) -> Any:
        """The API's answer, an error (`status: error`) included."""
        data = urllib.parse.urlencode({"query": expr}).encode()
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/query", data, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:  # 400/422: the expression did not parse
            return json.loads(error.read())

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                ready: bool = response.status == 200
                return ready
        except OSError:
            return False

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


@contextlib.contextmanager
def started_prometheus(tmp_path: pathlib.Path, targets: dict[str, str]) -> Iterator[Prometheus]:
    """Prometheus scraping `targets` (job → `/metrics` URL) every second with the repository's
    rules evaluated every second; stopped (SIGTERM) on leaving."""
    scrape_configs = []
    for job, url in targets.items():
        parsed = urllib.parse.urlsplit(url)
        scrape_configs.append(
            {
                "job_name": job,
                "metrics_path": parsed.path,
                "static_configs": [{"targets": [parsed.netloc]}],
            }
        )
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": scrape_configs,
    }
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    prometheus = Prometheus(f"http://127.0.0.1:{port}", log)
    try:
        wait_until(
            "Prometheus ready",
            lambda: process.poll() is None and prometheus.ready(),
            prometheus.tail,
        )
        yield prometheus
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def drive_traffic(system: System) -> None:
    """What a day brings, briefly: users and orders created and read, a 404, a 400, a watch
    opened and closed through the gateway (NDJSON and SSE), calls over gRPC, a gRPC watch."""
    base = system.gateway_url
    with httpx.Client(base_url=base, timeout=10) as http:
        users = []
        for _ in range(3):
            created = http.post("/v1/users", json={"email": f"{uuid.uuid4().hex}@example.com"})
            assert created.status_code == 201, created.text
            users.append(created.json())
        assert http.get(f"/v1/users/{users[0]['id']}").status_code == 200
        item = {"sku": "TEA-1", "quantity": 1, "unitPrice": {"currencyCode": "EUR", "units": "2"}}
        for user in users:
            order = http.post("/v1/orders", json={"userId": user["id"], "items": [item]})
            assert order.status_code == 201, order.text
            assert http.get(order.headers["location"]).status_code == 200
        assert http.get("/v1/orders").status_code == 200
        assert http.get(f"/v1/users/{UNKNOWN_ID}").status_code == 404
        bad = http.post("/v1/users", content=b"{", headers={"content-type": "application/json"})
        assert bad.status_code == 400, bad.text
        for accept in ("application/x-ndjson", "text/event-stream"):
            with http.stream(
                "GET", "/v1/users:watch", params={"startRevision": "1"}, headers={"accept": accept}
            ) as watch:
                assert watch.status_code == 200
                next(watch.iter_lines())  # an event: the stream is open, and now closed
    with grpc.insecure_channel(system.user_addr) as channel:
        users_stub = user_pb2_grpc.UserServiceStub(channel)
        users_stub.GetUser(user_pb2.GetUserRequest(id=users[1]["id"]))
        with pytest.raises(grpc.RpcError) as caught:
            users_stub.GetUser(user_pb2.GetUserRequest(id=UNKNOWN_ID))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        stream = users_stub.WatchUsers(user_pb2.WatchUsersRequest(start_revision=1))
        next(iter(stream))  # an event: the watch is open, and now cancelled
        stream.cancel()  # type: ignore[no-untyped-call]
    with grpc.insecure_channel(system.order_addr) as channel:
        orders_stub = order_pb2_grpc.OrderServiceStub(channel)
        orders_stub.ListOrders(order_pb2.ListOrdersRequest(page_size=10))


def grafana_expr(expr: str, values: dict[str, str]) -> str:
    """`expr` with its variables as Grafana fills them in (`All` selected: a regex of all)."""
    for name, value in sorted(values.items(), key=lambda item: -len(item[0])):
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    left = variables_used(expr)
    assert not left, f"unknown variables {left} in {expr}"
    return expr


def all_of(values: list[str]) -> str:
    """What Grafana puts in a PromQL regex for a multi-value variable with `All` selected:
    the values escaped as regexes, then as the string literal's characters."""
    return "(" + "|".join(re.escape(v).replace("\\", "\\\\") for v in values) + ")"


def label_values(prometheus: Prometheus, label: str, match: str) -> list[str]:
    answer = prometheus.get(f"/api/v1/label/{label}/values", **{"match[]": match})
    assert answer["status"] == "success", answer
    values: list[str] = answer["data"]
    return values


def shows_nothing(answer: Any) -> str | None:
    """Why the answer to a query would show nothing, or None if it shows something."""
    if answer.get("status") != "success":
        return f"{answer.get('errorType')}: {answer.get('error')}"
    result = answer["data"]["result"]
    if not result:
        return "no series"
    if not any(math.isfinite(float(series["value"][1])) for series in result):
        return f"no number in {len(result)} series (NaN or infinite)"
    return None


def scraped_since(prometheus: Prometheus, since: float, scrapes: int) -> bool:
    """Whether every target was scraped `scrapes` times since `since` and every rule group
    evaluated since (both every second)."""
    targets = prometheus.get("/api/v1/targets")["data"]["activeTargets"]
    groups = prometheus.get("/api/v1/rules")["data"]["groups"]
    stamps = [t["lastScrape"] for t in targets] + [g["lastEvaluation"] for g in groups]
    return len(targets) == len(JOBS) and all(
        _epoch(stamp) >= since + scrapes - 1 for stamp in stamps
    )


def _epoch(stamp: str) -> float:
    """An RFC 3339 time as Prometheus writes it (nanoseconds, which fromisoformat in 3.11
    does not take) as seconds since the epoch."""
    match = re.fullmatch(r"([^.]+?)(\.\d+)?(Z|[+-]\d\d:\d\d)", stamp)
    assert match is not None, stamp
    whole, fraction, zone = match.groups()
    seconds = datetime.datetime.fromisoformat(whole + zone.replace("Z", "+00:00")).timestamp()
    return seconds + float(fraction or 0)


def test_every_dashboard_query_and_every_rule_shows_series(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    env = {**system_env(tmp_path_factory), "GATEWAY_RATE_LIMIT_PER_SECOND": "0"}
    for name in ("USER_SVC_DATABASE_URL", "ORDER_SVC_DATABASE_URL"):
        env.pop(name, None)
    binary("prometheus")  # skips before the system starts, if absent
    with started_system([sys.executable, str(ROOT / "tools" / "run.py")], env) as system:
        targets = metrics_urls(system)
        tmp_path = tmp_path_factory.mktemp("prometheus")
        with started_prometheus(tmp_path, targets) as prometheus:

            def all_up() -> bool:
                found = prometheus.get("/api/v1/targets")["data"]["activeTargets"]
                return sorted(t["labels"]["job"] for t in found if t["health"] == "up") == sorted(
                    JOBS
                )

            wait_until(
                "every target up",
                all_up,
                lambda: json.dumps(prometheus.get("/api/v1/targets"), indent=1)[:3000],
            )
            drive_traffic(system)
            after = time.time()
            wait_until(
                "three scrapes and rule evaluations after the traffic",
                lambda: scraped_since(prometheus, after, 3),
                prometheus.tail,
            )

            # The rules all loaded and evaluate without error.
            groups = prometheus.get("/api/v1/rules")["data"]["groups"]
            loaded = [rule for group in groups for rule in group["rules"]]
            assert len(loaded) == len(rules(load_yaml(RULES)))
            broken = [(r["name"], r.get("lastError")) for r in loaded if r["health"] != "ok"]
            assert not broken

            # The variables, as Grafana asks for their values: every job, every instance.
            jobs = label_values(prometheus, "job", "up")
            assert sorted(jobs) == sorted(JOBS)
            instances = label_values(prometheus, "instance", f'up{{job=~"{"|".join(jobs)}"}}')
            assert len(instances) == len(JOBS)
            values = {
                "job": all_of(jobs),
                "instance": all_of(instances),
                "__rate_interval": RATE_INTERVAL,
                "__interval": "15s",
                "__range": "5m",
            }

            exprs = [
                (where, grafana_expr(expr, values)) for where, expr in dashboard_exprs(dashboard())
            ] + rule_exprs(load_yaml(RULES))
            empty = []
            for where, expr in exprs:
                reason = shows_nothing(prometheus.query(expr))
                if reason is not None:
                    empty.append(f"{where}: {reason}\n    {expr}")
            assert not empty, (
                f"{len(empty)} of {len(exprs)} expressions show nothing:\n" + "\n".join(empty)
            )
