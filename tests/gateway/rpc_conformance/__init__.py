"""A conformance suite for what the gateway serves to browsers: the Connect protocol and
gRPC-Web, written from their specifications (Connect's conformance runner being out of
reach: a Go program, its npm package missing). One case per rule, in a table (cases.py),
each naming the rule's spec and section; test_cases.py runs every case against the real
gateway in front of the fake backends of tests/gateway/fakes.py; test_checks.py proves the
checks on the specs' own examples and near misses.

Covered (rule ids `<protocol>.<part>.<rule>`):
- Connect unary POST: json, json;charset=utf-8, proto, both services; success Content-Type;
  Connect-Protocol-Version optional and checked; leading metadata both ways, trailing
  metadata as `Trailer-*`; the Error JSON (code string, message, details with type, unpadded
  base64 value, debug) also for a proto request; the HTTP status of each of the 16 codes;
  a UTF-8 message with CR, LF and `%`; malformed JSON and proto; a body over the limit;
  unknown method and service; 405 with Allow; 415 with Accept-Post, for an unknown type, a
  streaming type on a unary method and the reverse, and application/grpc.
- Connect-Timeout-Ms: passed to the backend, clamped, refused when not 1-10 digits, and
  expiring (deadline_exceeded, the backend call cancelled).
- Compression: gzip request, gzip response when asked and only then, an empty body not
  decompressed, an unsupported encoding (unimplemented listing gzip, Accept-Encoding), a body
  that is not gzip, a decompression bomb.
- Connect GET: json, proto with base64 (padded and not, the URL-safe alphabet), json in
  base64, base64 values other than 1 ignored, compression, an empty message not decompressed,
  parameters in any order and unknown ones, `connect` optional and checked, missing message,
  unknown encoding,
  unsupported compression, 405 for a method with side effects and for a streaming method,
  Cache-Control, Vary, ETag, 304 on If-None-Match, gzip response, timeout header, errors.
- Connect streaming: json and proto envelopes, EndStreamResponse with metadata and without
  error, errors after messages and before any (HTTP 200), compressed request envelopes,
  compressed response envelopes when asked and only then, an unsupported encoding, a stream
  cut by its deadline, a bad timeout or protocol version in the EndStreamResponse; malformed
  envelopes: compressed flag without encoding, truncated message, truncated prefix, a length
  that does not match the body, two messages, none, the end-of-stream flag in a request, a
  length over the limit, a body over the limit; each refused without a backend call.
- gRPC-Web: application/grpc-web, +proto, +json, -text, -text+proto, unary and streamed
  (binary, text, json); base64 chunks padded mid-body; metadata as headers and in trailers;
  the trailer frame (flag 0x80, CRLF lines, lower-case names, last); grpc-status,
  percent-encoded grpc-message, grpc-status-details-bin; errors as 200 and trailers, after
  messages and trailers-only; grpc-timeout passed (S and u units), expiring, malformed;
  refusals as 200 with a status: compressed flag without encoding, truncated message and
  prefix, two messages, none, a length over the limit, a body over the limit, bad base64,
  unknown method; 415 for an unserved codec.
- CORS: preflights with Connect's and gRPC-Web's headers (POST and GET), their Vary, Grpc-*
  and Connect-* response headers exposed; a browser's Accept-Encoding on streams and gRPC-Web.
  The per-caller rate limit in each protocol's error form.

Not covered, and why:
- Client and bidirectional streaming: no such method in the protos (and bidi needs HTTP/2;
  uvicorn serves HTTP/1.1).
- br and zstd compression: the gateway offers gzip only (br is the unsupported case).
- Binary (`-bin`) custom metadata other than grpc-status-details-bin: the fakes send none;
  PROTOCOL-WEB's "extra base64 skipped" for -bin trailers in text mode is followed by no
  implementation we know of (Envoy keeps the base64), so no case asserts either way.
- Accept-Encoding quality values and preference order: "a subset of HTTP quality value
  syntax", only gzip is offered.
- Authentication, the stream and connection caps, metrics and traces: the same machinery
  as the REST routes, tested in tests/gateway (test_caller_limits.py,
  test_connection_limits.py, ...); only the rate limit's error form is protocol-specific here.
- canceled → 499: only a client's cancellation is canceled, and a client that cancels reads
  no answer; a service's CANCELLED is unavailable by the gateway's error table (that row).
- Client-side rules (inferring a code from an HTTP status, deterministic GET encoding, not
  decompressing empty responses): they bind clients, not the gateway.
- Cancellation by a client that goes away: not a request/response rule (the streaming
  tests of tests/gateway cover disconnects).
"""
