"""Limits per caller at the gateway: a token bucket per caller (429 with `Retry-After` and
the RateLimit fields on every counted response) and a cap on open streams per caller.

The limiter and the caller keys alone on a fake clock; then a real gateway (dev mode, over
the fake backends) with a small rate and burst. Timing is asserted only as "at most": a
slow machine may refill a bucket sooner, never later."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway import RunningGateway, start
from gateway.callers import MAX_KEY_CHARS, caller_key, claimed_subject
from gateway.errors import RequestError
from gateway.headers import RequestHeaders
from gateway.ratelimit import RateLimiter
from gateway.stream_slots import StreamSlots
from tests.gateway.conftest import Backend, settings_for
from tests.support import eventually

# -- the token bucket on a fake clock --------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def limiter(rate: float = 5, burst: int = 5, max_callers: int = 100) -> tuple[RateLimiter, Clock]:
    clock = Clock()
    return RateLimiter(rate, burst, max_callers=max_callers, clock=clock), clock


def fields(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {name.decode(): value.decode() for name, value in headers}


def test_a_caller_gets_its_burst_then_is_refused_with_when_to_retry() -> None:
    limits, _ = limiter(rate=0.25, burst=3)
    seen = [fields(limits.take("a")) for _ in range(3)]
    assert [f["ratelimit"] for f in seen] == [
        '"default";r=2;t=4',
        '"default";r=1;t=8',
        '"default";r=0;t=12',
    ]
    assert {f["ratelimit-policy"] for f in seen} == {'"default";q=3;w=12'}
    with pytest.raises(RequestError) as refused:
        limits.take("a")
    error = refused.value
    assert (error.http_status, error.reason, error.status.code) == (429, "RATE_LIMITED", 8)
    assert error.status.details  # the ErrorInfo, with the policy in its metadata
    assert fields(error.headers) == {
        "retry-after": "4",  # one request back at 0.25 per second
        "ratelimit-policy": '"default";q=3;w=12',
        "ratelimit": '"default";r=0;t=12',
    }
    assert "retry in 4 s" in error.description


def test_asking_whether_a_caller_would_be_refused_takes_nothing() -> None:
    limits, clock = limiter(rate=1, burst=2)
    assert limits.refusal("a") is None  # unknown: it would pass
    limits.take("a")
    assert limits.refusal("a") is None
    limits.take("a")
    for _ in range(3):  # asked again and again, nothing is taken
        refusal = limits.refusal("a")
        assert refusal is not None
        assert refusal.reason == "RATE_LIMITED"
    clock.now += 1
    assert limits.refusal("a") is None
    limits.take("a")  # the token that came back is still there to take


def test_retry_after_rounds_up_and_a_refusal_takes_nothing() -> None:
    limits, clock = limiter(rate=2, burst=1)
    limits.take("a")
    clock.now += 0.125  # a quarter of a request back: 0.375 s to go, said as 1
    for _ in range(3):
        with pytest.raises(RequestError) as refused:
            limits.take("a")
        assert fields(refused.value.headers)["retry-after"] == "1"
    clock.now += 0.375
    assert fields(limits.take("a"))["ratelimit"] == '"default";r=0;t=1'


def test_the_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    limits, clock = limiter(rate=4, burst=5)
    for _ in range(5):
        limits.take("a")
    clock.now += 0.5  # two back
    limits.take("a")
    limits.take("a")
    with pytest.raises(RequestError):
        limits.take("a")
    clock.now += 3600  # full, not more
    for _ in range(5):
        limits.take("a")
    with pytest.raises(RequestError):
        limits.take("a")


def test_callers_have_buckets_of_their_own() -> None:
    limits, _ = limiter(rate=1, burst=1)
    limits.take("subject:alice")
    with pytest.raises(RequestError):
        limits.take("subject:alice")
    limits.take("subject:bob")
    limits.take("ip:10.0.0.1")


def test_idle_buckets_are_dropped_as_new_callers_come() -> None:
    limits, clock = limiter(rate=10, burst=5)
    for n in range(50):
        limits.take(f"ip:10.0.0.{n}")
    assert len(limits) == 50
    clock.now += 0.5  # a bucket used once is full again after 0.1 s
    limits.take("ip:10.0.1.1")
    assert len(limits) == 1


def test_a_bucket_not_yet_full_is_kept_until_it_is() -> None:
    limits, clock = limiter(rate=1, burst=5)
    for _ in range(5):
        limits.take("subject:alice")
    clock.now += 2
    limits.take("subject:bob")
    assert len(limits) == 2  # alice's has 2 of 5 back: dropping it would hand her 3
    limits.take("subject:alice")
    limits.take("subject:alice")
    with pytest.raises(RequestError):
        limits.take("subject:alice")


def test_past_the_cap_the_least_recently_seen_caller_is_dropped() -> None:
    limits, _ = limiter(rate=1, burst=2, max_callers=3)
    for key in ("a", "b", "c"):
        limits.take(key)
    limits.take("a")  # a is now the most recently seen
    limits.take("d")
    assert len(limits) == 3
    with pytest.raises(RequestError):
        limits.take("a")  # kept: a's bucket is empty
    limits.take("b")  # dropped, so b starts again with a full bucket
    limits.take("b")


@pytest.mark.parametrize(("rate", "burst", "callers"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_a_limiter_needs_a_rate_a_burst_and_room_for_callers(
    rate: float, burst: int, callers: int
) -> None:
    with pytest.raises(ValueError, match="positive rate"):
        RateLimiter(rate, burst, max_callers=callers)


# -- who a request counts against ------------------------------------------------------------


def test_a_subject_is_its_key_and_cannot_pass_for_an_address() -> None:
    scope = {"client": ("10.0.0.1", 5000)}
    assert caller_key("alice", scope) == "subject:alice"
    assert caller_key("ip:10.0.0.1", scope) != caller_key(None, scope)
    assert caller_key(None, scope) == "ip:10.0.0.1"
    assert caller_key(None, {"client": ("10.0.0.1", 5001)}) == "ip:10.0.0.1"  # any port
    assert caller_key(None, {"client": None}) == "ip:unknown"


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("2001:db8:1:2:3:4:5:6", "ip:2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "ip:2001:db8:1:2::/64"),  # the same host's block
        ("::ffff:192.0.2.7", "ip:192.0.2.7"),  # IPv4 through a dual-stack listener
    ],
)
def test_an_ipv6_client_counts_by_its_64_block(host: str, key: str) -> None:
    assert caller_key(None, {"client": (host, 1)}) == key


def test_a_long_key_is_kept_as_its_digest() -> None:
    long = caller_key("x" * 10_000, {})
    assert long.startswith("sha256:")
    assert len(long) <= MAX_KEY_CHARS
    assert long != caller_key("x" * 9_999, {})


@pytest.mark.parametrize(
    ("lines", "subject"),
    [
        ([(b"authorization", b"Bearer alice")], "alice"),
        ([(b"authorization", b"bearer  service:order_svc ")], "service:order_svc"),
        ([], None),
        ([(b"authorization", b"Basic YWxpY2U6eA==")], None),
        ([(b"authorization", b"Bearer ")], None),
        ([(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")], None),
    ],
)
def test_dev_mode_believes_one_bearer_and_nothing_else(
    lines: list[tuple[bytes, bytes]], subject: str | None
) -> None:
    assert claimed_subject(RequestHeaders(lines)) == subject


def test_stream_slots_are_per_caller_and_given_back() -> None:
    slots = StreamSlots(per_caller=1)
    with slots.take("a"):
        with pytest.raises(RequestError) as refused, slots.take("a"):
            pass
        assert (refused.value.http_status, refused.value.reason) == (429, "TOO_MANY_STREAMS")
        with slots.take("b"):
            assert (slots.open_for("a"), len(slots)) == (1, 2)
    with pytest.raises(ValueError, match="ended"), slots.take("a"):
        raise ValueError("ended")
    assert len(slots) == 0


# -- through a real gateway -----------------------------------------------------------------

USER = "/v1/users/u1"
WATCH = "/v1/users:watch"
FOREVER = {"startRevision": "1", "progressNotify": "true"}
"""The fake backend's watch that sends a bookmark every 10 ms until cancelled."""


def as_(subject: str) -> dict[str, str]:
    return {"authorization": f"Bearer {subject}"}


@contextlib.asynccontextmanager
async def gateway_with(backend: Backend, **limits: object) -> AsyncIterator[httpx.AsyncClient]:
    running: RunningGateway = await start(settings_for(backend.address, **limits))
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            yield http
    finally:
        await running.stop()


def status_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    info = next(d for d in body["details"] if d["@type"].endswith("ErrorInfo"))
    return body["code"], info["reason"]


async def test_a_caller_over_its_rate_gets_429_and_others_are_still_served(
    backend: Backend,
) -> None:
    # 1 per second: the burst of 5 is spent long before one comes back.
    async with gateway_with(backend, rate_limit_per_second=1, rate_limit_burst=5) as http:
        for left in range(4, -1, -1):
            response = await http.get(USER, headers=as_("alice"))
            assert response.status_code == 200, response.text
            assert response.headers["ratelimit-policy"] == '"default";q=5;w=5'
            assert response.headers["ratelimit"].startswith(f'"default";r={left};t=')
        refused = await http.get(USER, headers=as_("alice"))
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/json"
        assert status_of(refused) == (8, "RATE_LIMITED")  # RESOURCE_EXHAUSTED
        info = refused.json()["details"][0]
        assert info["metadata"] == {
            "limit_per_second": "1",
            "burst": "5",
            "retry_after_seconds": "1",
        }
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["ratelimit"].startswith('"default";r=0;t=')
        assert refused.headers["ratelimit-policy"] == '"default";q=5;w=5'
        reached = [call for call in backend.recorder.calls if call.rpc == "GetUser"]
        assert len(reached) == 5  # the refused one never reached the backend
        # Another subject, and an anonymous client (by its address), have buckets of their own.
        assert (await http.get(USER, headers=as_("bob"))).status_code == 200
        anonymous = await http.get(USER)
        assert anonymous.status_code == 200
        assert anonymous.headers["ratelimit"].startswith('"default";r=4;')
        # Health, docs and preflights are not counted, and carry no RateLimit fields.
        for path in ("/healthz", "/openapi.json"):
            response = await http.get(path, headers=as_("alice"))
            assert response.status_code == 200
            assert "ratelimit" not in response.headers
        options = await http.options(USER, headers=as_("alice"))
        assert options.status_code == 204
        assert "ratelimit" not in options.headers
        # After Retry-After, the caller is served again.
        await asyncio.sleep(1.05)
        assert (await http.get(USER, headers=as_("alice"))).status_code == 200


async def test_errors_are_counted_and_carry_the_fields_too(backend: Backend) -> None:
    async with gateway_with(backend, rate_limit_per_second=1, rate_limit_burst=2) as http:
        missing = await http.get("/v1/users/code-5", headers=as_("carol"))
        assert missing.status_code == 404
        assert missing.headers["ratelimit"].startswith('"default";r=1;')
        bad = await http.post("/v1/users", content=b"{", headers=as_("carol"))
        assert bad.status_code == 400
        assert bad.headers["ratelimit"].startswith('"default";r=0;')
        assert (await http.get(USER, headers=as_("carol"))).status_code == 429


async def test_requests_for_no_route_are_counted_too(backend: Backend) -> None:
    async with gateway_with(backend, rate_limit_per_second=1, rate_limit_burst=2) as http:
        missing = await http.get("/v1/nothing-here", headers=as_("dave"))
        assert missing.status_code == 404
        assert missing.headers["ratelimit"].startswith('"default";r=1;')
        wrong = await http.put(USER, headers=as_("dave"))
        assert wrong.status_code == 405
        assert wrong.headers["ratelimit"].startswith('"default";r=0;')
        assert (await http.get("/v1/nothing-here", headers=as_("dave"))).status_code == 429


async def test_the_rate_limit_can_be_turned_off(backend: Backend) -> None:
    async with gateway_with(backend, rate_limit_per_second=0, rate_limit_burst=1) as http:
        for _ in range(5):
            response = await http.get(USER, headers=as_("alice"))
            assert response.status_code == 200
            assert "ratelimit" not in response.headers


async def test_a_caller_may_hold_only_so_many_streams_freed_however_they_end(
    backend: Backend,
) -> None:
    async with gateway_with(backend, max_streams_per_caller=2) as http:
        async with contextlib.AsyncExitStack() as streams:
            for _ in range(2):
                response = await streams.enter_async_context(
                    http.stream("GET", WATCH, params=FOREVER, headers=as_("alice"))
                )
                assert response.status_code == 200
            refused = await http.get(WATCH, params=FOREVER, headers=as_("alice"))
            assert refused.status_code == 429
            assert status_of(refused) == (8, "TOO_MANY_STREAMS")
            assert refused.json()["details"][0]["metadata"] == {"max_streams_per_caller": "2"}
            # Another caller streams; unary calls of the capped one go on.
            async with http.stream("GET", WATCH, params=FOREVER, headers=as_("bob")) as other:
                assert other.status_code == 200
            assert (await http.get(USER, headers=as_("alice"))).status_code == 200
        # Both left (the client closed them): their slots come back as the gateway sees it.

        async def streams_again() -> bool:
            async with http.stream("GET", WATCH, params=FOREVER, headers=as_("alice")) as again:
                return again.status_code == 200

        await eventually(streams_again, 5, "a stream admitted again")
        # A stream that ends by itself (the backend's error) frees its slot too.
        for _ in range(4):
            ended = await http.get(WATCH, params={"startRevision": "5"}, headers=as_("alice"))
            assert ended.status_code == 200
