"""A service's change feed: the live tail of its changelog (`tail`), one Watch call served
from it (`watch`), and the events a watch sends (`events`)."""

from shop_common.feed.events import EventKind, ResourceEvents, everything, serialized
from shop_common.feed.settings import FeedSettings
from shop_common.feed.tail import Feed, Watcher, compacted_error
from shop_common.feed.watch import Encoder, serve

__all__ = [
    "Encoder",
    "EventKind",
    "Feed",
    "FeedSettings",
    "ResourceEvents",
    "Watcher",
    "compacted_error",
    "everything",
    "serialized",
    "serve",
]
