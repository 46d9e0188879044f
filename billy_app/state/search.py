"""`/search?q=…`: the header's global search, from the store (services.search)."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote

import reflex as rx

from billy_app.state.session import SessionState, guarded
from billy_app.state.view import iso
from services import search
from services.errors import BillyError
from services.search import SearchHit

MAX_QUERY = search.MAX_QUERY
RESULTS_PER_GROUP = 20
RULE_LABELS = {
    "id": "Looked up by id",
    "card_last4": "Card last 4 digits",
    "order_number": "Order number",
    "text": "Names, emails, descriptions, invoice and order numbers",
}


def hit_href(hit: SearchHit, kind: str) -> str:
    """Where a hit opens: a charge its own page, anything else its customer."""
    if kind == "charges":
        return f"/charges/{hit.id}"
    return f"/customers/{hit.customer_id}" if hit.customer_id else ""


def hit_view(hit: SearchHit, kind: str = "customers") -> dict[str, str]:
    return {
        "id": hit.id,
        "href": hit_href(hit, kind),
        "title": hit.title,
        "detail": hit.detail,
        "matched": hit.matched,
        "created": iso(hit.created),
    }


class SearchState(SessionState):
    problem_var: ClassVar[str] = "error"

    query: str = ""
    searched: bool = False
    rule: str = ""
    error: str = ""
    customers: list[dict[str, str]] = []
    charges: list[dict[str, str]] = []
    invoices: list[dict[str, str]] = []
    subscriptions: list[dict[str, str]] = []
    more: list[str] = []  # groups with more matches than shown

    @rx.var
    def total(self) -> int:
        return len(self.customers) + len(self.charges) + len(self.invoices) + len(self.subscriptions)

    @rx.var
    def count_words(self) -> str:
        """ "3 results", "40+ results" (a group holds more than it shows)."""
        plus = "+" if self.more else ""
        return f"{self.total}{plus} result{'' if self.total == 1 and not plus else 's'}"

    def _clear(self) -> None:
        self.customers, self.charges, self.invoices, self.subscriptions, self.more = [], [], [], [], []
        self.rule, self.error, self.searched = "", "", False

    async def _run(self) -> None:
        self._clear()
        if not self.query.strip():
            return
        try:
            found = await self._call(search.global_search, self.query, RESULTS_PER_GROUP)
        except BillyError as exc:
            self.error, self.searched = exc.message, True
            return
        self.rule = RULE_LABELS.get(found.rule, found.rule)
        self.customers = [hit_view(h, "customers") for h in found.customers]
        self.charges = [hit_view(h, "charges") for h in found.charges]
        self.invoices = [hit_view(h, "invoices") for h in found.invoices]
        self.subscriptions = [hit_view(h, "subscriptions") for h in found.subscriptions]
        self.more = sorted(found.more)
        self.searched = True

    @rx.event
    @guarded
    async def load(self):
        """on_load of /search: the query comes from the address (`?q=`), so a result page can be shared."""
        self.query = str(self.router.url.query_parameters.get("q", "") or "")[:MAX_QUERY]
        await self._run()

    @rx.event
    @guarded
    async def go(self, form: dict):
        """The header's search box: open the results page for what was typed."""
        query = " ".join(str(form.get("q", "")).split())[:MAX_QUERY]
        if not query:
            return None
        self.query = query
        address = f"/search?q={quote(query, safe='')}"
        if (self.router.url.path or "").rstrip("/") == "/search":
            # Already on the results page: search once here and only rewrite the address (a
            # redirect would run on_load and search a second time).
            await self._run()
            return rx.call_script(f"window.history.replaceState(null, '', {address!r})")
        return rx.redirect(address)
