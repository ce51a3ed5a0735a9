"""The README's policy table says what `tests/policy_table.py` says, which the suites over
real servers check cell by cell: the docs cannot drift from what is tested."""

from __future__ import annotations

import pathlib
import re

from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from tests.policy_table import (
    ANONYMOUS,
    CALLERS,
    NOT_YOUR_ORDER,
    OK,
    TABLE,
    Code,
    Outcome,
)

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
COLUMNS = {
    "anonymous": "anonymous",
    "the owner": "owner",
    "another user": "another user",
    "an admin": "admin",
    "the order service": "order service",
    "the gateway's own identity, no token": "gateway",
}


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def readme_table(readme: str | None = None) -> dict[str, dict[str, Outcome]]:
    """The table of "Who may call what", each cell read as the README's words define it:
    ✓ runs; `UNAUTHENTICATED` has the reason the anonymous bullet names; `REASON` is
    PERMISSION_DENIED with that reason; "as anonymous" is the row's anonymous cell."""
    text = section(readme or README.read_text(encoding="utf-8"), "Who may call what")
    assert "otherwise `PERMISSION_DENIED` with the ErrorInfo reason shown" in text
    anonymous = re.search(
        r"\*\*Anonymous\*\*.*?`UNAUTHENTICATED` with reason\s+`([A-Z_]+)`", text, re.S
    )
    assert anonymous, "the anonymous bullet names no reason"
    unauthenticated = Outcome(Code.UNAUTHENTICATED, anonymous.group(1))
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header, rule, *rows = lines
    names = [cell.strip() for cell in header.strip("|").split("|")]
    assert names[0] == "RPC"
    assert set(rule) <= {"|", "-"}
    columns = [COLUMNS[name] for name in names[1:]]
    table: dict[str, dict[str, Outcome]] = {}
    for row in rows:
        rpc, *cells = (cell.strip() for cell in row.strip("|").split("|"))
        rpc = rpc.strip("`")
        read: dict[str, Outcome] = {}
        for column, cell in zip(columns, cells, strict=True):
            if cell.startswith("✓"):
                read[column] = OK
            elif cell == "`UNAUTHENTICATED`":
                read[column] = unauthenticated
            elif cell == "as anonymous":
                read[column] = read[ANONYMOUS]
            elif match := re.fullmatch(r"`([A-Z_]+)`( \(.*\))?", cell):
                read[column] = Outcome(Code.PERMISSION_DENIED, match.group(1))
            else:
                raise AssertionError(f"{rpc}, {column}: cannot read {cell!r}")
        table[rpc] = read
    return table


def test_the_readme_table_is_the_tested_table() -> None:
    readme = readme_table()
    assert list(readme) == list(TABLE)
    for rpc, row in TABLE.items():
        assert list(readme[rpc]) == list(CALLERS)
        assert {c: str(o) for c, o in readme[rpc].items()} == {c: str(o) for c, o in row.items()}, (
            rpc
        )


def test_the_table_has_every_rpc_of_both_services() -> None:
    names = [m.name for m in user_pb2.DESCRIPTOR.services_by_name["UserService"].methods]
    names += [m.name for m in order_pb2.DESCRIPTOR.services_by_name["OrderService"].methods]
    assert sorted(TABLE) == sorted(names)


def test_a_changed_readme_cell_reads_differently() -> None:
    """The reading is not vacuous: a cell changed in the README reads as the change says."""
    text = README.read_text(encoding="utf-8")
    row = "| `GetOrder` | `UNAUTHENTICATED` | ✓ |"
    assert row in text
    changed = text.replace(row, "| `GetOrder` | `UNAUTHENTICATED` | `NOT_YOUR_ORDER` |")
    assert readme_table(changed)["GetOrder"]["owner"] == NOT_YOUR_ORDER
    assert readme_table(text.replace("| as anonymous |", "| ✓ |", 1))["CreateUser"]["gateway"] == OK
