"""The request's header block, read once: what each reader sees of it."""

from __future__ import annotations

from gateway.headers import RequestHeaders

BLOCK = [
    (b"host", b"api.example.com"),
    (b"grpc-metadata-x-tenant", b"t1"),
    (b"if-match", b'"1"'),
    (b"accept", b"text/html"),
    (b"authorization", b"Bearer abc"),
    (b"user-agent", b"test"),
    (b"idempotency-key", b"k"),
    (b"accept", b"text/event-stream"),
    (b"grpc-timeout", b"2S"),
]


def test_a_header_read_by_name_is_its_last_line_and_all_its_lines_in_order() -> None:
    headers = RequestHeaders(BLOCK)
    assert headers.get(b"host") == b"api.example.com"
    assert headers.get(b"accept") == b"text/event-stream"
    assert headers.lines(b"accept") == [b"text/html", b"text/event-stream"]
    assert headers.joined(b"accept") == "text/html, text/event-stream"
    assert headers.lines(b"host") == (b"api.example.com",)


def test_a_header_the_request_lacks_is_none() -> None:
    headers = RequestHeaders(BLOCK)
    assert headers.get(b"origin") is None
    assert headers.lines(b"origin") == ()
    assert headers.joined(b"origin") is None


def test_metadata_and_request_field_lines_keep_their_order() -> None:
    headers = RequestHeaders(BLOCK)
    assert list(headers.metadata) == [
        (b"grpc-metadata-x-tenant", b"t1"),
        (b"authorization", b"Bearer abc"),
        (b"grpc-timeout", b"2S"),
    ]
    assert list(headers.request_fields) == [(b"if-match", b'"1"'), (b"idempotency-key", b"k")]


def test_an_empty_block_has_nothing() -> None:
    headers = RequestHeaders([])
    assert (headers.get(b"host"), headers.metadata, headers.request_fields) == (None, (), ())
