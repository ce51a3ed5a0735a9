"""Every case of the table against the real gateway and the fake backends: the request
sent as it is, the response judged by the rule, and what the backend saw."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from tests.gateway.rpc_conformance.cases import CASES, VARIANTS, Case
from tests.gateway.rpc_conformance.conftest import Fakes, Gateways, send

DEVIATIONS: Mapping[str, str] = {}
"""Rule id → how the gateway deviates from it, while it does (each an xfail, strict: the
fix turns it into a failure until its line here goes)."""


def _params() -> list[object]:
    return [
        pytest.param(
            case,
            id=case.rule,
            marks=[pytest.mark.xfail(strict=True, reason=DEVIATIONS[case.rule])]
            if case.rule in DEVIATIONS
            else [],
        )
        for case in CASES
    ]


@pytest.mark.asyncio(loop_scope="package")
@pytest.mark.parametrize("case", _params())
async def test_rule(case: Case, fakes: Fakes, gateways: Gateways) -> None:
    http = await gateways.client(case.gateway)
    for request in case.before:
        await send(http, request)
    fakes.forget()
    answer = await send(http, case.request)
    case.expect.check(answer)
    if case.backend is not None:
        await case.backend.check(fakes.recorder)


def test_every_rule_has_one_case_and_names_its_spec() -> None:
    rules = [case.rule for case in CASES]
    assert len(rules) == len(set(rules))
    assert all(case.spec and case.gateway in VARIANTS for case in CASES)
    assert set(DEVIATIONS) <= set(rules)
