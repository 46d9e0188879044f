"""Customers list: search by email or name, keyset pages, all from the store."""

from __future__ import annotations

import asyncio

import reflex as rx

from billy_app.state.session import SessionState
from billy_app.state.view import customer_view
from services import billing
from services.errors import BillyError, NotAuthenticated

MAX_QUERY = 200


class CustomersState(SessionState):
    query: str = ""
    rows: list[dict[str, str]] = []
    error: str = ""
    page_number: int = 1
    has_next: bool = False
    loading: bool = False
    # Cursors of the pages before this one, and of the next page (server-side only).
    _cursors: list[str | None] = [None]
    _next_cursor: str | None = None

    async def _load(self, cursor: str | None) -> bool:
        self.error = ""
        try:
            actor = await self.actor()
            page = await asyncio.to_thread(billing.search_customers, actor, self.query, cursor)
        except NotAuthenticated:
            return False
        except BillyError as exc:
            self.error, self.rows, self.has_next = exc.message, [], False
            return True
        self.rows = [customer_view(r) for r in page.items]
        self._next_cursor, self.has_next = page.next_cursor, page.next_cursor is not None
        return True

    async def _first_page(self):
        self._cursors, self.page_number = [None], 1
        if not await self._load(None):
            return SessionState.recover
        return None

    @rx.event
    async def load(self):
        return await self._first_page()

    @rx.event
    async def search(self, form: dict):
        self.query = str(form.get("q", ""))[:MAX_QUERY]
        return await self._first_page()

    @rx.event
    async def clear_search(self):
        self.query = ""
        return await self._first_page()

    @rx.event
    async def next_page(self):
        if not self._next_cursor:
            return None
        cursor = self._next_cursor
        if await self._load(cursor):
            self._cursors.append(cursor)
            self.page_number += 1
        return None

    @rx.event
    async def previous_page(self):
        if len(self._cursors) <= 1:
            return None
        self._cursors.pop()
        self.page_number -= 1
        await self._load(self._cursors[-1])
        return None
