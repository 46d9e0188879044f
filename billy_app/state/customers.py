"""Customers list: search by email or name, keyset pages, all from the store."""

from __future__ import annotations

from typing import ClassVar

import reflex as rx

from billy_app.state.list_page import SearchedPages, export_download, range_label
from billy_app.state.session import SessionState, guarded
from billy_app.state.view import customer_view
from services import billing, exports
from services.errors import BillyError

MAX_QUERY = 200


class CustomersState(SearchedPages, SessionState):
    problem_var: ClassVar[str] = "error"
    query_limit: ClassVar[int] = MAX_QUERY

    rows: list[dict[str, str]] = []
    loading: bool = False
    export_shown: bool = False  # the Export button (see `components.list_page.export_button`)
    export_blocked: str = ""
    exporting: bool = False

    async def _read(self, cursor: str, page_number: int) -> None:
        """Read one page (the `page_number`th); a refusal empties the list and says why."""
        self.error = ""
        try:
            page = await self._call(billing.search_customers, self.query, cursor or None)
        except BillyError as exc:
            self.error, self.rows, self.has_next, self.range_label = exc.message, [], False, ""
            return
        self.rows = [customer_view(r) for r in page.items]
        self._next_cursor, self.has_next = page.next_cursor or "", page.next_cursor is not None
        total = page.total.label if page.total else ""
        self.range_label = range_label(page_number, len(self.rows), total, billing.PAGE_SIZE)

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
