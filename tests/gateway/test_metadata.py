"""HTTP headers ↔ gRPC metadata and the Grpc-Timeout header."""

from __future__ import annotations

import pytest

from gateway.errors import RequestError
from gateway.headers import RequestHeaders
from gateway.metadata import parse_timeout, request_metadata, response_headers


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500m", 0.5),
        ("2S", 2.0),
        ("1M", 60.0),
        ("1H", 3600.0),
        ("250u", 0.00025),
        ("100n", 1e-7),
        ("99999999S", 99999999.0),
        ("0S", 0.0),
    ],
)
def test_grpc_timeouts(text: str, seconds: float) -> None:
    assert parse_timeout(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "S", "1s", "1.5S", "-1S", "123456789S", " 1S"])
def test_bad_grpc_timeouts(text: str) -> None:
    with pytest.raises(RequestError) as raised:
        parse_timeout(text)
    assert raised.value.field == "grpc-timeout"


def test_request_headers_to_metadata() -> None:
    metadata, timeout = request_metadata(
        RequestHeaders(
            [
                (b"host", b"api.example.com"),
                (b"authorization", b"Bearer abc"),
                (b"grpc-metadata-x-tenant", b"t1"),
                (b"grpc-metadata-trace-bin", b"AQID"),
                (b"grpc-timeout", b"3S"),
                (b"accept", b"*/*"),
            ]
        ),
        ("10.0.0.9", 5555),
    )
    assert metadata == [
        ("authorization", "Bearer abc"),
        ("x-tenant", "t1"),
        ("trace-bin", b"\x01\x02\x03"),
        ("x-forwarded-for", "10.0.0.9"),
        ("x-forwarded-host", "api.example.com"),
    ]
    assert timeout == 3.0


def test_forwarded_headers_are_extended_not_replaced() -> None:
    metadata, timeout = request_metadata(
        RequestHeaders(
            [
                (b"x-forwarded-for", b"1.2.3.4"),
                (b"x-forwarded-host", b"front.example.com"),
                (b"host", b"inner"),
            ]
        ),
        ("10.0.0.9", 1),
    )
    assert dict(metadata) == {
        "x-forwarded-for": "1.2.3.4, 10.0.0.9",
        "x-forwarded-host": "front.example.com",
    }
    assert timeout is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b"grpc-metadata-grpc-status", b"0"),
        (b"grpc-metadata-content-type", b"text/plain"),
        (b"grpc-metadata-bad key", b"v"),
        (b"grpc-metadata-x", "é".encode()),
        (b"grpc-metadata-x-bin", b"not base64!"),
        (b"authorization", b"Bearer \x01"),
        (b"authorization", b"Bearer \x7f"),
    ],
)
def test_headers_that_cannot_be_metadata_are_refused(name: bytes, value: bytes) -> None:
    with pytest.raises(RequestError) as raised:
        request_metadata(RequestHeaders([(name, value)]), None)
    assert raised.value.field == name.decode()


def test_response_metadata_to_headers() -> None:
    headers = response_headers(
        [("x-served-by", "fake"), ("x-blob-bin", b"\x01\x02"), ("grpc-internal", "x")],
        [("x-trailer", "done"), ("grpc-status-details-bin", b"...")],
    )
    assert headers == [
        (b"grpc-metadata-x-served-by", b"fake"),
        (b"grpc-metadata-x-blob-bin", b"AQI="),
        (b"grpc-trailer-x-trailer", b"done"),
    ]
