"""One page of a resource table, as both services list them (AIP-158)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop_common.domain import PageTokens, invalid_page_token, is_valid_id
from shop_common.storage.resource_table import Resource, ResourceTable, Slice
from shop_common.storage.unit_of_work import UnitOfWork

R = TypeVar("R", bound=Resource)

Where = sa.ColumnElement[bool] | Callable[[Connection], sa.ColumnElement[bool]]
"""A listing's filter, or how to read it in the listing's unit of work (e.g. from a table
the page's own query would otherwise join, when the plan is better for a known value)."""


@dataclass(frozen=True, slots=True)
class Page(Generic[R]):
    items: list[R]
    next_page_token: str
    revision: int
    """The revision of the snapshot the page was read from."""


class Pages(Generic[R]):
    """A table listed a page at a time in id order, behind signed page tokens."""

    def __init__(self, uow: UnitOfWork, table: ResourceTable[R], tokens: PageTokens) -> None:
        self._uow = uow
        self._table = table
        self._tokens = tokens

    async def list(
        self,
        size: int,
        page_token: str,
        *,
        query: str,
        where: Where | None = None,
        guard: Callable[[Connection], None] | None = None,
    ) -> Page[R]:
        """One page (`size` from `page_size`); `query` names the filters the token is bound
        to, so that a token is refused with other filters. `guard` runs first in the read's
        unit of work, and may refuse the listing by raising (e.g. another user's orders)."""
        after = self._tokens.decode(page_token, query=query)
        if after is not None and not is_valid_id(after):
            raise invalid_page_token("is not a valid page token", reason=None)

        def unit(conn: Connection) -> Slice[R]:
            if guard is not None:
                guard(conn)
            narrowed = where(conn) if callable(where) else where
            return self._table.slice(conn, after, size, narrowed)

        found = await self._uow.read(unit)
        token = self._tokens.encode(found.items[-1].id, query=query) if found.more else ""
        return Page(found.items, token, found.revision)
