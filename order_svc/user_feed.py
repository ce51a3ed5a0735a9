"""Following the user service's feed (WatchUsers) into the view of users.

List-then-watch, as Kubernetes informers do: the first time (and whenever the feed says
the view's revision is compacted) list every user, then watch from the listing's
revision, applying each response with its revision in one unit (`user_view`). On any
failure: reconnect with exponential backoff and full jitter, resuming from the last
applied revision. It calls as the order service itself (`credentials`), which the user
service lets list and watch users. Its state is a health status of its own (`HEALTH_NAME`):
SERVING while the view is current, NOT_SERVING while it lags or the stream is down; the
service's own health is untouched (orders for known users are still accepted).

What it knows of its progress (the revision applied, the head last reported, since when it
is behind) is read by the view's metrics (`telemetry.ViewMetrics`) at scrape time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable

import grpc

from order_svc.user_view import UserChange, UserView
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.serving import CallMetadata
from shop_common.telemetry import ViewMetrics

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
        metrics: ViewMetrics | None = None,
    ) -> None:
        self._stub = user_pb2_grpc.UserServiceStub(channel)
        self._credentials = credentials
        self._view = view
        self._set_health = set_health
        self._backoff = backoff or Backoff()
        self._current: bool | None = None
        self.applied = 0
        """The revision the view is current to, as this follower last read or applied it."""
        self.head = 0
        """The user service's head revision as its last response said."""
        self._behind_since: float | None = time.monotonic()
        """When the view last stopped being current (monotonic); None while it is."""
        self._delivered = False
        """Whether a stream has delivered a response already (the next one reconnects)."""
        self._reconnects = None if metrics is None else metrics.reconnects
        if metrics is not None:
            metrics.read_from(
                revision=lambda: self.applied,
                lag_revisions=lambda: max(0, self.head - self.applied),
                lag_seconds=self.lag_seconds,
            )

    def lag_seconds(self) -> float:
        """How long the view has been behind (or cut off from) the user service; 0 while it
        is current. Read from the admin thread too: one read of the attribute."""
        since = self._behind_since
        return 0.0 if since is None else max(0.0, time.monotonic() - since)

    async def run(self) -> None:
        relist = False
        while True:
            try:
                revision = await self._view.revision()
                if revision is None or relist:
                    revision = await self._relist()
                    relist = False
                self.applied = revision
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
        first = True
        try:
            async for response in call:
                self._backoff.reset()
                if first:
                    first = False
                    if self._delivered and self._reconnects is not None:
                        self._reconnects.inc()
                    self._delivered = True
                self.head = response.header_revision
                if response.compact_revision:
                    log.warning(
                        "user feed: revision %d is compacted (up to %d); listing again",
                        revision,
                        response.compact_revision,
                    )
                    raise _Relist
                if response.header_revision < revision:
                    # The user service is behind the view: its database was restored or
                    # replaced. Only a new listing tells what exists now.
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
                    cancelled = await self._view.apply(changes, revision)
                    self.applied = revision
                    if cancelled:
                        log.info(
                            "cancelled %d open order(s) of deleted users up to revision %d",
                            len(cancelled),
                            revision,
                        )
                await self._report(current=revision >= response.header_revision)
        finally:
            call.cancel()

    async def _relist(self) -> int:
        listed: dict[str, UserChange] = {}
        token, revision = "", None
        while True:
            page = await self._stub.ListUsers(
                user_pb2.ListUsersRequest(page_size=LIST_PAGE_SIZE, page_token=token),
                timeout=30,
                metadata=self._credentials(),
            )
            # The first page's snapshot is the oldest: watching from it replays whatever
            # changed while the later pages were read (applying is idempotent).
            revision = page.revision if revision is None else revision
            listed.update(
                (u.id, UserChange(u.id, int(u.etag), deleted=False, subject=u.subject or None))
                for u in page.users
            )
            token = page.next_page_token
            if not token:
                break
        cancelled = await self._view.replace(list(listed.values()), revision)
        log.info(
            "user view: listed %d users at revision %d; cancelled %d open order(s)",
            len(listed),
            revision,
            len(cancelled),
        )
        return revision

    async def _report(self, *, current: bool) -> None:
        if current != self._current:
            self._current = current
            self._behind_since = None if current else time.monotonic()
            await self._set_health(current)


def start(follower: UserFeedFollower) -> Callable[[], Awaitable[None]]:
    """Runs the follower in the background; returns its stopper."""
    task = asyncio.create_task(follower.run(), name="user-feed")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop
