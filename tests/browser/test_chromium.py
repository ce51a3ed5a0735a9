"""Where Debian's Chromium is missing, the browser tests skip and say what to install; under
SHOP_REQUIRE_CHROMIUM=1 (CI) they fail instead."""

from __future__ import annotations

import pathlib

import pytest

from tests.browser import chromium


@pytest.fixture
def no_chromium(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setattr(chromium, "CHROMIUM", tmp_path / "chromium")


def test_without_chromium_the_browser_tests_skip_saying_what_to_install(
    no_chromium: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(chromium.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium chromium-driver"):
        chromium.chromium_or_skip()


def test_where_chromium_is_required_its_absence_fails(
    no_chromium: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(chromium.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="SHOP_REQUIRE_CHROMIUM=1 requires them"):
        chromium.chromium_or_skip()
