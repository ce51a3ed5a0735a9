"""The table: one case per rule of the Connect protocol and of gRPC-Web that the gateway
must keep, each naming the rule (spec, section, the rule's words or their gist), the request
that tries it, the response expected, and what the backend must (or must not) have seen.
The rows are in one module per part of the protocols; the vocabulary in table.py."""

from __future__ import annotations

import grpc

from tests.gateway.rpc_conformance import (
    browser,
    connect_get,
    connect_stream,
    connect_unary,
    grpcweb,
)
from tests.gateway.rpc_conformance.table import VARIANTS, Case, Request

__all__ = ["CASES", "VARIANTS", "Case", "Request"]

CASES: tuple[Case, ...] = (
    *connect_unary.connect_unary_cases(),
    *[
        connect_unary.http_status_case(code)
        for code in grpc.StatusCode
        if code is not grpc.StatusCode.OK
    ],
    *connect_unary.connect_timeout_cases(),
    *connect_unary.connect_compression_cases(),
    *connect_get.connect_get_cases(),
    *connect_stream.connect_stream_cases(),
    *connect_stream.connect_envelope_cases(),
    *grpcweb.grpc_web_cases(),
    *grpcweb.grpc_web_refusal_cases(),
    *browser.cors_cases(),
    *browser.limit_cases(),
)
