"""The console's pure modules (console/format.js: money and ids; console/errors.js: what a
failed call says) under `node --test`; the page itself runs in tests/browser/."""

from __future__ import annotations

import re

import pytest

from tests.node.test_node_client import run_node

CONSOLE_TEST = "tests/node/console.test.mjs"
# The spec reporter's summary; `node --test` also exits 0 when it found no test at all.
_PASSED = re.compile(r"^\S* ?pass (\d+)$", re.MULTILINE)


async def test_the_consoles_formatting_and_error_text() -> None:
    code, output = await run_node("--test", "--test-reporter=spec", CONSOLE_TEST)
    if code != 0:
        pytest.fail(f"node --test {CONSOLE_TEST} failed ({code}):\n{output}")
    passed = _PASSED.search(output)
    assert passed is not None, output
    assert int(passed.group(1)) >= 4, output
