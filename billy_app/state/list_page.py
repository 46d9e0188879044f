"""What the charges, subscriptions and invoices pages share: a filter bar, a sort, keyset pages.

A state mixin, so each page keeps its own copy of these vars. Every handler argument is
untrusted: a filter value is cut to its field's length and a choice must be one offered;
the service checks the rest (and says what is wrong). The filters and cursors in force are
kept server-side: a page, a sort or a `refresh` works on those, not on whatever is typed in
the bar. Cursors never leave the server. The filters and sort in force are also written into
the address (`?status=failed&sort=oldest`): a reload, a tab reconnecting to another worker, or
a link someone shares opens the list as it was.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import urlencode

import reflex as rx
from reflex_base.event import EventSpec

from billy_app.error_handlers import log_unexpected
from billy_app.state.session import SessionExpired, guarded, off_loop
from billy_app.state.view import set_changed
from services import exports, timezones
from services.errors import BillyError, PermissionDenied
from services.permissions import Actor
from services.reports import ListTotal, Page

SORT_CHOICES = [
    ("newest", "Newest first"),
    ("oldest", "Oldest first"),
    ("amount_desc", "Highest amount"),
    ("amount_asc", "Lowest amount"),
]
# The browser's IANA zone: picked dates are whole days in it.
ZONE_SCRIPT = "Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'"
ANY = "any"  # a select's "no filter" choice (Radix selects cannot offer an empty value)
# Rows on one page of every list in the dashboard (the API keeps its own default, `limit`): a
# screenful on a laptop, and the most the list services serve at once (reports.MAX_PAGE_SIZE).
ROWS_PER_PAGE = 50


class LateTotal(rx.State, mixin=True):
    """A list's total that did not fit in its page's read (`reports.PAGE_COUNT_BUDGET_MS`):
    counted after the rows are painted, by `count_total` (a background event the reading handler
    returns) or by the live follower after a refresh, and shown when it comes ("1–50" becomes
    "1–50 of 27,107"). While a list of the same filters is re-read, the total it last had stays
    on screen until the new one is counted, so a live page does not flicker."""

    _total: str = ""  # "4,221", "10,000+", or "" (not counted)
    # What the rows on screen were read under (JSON: their filters), which `_total` counts.
    _total_shape: str = ""
    _count_pending: bool = False

    def _count(self, actor: Actor, read_under: list[Any]) -> ListTotal | None:
        """The service's late count of the rows read under `read_under` (what the page passed to
        `_note_total`; in a worker thread: it must not touch the state)."""
        raise NotImplementedError

    def _show_total(self) -> None:
        """Put `_total` where the page shows it."""
        raise NotImplementedError

    def _note_total(self, total: ListTotal | None, read_under: list[Any]) -> None:
        """After a read under `read_under` (JSON values): its total, or (none came) count it later."""
        shape = json.dumps(read_under)
        if total is not None:
            self._total, self._count_pending = total.label, False
        else:
            if shape != self._total_shape:
                self._total = ""  # another filter's total is not this one's
            self._count_pending = True
        self._total_shape = shape

    def _late_total(self) -> EventSpec | None:
        """What a reading handler returns: the count it left for later, if any."""
        return type(self).count_total() if self._count_pending else None  # type: ignore[attr-defined]

    async def _count_late(self) -> None:
        """Count the pending total, outside the state's lock (a background task's)."""
        async with self:
            if not self._count_pending:
                return
            shape = self._total_shape
            actor = await self.actor()  # type: ignore[attr-defined]
        try:
            total = await off_loop(self._count, actor, json.loads(shape))
        except BillyError:
            total = None  # a refusal or a bad filter is the page's to say; the total stays unknown
        async with self:
            if not self._count_pending or self._total_shape != shape:
                return  # the list was read under other filters meanwhile: its own count follows
            self._count_pending = False
            self._total = total.label if total else ""
            self._show_total()

    async def _count_late_quietly(self) -> None:
        try:
            await self._count_late()
        except SessionExpired:
            return  # the page's next event sends the person to sign in
        except Exception as exc:  # noqa: BLE001 - logged with an id; the rows are shown without a total
            log_unexpected(exc, "a list's total")

    @rx.event(background=True)
    async def count_total(self):
        """Returned by a handler whose read came without its total. Not `guarded`: a background
        task changes state only inside `async with self`, and answers nothing."""
        await self._count_late_quietly()


# Row views of the pages tabs were handed, by (page, view): tabs hearing the same store change
# get the very same Page from `reports.shared_pages`, and converting its rows once per tab was
# 8 % of the server's GIL time with fifty lists open in a burst of Stripe events (bench.burst).
# The page object is kept with its views, so its id cannot be reused while the entry lives.
_VIEWS_KEPT = 64
_kept_views: OrderedDict[tuple[int, Callable[..., Any]], tuple[Page[Any], list[Any]]] = OrderedDict()


def _views_of(page: Page[Any], view: Callable[[Any], Any]) -> list[Any]:
    """`view` (a list's `_view`) of each of the page's rows, built once per page. Only
    called on the event loop; the rows are frozen dataclasses, so tabs may share them."""
    key = (id(page), view)
    kept = _kept_views.get(key)
    if kept is None:
        kept = (page, [view(item) for item in page.items])
        _kept_views[key] = kept
        while len(_kept_views) > _VIEWS_KEPT:
            _kept_views.popitem(last=False)
    _kept_views.move_to_end(key)
    return list(kept[1])


def _also(*events: EventSpec | None) -> list[EventSpec] | None:
    """A handler's answer: the events that are not None (None when there are none)."""
    kept = [e for e in events if e is not None]
    return kept or None


class SearchedPages(LateTotal, mixin=True):
    """A list searched by one box and read in keyset pages (customers, the catalogue): the search
    box, "Next" and "Previous". The cursor of each page on the way here stays server-side."""

    query_limit: ClassVar[int] = 200

    query: str = ""
    error: str = ""
    page_number: int = 1
    has_next: bool = False
    range_label: str = ""  # "1–25 of 4,221"
    _cursors: list[str] = [""]  # the cursor each page was read with ("": the first)
    _next_cursor: str = ""
    _filled: bool = False  # the tab has read a page of this list (its own visit, or the warm-up)

    async def _read(self, cursor: str, page_number: int) -> None:
        """Read the page at `cursor` into `rows`, `_next_cursor`, `has_next` and `range_label`."""
        raise NotImplementedError

    async def _first_page(self) -> None:
        await self._read("", 1)
        self._cursors, self.page_number, self._filled = [""], 1, True

    async def _prefill(self) -> None:
        """The first page, unsearched, before the list is opened (`list_warmup`)."""
        self.query = ""
        await self._first_page()

    def _box_search_started(self) -> EventSpec | None:
        """The box's own search (or its Clear) replaces whatever else narrowed the list; a page
        that narrows it another way (the customers list's `?q=`) undoes that here."""
        return None

    @rx.event
    @guarded
    async def search(self, form: dict):
        query = form.get("q", "") if isinstance(form, dict) else ""
        self.query = query[: self.query_limit] if isinstance(query, str) else ""
        leaving = self._box_search_started()
        await self._first_page()
        return _also(leaving, self._late_total())

    @rx.event
    @guarded
    async def clear_search(self):
        self.query = ""
        leaving = self._box_search_started()
        await self._first_page()
        return _also(leaving, self._late_total())

    @rx.event
    @guarded
    async def next_page(self):
        if not self._next_cursor:
            return None
        cursor = self._next_cursor
        await self._read(cursor, self.page_number + 1)
        self._cursors = [*self._cursors, cursor]
        self.page_number = len(self._cursors)
        return self._late_total()

    @rx.event
    @guarded
    async def previous_page(self):
        if len(self._cursors) <= 1:
            return None
        cursors = self._cursors[:-1]
        await self._read(cursors[-1], len(cursors))
        self._cursors, self.page_number = cursors, len(cursors)
        return self._late_total()


class ListPage(LateTotal, mixin=True):
    problem_var: ClassVar[str] = "error"

    rows: list[Any] = []  # each page declares it again with its own row dataclass
    error: str = ""  # why nothing can be shown (a refusal, a stale page link)
    problem: str = ""  # why the filters were not applied (the table keeps the last good ones)
    page_number: int = 1
    has_next: bool = False
    range_label: str = ""  # "1–25 of 4,221" (or "of 10,000+": counted up to a cap)
    sort: str = "newest"
    zone: str = "UTC"
    _zone_read: bool = False  # the browser's zone is asked once per tab, not on every visit
    filters: dict[str, str] = {}  # the filter bar as typed and picked (not yet applied)
    # Server-side only: the filters in force and the cursor each page was read with ("": the first).
    _applied: dict[str, str] = {}
    _cursors: list[str] = [""]
    _next_cursor: str = ""
    _filled: bool = False  # the tab has read a page of this list (its own visit, or the warm-up)
    # The Export button: hidden when the role can never export, disabled with the reason when
    # the plan blocks it; `exporting` while the download ticket is being made.
    export_shown: bool = False
    export_blocked: str = ""
    exporting: bool = False

    # --- what each page says about itself ---------------------------------------------------

    def _text_fields(self) -> dict[str, int]:
        """Typed filters and their longest accepted value."""
        raise NotImplementedError

    def _choice_fields(self) -> dict[str, list[tuple[str, str]]]:
        """Picked filters and their choices (the first is ANY)."""
        raise NotImplementedError

    def _page(
        self, actor: Actor, applied: dict[str, str], sort: str, cursor: str | None, zone: str, limit: int
    ) -> Page[Any]:
        """Call the page's service function for `limit` rows (in a worker thread: it must not
        touch the state)."""
        raise NotImplementedError

    @staticmethod
    def _view(row: Any) -> Any:
        """One service row → the page's row dataclass (the type its `rows` declares): a pure
        conversion, as tabs share its results (`_views_of`)."""
        raise NotImplementedError

    export_kind: ClassVar[str] = ""  # its `services.exports` kind

    def _filters(self, applied: dict[str, str], zone: str) -> object:
        """The filters in force as the service's filters object (shared by a page and an export)."""
        raise NotImplementedError

    def _blank(self) -> dict[str, str]:
        return {**dict.fromkeys(self._text_fields(), ""), **dict.fromkeys(self._choice_fields(), ANY)}

    # --- reading --------------------------------------------------------------------------------

    async def _read(self, cursor: str, applied: dict[str, str] | None = None, sort: str | None = None) -> None:
        in_force = dict(self._applied if applied is None else applied)
        page = await self._call(self._page, in_force, sort or self.sort, cursor or None, self.zone, ROWS_PER_PAGE)  # type: ignore[attr-defined]
        set_changed(self, rows=_views_of(page, self._view), has_next=page.next_cursor is not None, error="")
        self._next_cursor = page.next_cursor or ""
        self._note_total(page.total, [in_force, self.zone])

    def _count(self, actor: Actor, read_under: list[Any]) -> ListTotal | None:
        applied, zone = read_under
        return self._count_for(actor, applied, zone)

    def _count_for(self, actor: Actor, applied: dict[str, str], zone: str) -> ListTotal | None:
        """Call the page's late-count service function (in a worker thread)."""
        raise NotImplementedError

    def _show_total(self) -> None:
        set_changed(self, range_label=range_label(self.page_number, len(self.rows), self._total))

    async def _live_refresh(self) -> None:
        """A store change (`LiveState.follow`): the page on screen, read again."""
        await self._read(self._cursors[-1])
        self._show_total()

    def _left_for_later(self) -> bool:
        return self._count_pending

    async def _after_live_refresh(self) -> None:
        await self._count_late_quietly()

    def _show_page(self, cursors: list[str]) -> None:
        """Record which page is on screen (after a read) and say which rows it holds."""
        self._cursors, self.page_number = cursors, len(cursors)
        self._show_total()

    def _show_problem(self, problem: BillyError) -> EventSpec | None:
        """Why nothing can be shown, in `error`; a refusal also empties the table."""
        if isinstance(problem, PermissionDenied):
            self.rows, self.has_next = [], False
        return super()._show_problem(problem)  # type: ignore[misc]

    async def _first_page(self) -> None:
        """The first page under the filters in force; a Billy error is shown, not raised."""
        try:
            await self._read("")
        except BillyError as exc:
            self._show_problem(exc)
            return
        self._show_page([""])
        self._filled = True

    async def _prefill(self) -> None:
        """The newest rows, unfiltered, before the list is opened (`list_warmup`)."""
        self.filters, self._applied, self.sort = self._blank(), {}, "newest"
        await self._first_page()

    def _url_filters(self) -> dict[str, str]:
        """Filters named in the address (`/invoices?status=overdue`), as the bar would take them."""
        texts, choices = self._text_fields(), self._choice_fields()
        out: dict[str, str] = {}
        for name, value in dict(self.router.url.query_parameters).items():
            if name in texts and isinstance(value, str):
                out[name] = value.strip()[: texts[name]]
            elif name in choices and value in dict(choices[name]):
                out[name] = value
        return out

    def _url_sort(self) -> str:
        sort = self.router.url.query_parameters.get("sort")
        return sort if isinstance(sort, str) and sort in dict(SORT_CHOICES) else "newest"

    def _kept_in_address(self) -> EventSpec:
        """Rewrite the address (without a navigation) to the filters and sort in force."""
        query = {name: value for name, value in self._applied.items() if value}
        if self.sort != "newest":
            query["sort"] = self.sort
        address = (self.router.url.path or "/") + ("?" + urlencode(query) if query else "")
        return rx.call_script(f"window.history.replaceState(null, '', {json.dumps(address)})")

    @rx.event
    @guarded
    async def load(self):
        """on_load: the rows filtered and sorted as the address says (links from the dashboard,
        a reload, a reconnection)."""
        self.filters, self._applied, self.sort, self.problem = self._blank(), {}, self._url_sort(), ""
        self.filters = {**self.filters, **self._url_filters()}
        self._applied = self._typed({}) or {}
        await self._first_page()
        button = await self._call(exports.button_for)
        self.export_shown, self.export_blocked = button.shown, button.blocked
        if self.error and self._applied:  # the address's filters do not hold: show everything
            self.problem, self.error = self.error, ""
            self.filters, self._applied = self._blank(), {}
            await self._first_page()
            if self.error:  # refused either way: say it once
                self.problem = ""
        zone = None if self._zone_read else rx.call_script(ZONE_SCRIPT, callback=type(self).set_zone)
        return _also(zone, self._late_total())

    @rx.event
    @guarded
    async def refresh(self):
        """Reload the page on screen under the filters in force (for store-change notices).
        If its page link no longer holds, start again from the first page."""
        try:
            await self._read(self._cursors[-1])
            self._show_page(self._cursors)
        except BillyError:
            await self._read("")
            self._show_page([""])
        return self._late_total()

    @rx.event
    def set_zone(self, zone: str):
        self.zone = timezones.viewer_zone(zone)
        self._zone_read = True

    # --- the filter bar ----------------------------------------------------------------------------

    @rx.event
    def set_filter(self, name: str, value: str):
        """One control of the filter bar changed (kept until applied)."""
        texts, choices = self._text_fields(), self._choice_fields()
        if not isinstance(name, str) or not isinstance(value, str):
            return
        if name in texts:
            self.filters = {**self.filters, name: value[: texts[name]]}
        elif name in choices and value in dict(choices[name]):
            self.filters = {**self.filters, name: value}

    def _typed(self, form: dict[str, Any] | None) -> dict[str, str] | None:
        """The filters to apply: typed text (cut to length) and offered choices, else None."""
        data = form if isinstance(form, dict) else {}
        out: dict[str, str] = {}
        for name, limit in self._text_fields().items():
            value = data.get(name, self.filters.get(name, ""))
            out[name] = value.strip()[:limit] if isinstance(value, str) else ""
        for name, choices in self._choice_fields().items():
            value = self.filters.get(name, ANY)
            if value not in dict(choices):
                return None
            out[name] = "" if value == ANY else value
        return out

    @rx.event
    @guarded
    async def apply(self, form: dict):
        """Apply the filter bar: the first page of what matches, or say what is wrong."""
        applied = self._typed(form)
        self.problem = ""
        if applied is None:
            self.problem = "Choose each filter from its list."
            return None
        self.filters = {
            **self.filters,
            **{name: value for name, value in applied.items() if name in self._text_fields()},
        }
        try:
            await self._read("", applied)
        except PermissionDenied:
            raise  # not a problem with the filters: the page is refused (`_show_problem`)
        except BillyError as exc:
            self.problem = exc.message
            return None
        self._applied = applied
        self._show_page([""])
        return _also(self._kept_in_address(), self._late_total())

    @rx.event
    @guarded
    async def clear(self):
        self.filters, self._applied, self.problem = self._blank(), {}, ""
        await self._first_page()
        return _also(self._kept_in_address(), self._late_total())

    @rx.event
    @guarded
    async def set_sort(self, value: str):
        if value not in dict(SORT_CHOICES) or value == self.sort:
            return None
        self.sort = value
        await self._first_page()
        return _also(self._kept_in_address(), self._late_total())

    # --- pages ---------------------------------------------------------------------------------------

    @rx.event
    @guarded
    async def next_page(self):
        if not self.has_next or not self._next_cursor:
            return None
        cursor = self._next_cursor
        await self._read(cursor)
        self._show_page([*self._cursors, cursor])
        return self._late_total()

    @rx.event
    @guarded
    async def previous_page(self):
        if len(self._cursors) < 2:
            return None
        cursors = self._cursors[:-1]
        await self._read(cursors[-1])
        self._show_page(cursors)
        return self._late_total()

    # --- export ----------------------------------------------------------------------------------------

    @rx.event
    @guarded
    async def export(self):
        """Export CSV: the filters and sort in force (not what is typed in the bar)."""
        if self.exporting:
            return
        self.exporting = True
        yield
        try:
            answer = await export_download(self, self.export_kind, self._in_force_filters, self.sort)
        finally:
            self.exporting = False
        yield answer

    def _in_force_filters(self) -> object:
        return self._filters(self._applied, self.zone)


def range_label(page_number: int, shown: int, total: str, page_size: int = ROWS_PER_PAGE) -> str:
    """ "26–50 of 4,221" for page 2 of a list; "26–50" when counting was too dear; "" when empty."""
    if not shown:
        return ""
    first = (page_number - 1) * page_size + 1
    rows = f"{first:,}–{first + shown - 1:,}"
    return f"{rows} of {total}" if total else rows


async def export_download(state: Any, kind: str, filters: Callable[[], object], sort: str = "newest") -> EventSpec:
    """Ask for a download ticket for these filters and have the browser fetch the stream from the
    export route; a refusal (the plan, a bad filter) is a toast, leaving the page as it is.
    `state` is a `SessionState` (its `_call` verifies the caller afresh)."""
    try:
        ticket = await state._call(exports.issue_ticket, kind, filters(), sort)
    except BillyError as exc:
        return rx.toast.error(exc.message, id="billy-problem")
    return rx.download(url=exports.download_url(kind, ticket), filename=exports.filename(kind))
