"""The scale benchmark's parts that need no database: `--scale`, the plan of the data (its
skew, the same every run), the free disk refusal, and the p99 ratio to the 10k figure."""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import pytest
from benchmark.errors import BenchError
from benchmark.scale import results
from benchmark.scale.disk import check_free, needed_bytes
from benchmark.scale.plan import MOST_SPREAD, plan
from benchmark.scale.sizes import SIZES, TINY, Size, parse_sizes
from benchmark.scale.sqlite_store import SqliteTarget

from shop_common.domain import is_valid_id


def test_sizes_are_taken_smallest_first() -> None:
    assert [s.name for s in parse_sizes("1m, 10k")] == ["10k", "1m"]


@pytest.mark.parametrize("text", ["", "10k,2m", "tiny"])
def test_other_sizes_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_sizes(text)


@pytest.mark.parametrize("size", [TINY, SIZES["10k"]], ids=lambda s: s.name)
def test_the_plan_spreads_the_orders_with_a_skew(size: Size) -> None:
    found = plan(size)
    assert sum(found.counts) == size.orders
    assert [found.counts[i] for i in found.heavy] == [size.heavy_orders] * size.heavy_users
    others = [c for i, c in enumerate(found.counts) if i not in found.heavy]
    assert max(others) <= MOST_SPREAD
    assert statistics.median(others) <= 5
    assert found.typical not in found.heavy
    assert found.typical not in found.sample
    assert not set(found.heavy) & set(found.sample)


def test_the_plan_is_the_same_every_run_and_its_ids_as_the_services_issue() -> None:
    first, second = plan(TINY), plan(TINY)
    assert first == second
    assert all(is_valid_id(i) for i in first.user_ids)
    assert first.user_ids == sorted(first.user_ids)
    assert first.order_owners() == second.order_owners()


class _FullDisk(SqliteTarget):
    def free_bytes(self) -> int | None:
        return needed_bytes(SIZES["1m"], self.name) - 1


def test_a_load_the_disk_cannot_hold_is_refused(tmp_path: Path) -> None:
    target = _FullDisk(tmp_path)
    with pytest.raises(BenchError, match="needs about"):
        check_free(target, SIZES["1m"])
    assert "free" in check_free(target, SIZES["10k"])


def test_each_row_p99_is_compared_with_its_10k_figure() -> None:
    held = results.read(Path("/nonexistent/scale.json"))
    row = {"label": "GetUser", "rps": 1.0, "p50_ms": 1.0, "errors": 0}
    results.put(held, "10k", "sqlite", "rows", {"get_user": row | {"p99_ms": 2.0}})
    results.put(held, "1m", "sqlite", "rows", {"get_user": row | {"p99_ms": 5.0}})
    assert results.p99_ratio(held, "1m", "sqlite", "get_user") == 2.5
    assert results.p99_ratio(held, "1m", "postgresql", "get_user") is None
    assert "| GetUser | 1m | sqlite | 1 | 1.00 | 5.00 | 2.50 (over) | 0 |" in results.markdown(held)
