"""deploy/monitoring/grafana: the dashboard's JSON has what Grafana needs to load it as it
is (provisioning), and every panel is a query panel over the `datasource` variable,
filtered by the `job` and `instance` variables. Grafana itself is neither in Debian nor on
PyPI: this and tests/monitoring/test_prometheus_e2e.py (every query evaluated by a real
Prometheus) are what prove the dashboard."""

from __future__ import annotations

import itertools
from typing import Any

from tests.monitoring.support import (
    DASHBOARD,
    GRAFANA_BUILTINS,
    PROVISIONING,
    dashboard,
    dashboard_exprs,
    load_yaml,
    panels,
    variables_used,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

PLAN_METRICS = (
    "grpc_server_handled_total",
    "grpc_server_started_total",
    "grpc_server_handling_seconds_bucket",
    "grpc_server_msg_received_total",
    "grpc_server_msg_sent_total",
    "grpc_client_handled_total",
    "grpc_client_handling_seconds_bucket",
    "shop_gateway_requests_total",
    "shop_gateway_request_duration_seconds_bucket",
    "shop_gateway_open_streams",
    "shop_gateway_refused_total",
    "shop_feed_head_revision",
    "shop_feed_compact_revision",
    "shop_feed_watchers",
    "shop_feed_events_sent_total",
    "shop_feed_watchers_cut_off_total",
    "shop_view_revision",
    "shop_view_lag_revisions",
    "shop_view_lag_seconds",
    "shop_view_reconnects_total",
    "shop_health_serving",
    "shop_storage_unit_of_work_seconds_bucket",
    "shop_storage_writer_queue_length",
    "shop_storage_commit_group_size_bucket",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "up",
)


def query_panels(board: Any) -> list[Any]:
    return [panel for panel in panels(board) if panel["type"] != "row"]


def variables(board: Any) -> dict[str, Any]:
    return {variable["name"]: variable for variable in board["templating"]["list"]}


def test_the_dashboard_is_ready_to_provision() -> None:
    board = dashboard()
    assert board["uid"] == "shop-overview"
    assert board["id"] is None  # Grafana assigns it; a fixed id clashes across instances
    assert board["schemaVersion"] >= 36
    assert board["title"]
    assert not board.get("__inputs"), "provisioning does not fill in export inputs"


def test_the_variables_are_a_prometheus_datasource_job_and_instance() -> None:
    found = variables(dashboard())
    assert set(found) == {"datasource", "job", "instance"}
    assert found["datasource"]["type"] == "datasource"
    assert found["datasource"]["query"] == "prometheus"
    for name, definition in (
        ("job", "label_values(up, job)"),
        ("instance", 'label_values(up{job=~"$job"}, instance)'),
    ):
        variable = found[name]
        assert variable["type"] == "query"
        assert variable["datasource"] == DATASOURCE
        assert variable["definition"] == definition
        assert variable["query"]["query"] == definition
        assert variable["multi"]
        assert variable["includeAll"]


def test_every_panel_queries_the_datasource_variable() -> None:
    for panel in query_panels(dashboard()):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']}: a panel without a query shows nothing"
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_rows_hold_no_queries() -> None:
    for panel in panels(dashboard()):
        if panel["type"] == "row":
            assert "targets" not in panel, panel["title"]


def test_panel_ids_are_unique_and_every_panel_has_a_place() -> None:
    every = list(panels(dashboard()))
    ids = [panel["id"] for panel in every]
    assert len(ids) == len(set(ids))
    for panel in every:
        place = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(place), panel["title"]
        assert all(isinstance(place[k], int) for k in "hwxy"), panel["title"]
        assert place["x"] >= 0, panel["title"]
        assert place["w"] > 0, panel["title"]
        assert place["x"] + place["w"] <= 24, panel["title"]


def test_no_two_panels_overlap() -> None:
    def cells(panel: Any) -> set[tuple[int, int]]:
        p = panel["gridPos"]
        return {
            (x, y) for x in range(p["x"], p["x"] + p["w"]) for y in range(p["y"], p["y"] + p["h"])
        }

    for a, b in itertools.combinations(panels(dashboard()), 2):
        assert not cells(a) & cells(b), (a["title"], b["title"])


def test_every_variable_used_exists() -> None:
    board = dashboard()
    known = set(variables(board)) | GRAFANA_BUILTINS
    used = variables_used(DASHBOARD.read_text())
    assert used, "the dashboard uses its variables"
    assert used <= known, used - known


def test_every_query_is_filtered_by_job_and_instance() -> None:
    for where, expr in dashboard_exprs(dashboard()):
        assert 'job=~"$job"' in expr, where
        assert 'instance=~"$instance"' in expr, where


def test_grpc_latency_is_over_unary_calls_only() -> None:
    for where, expr in dashboard_exprs(dashboard()):
        if "handling_seconds_bucket" in expr:
            assert expr.count("handling_seconds_bucket{") == expr.count('grpc_type="unary"'), where


def test_the_dashboard_shows_every_metric_of_the_plan() -> None:
    exprs = " ".join(expr for _, expr in dashboard_exprs(dashboard()))
    missing = [name for name in PLAN_METRICS if f"{name}{{" not in exprs]
    assert not missing


def test_grafana_provisioning_loads_the_dashboard_and_a_prometheus_datasource() -> None:
    sources = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")
    assert sources["apiVersion"] == 1
    [source] = sources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"].startswith("http")
    providers = load_yaml(PROVISIONING / "dashboards" / "shop.yml")
    assert providers["apiVersion"] == 1
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"]
