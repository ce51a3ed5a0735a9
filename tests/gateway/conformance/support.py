"""Reading the echo backend's answers through the gateway."""

from __future__ import annotations

from typing import Any

import httpx
from google.protobuf import json_format
from google.protobuf.message import Message

from tests.gateway.conformance.protos import Conformance

STREAMED = 3
"""How many messages the streaming echo sends."""
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


def answer(response: httpx.Response) -> dict[str, Any]:
    """The Echo of a successful response (200, or 201 for a Create), as JSON."""
    assert response.is_success, response.text
    body: dict[str, Any] = response.json()
    return body


def received(api: Conformance, response: httpx.Response, method: str) -> Message:
    """The request that RPC `method` got, from its Echo."""
    echo = answer(response)
    assert echo["method"] == method
    return json_format.ParseDict(echo["request"], api.Everything())


def message(api: Conformance, value: dict[str, Any]) -> Message:
    """The request that `value`, in proto3 JSON, stands for."""
    return json_format.ParseDict(value, api.Everything())


def refusal(response: httpx.Response, status: int) -> tuple[str, str]:
    """The ErrorInfo reason and the BadRequest field (or "") of a gateway refusal."""
    assert response.status_code == status, response.text
    details = {detail["@type"]: detail for detail in response.json()["details"]}
    violations = details.get(BAD_REQUEST, {}).get("fieldViolations", [{}])
    return details[ERROR_INFO]["reason"], violations[0].get("field", "")
