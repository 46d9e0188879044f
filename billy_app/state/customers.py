"""Customers list: search by email or name, keyset pages, all from the store.

`/customers?q=…` (the global search's "See all N in Customers") shows instead every customer
the header's search finds for those words, counted the same way (services.search.found_customers)."""

from __future__ import annotations

from typing import Any, ClassVar

import reflex as rx
from reflex_base.event import EventSpec

from billy_app.state.list_page import ROWS_PER_PAGE, SearchedPages, export_download, range_label
from billy_app.state.session import SessionState, guarded
from billy_app.state.view import customer_view
from services import billing, exports, search
from services.errors import BillyError
from services.permissions import Actor
from services.reports import ListTotal

MAX_QUERY = 200
FOUND_EXPORT_NOTE = "Export takes the box's search: show all customers first."


class CustomersState(SearchedPages, SessionState):
    problem_var: ClassVar[str] = "error"
    query_limit: ClassVar[int] = MAX_QUERY

    rows: list[dict[str, str]] = []
    loading: bool = False
    # The header search's words when the list shows what it found (`?q=`); "" for the box's search.
    found_by: str = ""
    export_shown: bool = False  # the Export button (see `components.list_page.export_button`)
    export_blocked: str = ""
    exporting: bool = False
    _plan_blocked: str = ""  # why the plan blocks export ("" when it does not)

    async def _read(self, cursor: str, page_number: int) -> None:
        """Read one page (the `page_number`th); a refusal empties the list and says why."""
        self.error = ""
        try:
            if self.found_by:
                page = await self._call(search.found_customers, self.found_by, cursor or None, ROWS_PER_PAGE)
            else:
                page = await self._call(billing.search_customers, self.query, cursor or None, ROWS_PER_PAGE)
        except BillyError as exc:
            self.error, self.rows, self.has_next, self.range_label = exc.message, [], False, ""
            return
        self.rows = [customer_view(r) for r in page.items]
        self._next_cursor, self.has_next = page.next_cursor or "", page.next_cursor is not None
        self._note_total(page.total, [self.found_by, self.query])
        self.range_label = range_label(page_number, len(self.rows), self._total)

    def _count(self, actor: Actor, read_under: list[Any]) -> ListTotal | None:
        found_by, query = read_under
        return search.count_found_customers(actor, found_by) if found_by else billing.count_customers(actor, query)

    def _show_total(self) -> None:
        self.range_label = range_label(self.page_number, len(self.rows), self._total)

    async def _prefill(self) -> None:
        self.found_by = ""
        await super()._prefill()

    def _show_export(self) -> None:
        """Export follows the box's search only: while the list shows the header search's finds,
        it says so instead of exporting something else."""
        self.export_blocked = self._plan_blocked or (FOUND_EXPORT_NOTE if self.found_by else "")

    def _box_search_started(self) -> EventSpec | None:
        if not self.found_by:
            return None
        self.found_by = ""
        self._show_export()
        return rx.call_script("window.history.replaceState(null, '', '/customers')")

    @rx.event
    @guarded
    async def load(self):
        """on_load: the newest customers, or (`?q=`) every customer the header's search finds."""
        found_by = self.router.url.query_parameters.get("q", "")
        self.found_by = search.plain_words(found_by)[:MAX_QUERY] if isinstance(found_by, str) else ""
        if self.found_by:
            self.query = ""
        await self._first_page()
        button = await self._call(exports.button_for)
        self.export_shown, self._plan_blocked = button.shown, button.blocked
        self._show_export()
        return self._late_total()

    @rx.event
    @guarded
    async def export(self):
        """Export CSV: the customers matching the search in force."""
        if self.exporting or self.found_by:
            return
        self.exporting = True
        yield
        try:
            answer = await export_download(self, "customers", lambda: exports.CustomerFilters(self.query))
        finally:
            self.exporting = False
        yield answer
