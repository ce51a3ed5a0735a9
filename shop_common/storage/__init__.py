"""Storage: one code path over SQLite and PostgreSQL, units of work run in database threads,
the changelog each write appends to, idempotency keys, migrations, tables of resources, reads
by key in batches."""

from shop_common.storage.batched import BatchedLookup
from shop_common.storage.changelog import (
    NOTIFY_CHANNEL,
    Batch,
    Change,
    Changelog,
    ChangelogTables,
    ChangeType,
    Compacted,
    changelog_tables,
)
from shop_common.storage.database import Database, driver_url, kind_of
from shop_common.storage.deferral import transaction_state
from shop_common.storage.idempotency import IdempotencyKey, IdempotencyStore, idempotency_table
from shop_common.storage.listing import Page, Pages
from shop_common.storage.migrations import Migration, migrate
from shop_common.storage.prepared import Prepared, PreparedByKeys
from shop_common.storage.resource_table import (
    Resource,
    ResourceTable,
    RowCodec,
    Slice,
    from_us,
    to_us,
)
from shop_common.storage.unit_of_work import Transaction, UnitOfWork

__all__ = [
    "NOTIFY_CHANNEL",
    "Batch",
    "BatchedLookup",
    "Change",
    "ChangeType",
    "Changelog",
    "ChangelogTables",
    "Compacted",
    "Database",
    "IdempotencyKey",
    "IdempotencyStore",
    "Migration",
    "Page",
    "Pages",
    "Prepared",
    "PreparedByKeys",
    "Resource",
    "ResourceTable",
    "RowCodec",
    "Slice",
    "Transaction",
    "UnitOfWork",
    "changelog_tables",
    "driver_url",
    "from_us",
    "idempotency_table",
    "kind_of",
    "migrate",
    "to_us",
    "transaction_state",
]
