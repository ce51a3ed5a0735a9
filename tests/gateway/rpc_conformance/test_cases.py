"""Every case of the table against the real gateway and the fake backends: the request
sent as it is, the response judged by the rule, and what the backend saw."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from tests.gateway.rpc_conformance.cases import CASES, VARIANTS, Case
from tests.gateway.rpc_conformance.conftest import Fakes, Gateways, send

DEVIATIONS: Mapping[str, str] = {
    "connect.unary.leading-metadata": "custom request headers (X-Echo) are not forwarded as "
    "metadata: only Grpc-Metadata-* and Authorization are (gateway/metadata.py)",
    "grpc-web.metadata": "custom request headers (X-Echo) are not forwarded as metadata: only "
    "Grpc-Metadata-* and Authorization are (gateway/metadata.py)",
    "connect.unary.unknown-method": '404 with a google.rpc.Status body ({"code": 5, '
    '"@type" details}), not a Connect Error nor empty',
    "connect.unary.unknown-service": '404 with a google.rpc.Status body ({"code": 5}), not '
    "a Connect Error nor empty",
    "connect.get.side-effects": '405 with a google.rpc.Status body ({"code": 12}), not a '
    "Connect Error nor empty",
    "connect.get.streaming-method": '405 with a google.rpc.Status body ({"code": 12}), not '
    "a Connect Error nor empty",
    "connect.compression.empty-body-not-decompressed": "an empty body with Content-Encoding: "
    "gzip is inflated: 400 invalid_argument 'the gzip data is truncated'",
    "connect.get.empty-message-not-decompressed": "an empty message with compression=gzip is "
    "inflated: 400 invalid_argument",
    "connect.get.unknown-encoding": "encoding=xml is 400 invalid_argument ('must be json or "
    "proto'), where the spec says 415",
    "grpc-web.refused.unknown-method": "404 with a REST google.rpc.Status JSON body, where "
    "gRPC-Web answers 200 with grpc-status 12",
    "cors.preflight.vary": "the preflight echoes Access-Control-Request-Headers but varies on "
    "Origin only",
}
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
