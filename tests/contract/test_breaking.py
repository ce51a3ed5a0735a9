"""The contract guard (`make breaking`) passes on the contracts as committed and fails on a
copy of them with a breaking change, naming it; a compatible addition passes."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
USER_PROTO = pathlib.Path("protos/shop/user/v1/user.proto")


@pytest.fixture
def project(tmp_path: pathlib.Path) -> pathlib.Path:
    for name in ("protos", "third_party", "contract"):
        shutil.copytree(ROOT / name, tmp_path / name)
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    return tmp_path


def check(root: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "contract.py"), "check", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def edit(root: pathlib.Path, old: str, new: str) -> None:
    path = root / USER_PROTO
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def test_committed_contracts_match_the_baseline(project: pathlib.Path) -> None:
    result = check(project)
    assert result.returncode == 0, result.stdout + result.stderr


def test_changed_field_type_is_caught(project: pathlib.Path) -> None:
    edit(project, "  string email = 2 [", "  int64 email = 2 [")
    result = check(project)
    assert result.returncode != 0
    assert 'Field "2" with name "email" on message "User" changed type' in result.stdout
    assert "break compatibility" in result.stderr


def test_removed_field_is_caught(project: pathlib.Path) -> None:
    edit(project, "  string display_name = 3", "  reserved 3;\n  string unused_name = 30")
    result = check(project)
    assert result.returncode != 0
    assert "display_name" in result.stdout


def test_added_field_is_compatible(project: pathlib.Path) -> None:
    edit(project, "  string email = 2 [", "  string nickname = 40;\n  string email = 2 [")
    result = check(project)
    assert result.returncode == 0, result.stdout + result.stderr
