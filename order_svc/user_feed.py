"""Following the user service's feed (WatchUsers) into the view of users.

List-then-watch, as Kubernetes informers do: the first time (and whenever the feed says
the view's revision is compacted) list every user, then watch from the listing's
revision, applying each response with its revision in one unit (`user_view`). On any
failure: reconnect with exponential backoff and full jitter, resuming from the last
applied revision. It calls as the order service itself (`credentials`), which the user
service lets list and watch users. Its state is a health status of its own (`HEALTH_NAME`):
SERVING while the view is current, NOT_SERVING while it lags or the stream is down; the
service's own health is untouched (orders for known users are still accepted).

What it sees of its progress (revision applied, head reported, stream up or lost) goes to
`view_progress`, which the view's metrics read.

With tracing, applying a response (and a listing) is a span starting a trace of its own,
its unit of work a child: not linked to the write at the user service that caused it, which
would take a trace id in every event of the public feed and of the changelog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

import grpc

from order_svc.domain import Order
from order_svc.user_view import UserChange, UserView
from order_svc.view_progress import ViewProgress
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.serving import CallMetadata
from shop_common.telemetry import Tracing

log = logging.getLogger(__name__)

HEALTH_NAME = "shop.order.v1.OrderService.UserFeed"
LIST_PAGE_SIZE = 1000

SetHealth = Callable[[bool], Awaitable[None]]


class _Relist(Exception):
    pass


class Backoff:
    """Exponential backoff with full jitter (as gRPC's own reconnects)."""

    def __init__(self, first: float = 0.1, most: float = 5.0) -> None:
        self._first = first
        self._most = most
        self._next = first

    def reset(self) -> None:
        self._next = self._first

    def delay(self) -> float:
        ceiling = self._next
        self._next = min(self._most, self._next * 2)
        return random.uniform(0, ceiling)


class UserFeedFollower:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        view: UserView,
        set_health: SetHealth,
        credentials: CallMetadata,
        backoff: Backoff | None = None,
        progress: ViewProgress | None = None,
        *,
        tracing: Tracing | None = None,
    ) -> None:
        self._tracing = tracing
        self._stub = user_pb2_grpc.UserServiceStub(channel)
        self._credentials = credentials
        self._view = view
        self._set_health = set_health
        self._backoff = backoff or Backoff()
        self._current: bool | None = None
        self.progress = progress or ViewProgress()

    async def run(self) -> None:
        relist = False
        while True:
            try:
                revision = await self._view.revision()
                if revision is None or relist:
                    revision = await self._relist()
                    relist = False
                self.progress.applied_to(revision)
                await self._follow(revision)
                await asyncio.sleep(self._backoff.delay())  # the server ended the stream
            except _Relist:
                await self._report(current=False)
                relist = True
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as error:
                await self._report(current=False)
                delay = self._backoff.delay()
                log.warning(
                    "user feed: %s (%s); reconnecting in %.2fs",
                    error.code().name,
                    error.details(),
                    delay,
                )
                await asyncio.sleep(delay)
            except Exception:
                await self._report(current=False)
                delay = self._backoff.delay()
                log.exception("user feed: applying failed; retrying in %.2fs", delay)
                await asyncio.sleep(delay)

    async def _follow(self, revision: int) -> None:
        request = user_pb2.WatchUsersRequest(start_revision=revision + 1, progress_notify=True)
        call = self._stub.WatchUsers(request, metadata=self._credentials())
        pending: list[user_pb2.UserEvent] = []  # fragments of a revision not yet complete
        progress = self.progress
        first = True
        try:
            async for response in call:
                self._backoff.reset()
                if first:
                    first = False
                    progress.connected()
                progress.heard(response.header_revision)
                if response.compact_revision:
                    log.warning(
                        "user feed: revision %d is compacted (up to %d); listing again",
                        revision,
                        response.compact_revision,
                    )
                    raise _Relist
                if response.header_revision < revision:
                    # The user service is behind the view: its database was restored or
                    # replaced. Only a new listing tells what exists now, and the marks of
                    # listings past its head are of the history it lost.
                    await self._view.forget_listings_after(response.header_revision)
                    log.warning(
                        "user feed: the user service is at revision %d, the view at %d; "
                        "listing again",
                        response.header_revision,
                        revision,
                    )
                    raise _Relist
                if response.fragment:
                    pending.extend(response.events)
                    continue
                if response.events:
                    events = [*pending, *response.events]
                    pending.clear()
                    revision = events[-1].revision
                    changes = [
                        UserChange(
                            e.user.id,
                            e.revision,
                            e.type == user_pb2.UserEvent.TYPE_DELETE,
                            e.user.subject or None,  # a deletion's event: the last value
                        )
                        for e in events
                    ]
                    cancelled = await self._apply(changes, revision)
                    progress.applied_to(revision)
                    if cancelled:
                        log.info(
                            "cancelled %d open order(s) of deleted users up to revision %d",
                            len(cancelled),
                            revision,
                        )
                await self._report(current=revision >= response.header_revision)
        finally:
            call.cancel()
            progress.lost()

    async def _apply(self, changes: list[UserChange], revision: int) -> list[Order]:
        if self._tracing is None:
            return await self._view.apply(changes, revision)
        attributes = {"shop.feed.revision": revision, "shop.feed.events": len(changes)}
        with self._tracing.root_span("apply WatchUsers response", attributes):
            return await self._view.apply(changes, revision)

    async def _relist(self) -> int:
        if self._tracing is None:
            return await self._list()
        with self._tracing.root_span("list users into the view", {}):
            return await self._list()

    async def _list(self) -> int:
        """Lists every user into the view a page at a time, the next page asked for while
        one is being recorded; returns the revision the listing began at."""
        listing: int | None = None
        listed = 0
        next_page: asyncio.Future[user_pb2.ListUsersResponse] | None = asyncio.ensure_future(
            self._page("")
        )
        try:
            while next_page is not None:
                page = await next_page
                token = page.next_page_token
                next_page = asyncio.ensure_future(self._page(token)) if token else None
                # The first page's snapshot is the oldest: watching from it replays whatever
                # changed while the later pages were read (applying is idempotent).
                listing = page.revision if listing is None else listing
                await self._view.list_page(
                    [
                        UserChange(u.id, int(u.etag), deleted=False, subject=u.subject or None)
                        for u in page.users
                    ],
                    listing,
                )
                listed += len(page.users)
        finally:
            if next_page is not None:
                # Not `await next_page`: a cancellation of this task, arriving while it waits,
                # would be taken for the page's and swallowed.
                next_page.cancel()
                await asyncio.wait([next_page])
                if not next_page.cancelled():
                    next_page.exception()  # retrieved: the listing's own error is raised
        assert listing is not None
        cancelled = await self._view.end_listing(listing)
        log.info(
            "user view: listed %d users at revision %d; cancelled %d open order(s)",
            listed,
            listing,
            len(cancelled),
        )
        return listing

    async def _page(self, token: str) -> user_pb2.ListUsersResponse:
        return await self._stub.ListUsers(
            user_pb2.ListUsersRequest(page_size=LIST_PAGE_SIZE, page_token=token),
            timeout=30,
            metadata=self._credentials(),
        )

    async def _report(self, *, current: bool) -> None:
        if current != self._current:
            self._current = current
            await self._set_health(current)


def start(follower: UserFeedFollower) -> Callable[[], Awaitable[None]]:
    """Runs the follower in the background; returns its stopper."""
    task = asyncio.create_task(follower.run(), name="user-feed")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop
