"""The RPC protocols a browser can speak, served for every method of the served services
from their descriptors, on the REST routes' port: the Connect protocol (`_connect`) and
gRPC-Web (`_grpc_web`), at `/<package>.<Service>/<Method>`, the protocol chosen by the
request's content type (`exchange_for`). Nothing is configured per method.

The gateway serves them as it serves REST (`gateway.app`): the same limits, identity,
metadata, deadlines, metrics, traces and error table; only the wire differs."""

from __future__ import annotations

from gateway.rpc._codecs import Codec
from gateway.rpc._exchange import Exchange
from gateway.rpc._negotiation import exchange_for, refusal_form, unknown_procedure
from gateway.rpc._procedures import Procedure, procedures_of

__all__ = [
    "Codec",
    "Exchange",
    "Procedure",
    "exchange_for",
    "procedures_of",
    "refusal_form",
    "unknown_procedure",
]
