"""What the monitoring tests share: where deploy/monitoring's files are, Prometheus's
binaries (Debian's `prometheus` package; `.ci/run` installs it, elsewhere the tests that need
it skip and say so), and the PromQL expressions of the dashboard and of the rules."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "prometheus" / "rules.yml"
RULES_TEST = MONITORING / "prometheus" / "rules_test.yml"
PROMETHEUS_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
DASHBOARD = MONITORING / "grafana" / "shop.json"
PROVISIONING = MONITORING / "grafana" / "provisioning"

JOBS = ("user_svc", "order_svc", "gateway")
"""The scrape jobs' names in prometheus.yml, which the rules and the dashboard select on."""

GRAFANA_BUILTINS = frozenset(
    {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms"}
)
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")


REQUIRE_ENV = "SHOP_REQUIRE_PROMETHEUS"
"""Set by .ci/run, which installs Prometheus: there a missing binary fails, never skips."""


def binary(name: str) -> str:
    """`prometheus` or `promtool`, or the test skips: they come with Debian's package."""
    found = shutil.which(name)
    if found is None:
        reason = (
            f"{name} not found: install Debian's prometheus package "
            "(apt-get install --no-install-recommends prometheus); .ci/run does"
        )
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def load_yaml(path: pathlib.Path) -> Any:
    return yaml.safe_load(path.read_text())


def dashboard() -> Any:
    return json.loads(DASHBOARD.read_text())


def panels(board: Any) -> Iterator[Any]:
    """Every panel, those inside collapsed rows included."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs(board: Any) -> list[tuple[str, str]]:
    """(panel title and refId, expression) of every query of the dashboard."""
    return [
        (f"panel {panel['title']!r} {target['refId']}", target["expr"])
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]


def variables_used(text: str) -> set[str]:
    """The names of the Grafana variables `text` uses (`$name`, `${name}`, `[[name]]`)."""
    return {next(g for g in match.groups() if g) for match in _VARIABLE.finditer(text)}


def rules(document: Any) -> list[dict[str, Any]]:
    return [rule for group in document["groups"] for rule in group["rules"]]


def without_threshold(expr: str) -> str:
    """`<query> <comparison> <number>` → `<query>`: the alert's condition without its
    threshold, what the series the alert compares are. The comparison must be the
    expression's top-level operator (outside any (), {}, [] and string)."""
    depth, quote, found = 0, "", -1
    i = 0
    while i < len(expr):
        char = expr[i]
        if quote:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and expr.startswith(_COMPARISONS, i):
            found = i
            i += 2 if expr[i + 1 : i + 2] == "=" else 1
            continue
        i += 1
    if found < 0:
        raise ValueError(f"no top-level comparison in {expr!r}")
    query = expr[:found].strip()
    threshold = expr[found:].lstrip("=!<>").strip()
    try:
        float(threshold)
    except ValueError:
        raise ValueError(f"not `<query> <comparison> <number>`: {expr!r}") from None
    return query


def rule_exprs(document: Any) -> list[tuple[str, str]]:
    """(rule name, expression) of every rule: recording rules as they are, alerts without
    their threshold."""
    return [
        (
            f"alert {rule['alert']}" if "alert" in rule else f"record {rule['record']}",
            without_threshold(rule["expr"]) if "alert" in rule else rule["expr"].strip(),
        )
        for rule in rules(document)
    ]
