"""deploy/monitoring/prometheus: the rules pass `promtool check rules` and their unit tests
(`promtool test rules rules_test.yml`), the config passes `promtool check config`, and every
alert carries what an on-call needs and is unit-tested both ways (firing and not)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.monitoring.support import (
    JOBS,
    PROMETHEUS_CONFIG,
    ROOT,
    RULES,
    RULES_TEST,
    binary,
    load_yaml,
    rules,
    without_threshold,
)

SEVERITIES = {"critical", "warning"}


def promtool(*args: str) -> str:
    done = subprocess.run(
        [binary("promtool"), *args],
        cwd=RULES.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules(load_yaml(RULES)) if "alert" in rule]


def test_promtool_checks_the_rules() -> None:
    output = promtool("check", "rules", RULES.name)
    assert f"SUCCESS: {len(rules(load_yaml(RULES)))} rules found" in output


def test_promtool_runs_the_rules_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", RULES_TEST.name)


def test_promtool_checks_the_config() -> None:
    assert "is valid prometheus config file syntax" in promtool(
        "check", "config", PROMETHEUS_CONFIG.name
    )


def test_the_config_scrapes_the_three_processes_at_their_default_admin_ports() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["rule_files"] == [RULES.name]
    targets = {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets == {
        "user_svc": ["127.0.0.1:9091"],
        "order_svc": ["127.0.0.1:9092"],
        "gateway": ["127.0.0.1:9093"],
    }
    assert tuple(targets) == JOBS


@pytest.mark.parametrize("alert", alerts(), ids=lambda alert: alert["alert"])
def test_every_alert_says_what_it_means_and_where_its_runbook_is(alert: dict[str, Any]) -> None:
    name = alert["alert"]
    assert alert["labels"]["severity"] in SEVERITIES
    annotations = alert["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert annotations["runbook_url"] == f"README.md#runbook-{name.lower()}"
    # The anchor is the README's heading `#### Runbook: <Alert>` (GitHub lowercases it).
    assert f"\n#### Runbook: {name}\n" in (ROOT / "README.md").read_text()
    # The threshold is the top-level comparison: what the end-to-end test takes off.
    assert without_threshold(alert["expr"]) != alert["expr"].strip()


@pytest.mark.parametrize("alert", alerts(), ids=lambda alert: alert["alert"])
def test_every_alert_is_unit_tested_firing_and_not(alert: dict[str, Any]) -> None:
    cases = [
        case
        for test in load_yaml(RULES_TEST)["tests"]
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == alert["alert"]
    ]
    assert any(case["exp_alerts"] for case in cases), "never shown to fire"
    assert any(not case["exp_alerts"] for case in cases), "never shown not to fire"


def test_latency_quantiles_are_over_unary_calls_only() -> None:
    """A watch lasts as long as its client: in the gRPC histograms it would swamp latency."""
    for rule in rules(load_yaml(RULES)):
        if "grpc_server_handling_seconds_bucket" in rule["expr"]:
            assert 'grpc_type="unary"' in rule["expr"], rule
