"""The header's global search, from the store (services.search): the box's suggestions as the
member types (`SearchBoxState`) and the `/search?q=…` page (`SearchState`)."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote

import reflex as rx

from billy_app.state.session import SessionState, guarded
from billy_app.state.view import iso
from services import search
from services.errors import BillyError
from services.reports import ListTotal
from services.search import SearchHit

MAX_QUERY = search.MAX_QUERY
RESULTS_PER_GROUP = 20
SUGGESTIONS_PER_GROUP = 5  # the box's panel: the top few of each group, the page has the rest
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


def results_href(query: str) -> str:
    return f"/search?q={quote(query, safe='')}"


def see_all_words(total: ListTotal | None, label: str) -> str:
    """ "See all 143 in Charges"; without the number when counting was too dear (the list then
    shows none either)."""
    return f"See all {total.label} in {label}" if total else f"See all in {label}"


HIT_GROUPS = ("customers", "charges", "invoices", "subscriptions")


def show_hits(state: rx.State, found: search.SearchResults) -> None:
    """Each group's hits as rows, on a state with one list per group (the box's, the page's)."""
    for kind in HIT_GROUPS:
        setattr(state, kind, [hit_view(hit, kind) for hit in getattr(found, kind)])


class SearchBoxState(SessionState):
    """The search box in every page's header: what is typed stays here while the member moves
    between pages, and the top hits show under it as they type (one debounce: the controlled
    input's own)."""

    problem_var: ClassVar[str] = "hint"

    text: str = ""  # what the box shows
    panel_open: bool = False
    hint: str = ""  # why nothing is shown yet (too short), or a refusal, in the service's words
    searched: str = ""  # the words the hits below are for
    customers: list[dict[str, str]] = []
    charges: list[dict[str, str]] = []
    invoices: list[dict[str, str]] = []
    subscriptions: list[dict[str, str]] = []

    @rx.var
    def total(self) -> int:
        return len(self.customers) + len(self.charges) + len(self.invoices) + len(self.subscriptions)

    @rx.var
    def results_href(self) -> str:
        return results_href(self.searched)

    def _clear(self) -> None:
        self.customers, self.charges, self.invoices, self.subscriptions = [], [], [], []
        self.hint, self.searched = "", ""

    def _show(self, text: str) -> None:
        """The box shows `text` with its panel closed (the results page, a hit chosen)."""
        self.text, self.panel_open = text[:MAX_QUERY], False
        self._clear()

    @rx.event
    @guarded
    async def suggest(self, text: str):
        """The box's text changed (after the input's debounce): the top hits of each group."""
        self.text = text[:MAX_QUERY]
        query = search.plain_words(self.text)
        self._clear()
        self.panel_open = query != ""
        if not query:
            return
        try:
            found = await self._call(search.global_search, query, SUGGESTIONS_PER_GROUP)
        except BillyError as exc:
            self.hint = exc.message
            return
        show_hits(self, found)
        self.searched = found.query

    @rx.event
    def close(self):
        """Escape, focus leaving the box, or a hit chosen: the panel closes, the text stays."""
        self.panel_open = False


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
    # "See all N in Customers / Charges": for a group with more, the list narrowed to every match.
    see_all_customers: str = ""
    see_all_charges: str = ""

    @rx.var
    def see_all_customers_href(self) -> str:
        return f"/customers?q={quote(self.query, safe='')}"

    @rx.var
    def see_all_charges_href(self) -> str:
        return f"/charges?q={quote(self.query, safe='')}"

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
        self.see_all_customers, self.see_all_charges = "", ""

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
        show_hits(self, found)
        self.more = sorted(found.more)
        longer = tuple(kind for kind in search.SEE_ALL_KINDS if kind in found.more)
        if longer:
            totals = await self._call(search.found_totals, found.query, longer)
            if "customers" in totals:
                self.see_all_customers = see_all_words(totals["customers"], "Customers")
            if "charges" in totals:
                self.see_all_charges = see_all_words(totals["charges"], "Charges")
        self.searched = True

    async def _box_shows(self, text: str) -> None:
        box = await self.get_state(SearchBoxState)
        box._show(text)

    @rx.event
    @guarded
    async def load(self):
        """on_load of /search: the query comes from the address (`?q=`), so a result page can be shared."""
        self.query = str(self.router.url.query_parameters.get("q", "") or "")[:MAX_QUERY]
        await self._box_shows(self.query)
        await self._run()

    @rx.event
    @guarded
    async def go(self, form: dict):
        """The header's search box: open the results page for what was typed."""
        query = " ".join(str(form.get("q", "")).split())[:MAX_QUERY]
        if not query:
            return None
        self.query = query
        await self._box_shows(query)
        address = results_href(query)
        if (self.router.url.path or "").rstrip("/") == "/search":
            # Already on the results page: search once here and only rewrite the address (a
            # redirect would run on_load and search a second time).
            await self._run()
            return rx.call_script(f"window.history.replaceState(null, '', {address!r})")
        return rx.redirect(address)
