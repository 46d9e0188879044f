"""Customers list: search by email or name, keyset pages, all from the store."""

from __future__ import annotations

from typing import ClassVar

import reflex as rx

from billy_app.state.list_page import export_download, range_label
from billy_app.state.session import SessionState, guarded
from billy_app.state.view import customer_view
from services import billing, exports
from services.errors import BillyError

MAX_QUERY = 200


class CustomersState(SessionState):
    problem_var: ClassVar[str] = "error"

    query: str = ""
    rows: list[dict[str, str]] = []
    error: str = ""
    page_number: int = 1
    has_next: bool = False
    range_label: str = ""  # "1–25 of 4,221"
    loading: bool = False
    export_shown: bool = False  # the Export button (see `components.list_page.export_button`)
    export_blocked: str = ""
    exporting: bool = False
    # Cursors of the pages before this one, and of the next page (server-side only).
    _cursors: list[str | None] = [None]
    _next_cursor: str | None = None

    async def _load(self, cursor: str | None, page_number: int) -> None:
        """Read one page (the `page_number`th); a refusal empties the list and says why."""
        self.error = ""
        try:
            page = await self._call(billing.search_customers, self.query, cursor)
        except BillyError as exc:
            self.error, self.rows, self.has_next, self.range_label = exc.message, [], False, ""
            return
        self.rows = [customer_view(r) for r in page.items]
        self._next_cursor, self.has_next = page.next_cursor, page.next_cursor is not None
        total = page.total.label if page.total else ""
        self.range_label = range_label(page_number, len(self.rows), total, billing.PAGE_SIZE)

    async def _first_page(self) -> None:
        self._cursors, self.page_number = [None], 1
        await self._load(None, 1)

    @rx.event
    @guarded
    async def load(self):
        await self._first_page()
        button = await self._call(exports.button_for)
        self.export_shown, self.export_blocked = button.shown, button.blocked

    @rx.event
    @guarded
    async def export(self):
        """Export CSV: the customers matching the search in force."""
        if self.exporting:
            return
        self.exporting = True
        yield
        try:
            answer = await export_download(self, "customers", lambda: exports.CustomerFilters(self.query))
        finally:
            self.exporting = False
        yield answer

    @rx.event
    @guarded
    async def search(self, form: dict):
        self.query = str(form.get("q", ""))[:MAX_QUERY]
        await self._first_page()

    @rx.event
    @guarded
    async def clear_search(self):
        self.query = ""
        await self._first_page()

    @rx.event
    @guarded
    async def next_page(self):
        if not self._next_cursor:
            return
        cursor = self._next_cursor
        await self._load(cursor, self.page_number + 1)
        self._cursors.append(cursor)
        self.page_number += 1

    @rx.event
    @guarded
    async def previous_page(self):
        if len(self._cursors) <= 1:
            return
        self._cursors.pop()
        self.page_number -= 1
        await self._load(self._cursors[-1], self.page_number)
