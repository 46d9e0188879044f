"""`/products`: the catalogue (products with their prices in words), searchable and paged, kept live;
"New product", "Rename", "Archive"/"Restore" and "Add price" for the roles that may manage it.

Each dialog opening is one intent: it gets an idempotency key (kept server-side), reused when the
member saves again after a failure, dropped when the dialog closes. Whatever a save event carries
goes to one service function, which alone decides (and audits) whether the caller may do it; the
page only hides or disables the controls.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, ClassVar

import reflex as rx
from reflex_base.event import EventSpec

from billy_app.state.list_page import ROWS_PER_PAGE, SearchedPages, range_label
from billy_app.state.live import LiveState
from billy_app.state.session import SessionState, guarded
from services import catalog
from services.errors import BillyError, PermissionDenied, ValidationFailed
from services.money import parse_money

ONE_OFF = "once"  # the interval select's "one-off" choice (Radix selects cannot offer an empty value)
INTERVAL_CHOICES = [
    ("month", "Every month"),
    ("year", "Every year"),
    ("week", "Every week"),
    ("day", "Every day"),
    (ONE_OFF, "Once (one-off)"),
]
CURRENCY_CHOICES = catalog.currency_choices()
MAX_TEXT = 2000  # characters kept from a typed field; the service judges the rest


class Dialog:
    """Which dialog is open ("" when none)."""

    NONE = ""
    CREATE = "create"
    RENAME = "rename"
    ARCHIVE = "archive"
    PRICE = "price"


@dataclass(frozen=True, kw_only=True)
class ProductTableRow:
    """One product as the catalogue shows it."""

    id: str
    name: str
    description: str
    active: bool
    status: str  # "Active" | "Archived"
    prices: list[str]  # each price in words, archived ones marked


def product_view(row: catalog.ProductRow) -> ProductTableRow:
    return ProductTableRow(
        id=row.id,
        name=row.name,
        description=row.description,
        active=row.active,
        status=row.status,
        prices=[
            (p.words if p.active else f"{p.words} (archived)") + (f" · {p.nickname}" if p.nickname else "")
            for p in row.prices
        ],
    )


def _form_text(form: dict[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value[:MAX_TEXT] if isinstance(value, str) else ""


class ProductsState(SearchedPages, LiveState, SessionState):
    problem_var: ClassVar[str] = "error"
    query_limit: ClassVar[int] = catalog.MAX_QUERY

    rows: list[ProductTableRow] = []

    # The write controls: shown when the role may ever use them; the reason when blocked now.
    create_shown: bool = False
    create_blocked: str = ""
    update_shown: bool = False
    update_blocked: str = ""
    archive_shown: bool = False
    archive_blocked: str = ""
    price_shown: bool = False
    price_blocked: str = ""
    key_lacks_writes: bool = False  # offer "Check again" once the Owner may have edited the key

    # The open dialog.
    dialog: str = Dialog.NONE
    dialog_product_id: str = ""
    dialog_product_name: str = ""
    form_name: str = ""
    form_description: str = ""
    archive_to: bool = True  # True: archiving; False: restoring
    archive_warning: str = ""
    price_currency: str = "usd"
    price_interval: str = "month"
    dialog_problem: str = ""
    saving: bool = False
    dialog_round: int = 0  # re-keys the forms so each opening shows fresh values
    _key: str = ""

    def _live_kinds(self) -> frozenset[str]:
        return frozenset({"product", "price"})

    async def _live_refresh(self) -> None:
        await self._read(self._cursors[-1], len(self._cursors))

    def _show_problem(self, problem: BillyError) -> EventSpec | None:
        """In the open dialog, else above the catalogue (a refusal also empties it)."""
        if self.dialog:
            self.dialog_problem = problem.message
            return None
        if isinstance(problem, PermissionDenied):
            self.rows, self.has_next = [], False
        return super()._show_problem(problem)

    # --- reading ------------------------------------------------------------------------------

    async def _read(self, cursor: str, page_number: int) -> None:
        page = await self._call(catalog.list_products, self.query, cursor or None, ROWS_PER_PAGE)
        self.rows = [product_view(item) for item in page.items]
        self._next_cursor = page.next_cursor or ""
        self.has_next = page.next_cursor is not None
        self.range_label = range_label(page_number, len(self.rows), page.total.label if page.total else "")
        self.error = ""

    async def _controls(self, *, ask_again: bool = False) -> None:
        controls = await self._call(catalog.catalog_controls, ask_again=ask_again)
        self.create_shown, self.create_blocked = controls.create.shown, controls.create.blocked_by
        self.update_shown, self.update_blocked = controls.update.shown, controls.update.blocked_by
        self.archive_shown, self.archive_blocked = controls.archive.shown, controls.archive.blocked_by
        self.price_shown, self.price_blocked = controls.add_price.shown, controls.add_price.blocked_by
        self.key_lacks_writes = controls.key_lacks_writes

    @rx.event
    @guarded
    async def load(self):
        self.query, self.dialog = "", Dialog.NONE
        await self._controls()
        await self._first_page()

    @rx.event
    @guarded
    async def check_key_again(self):
        """After the Owner edited the key in Stripe: ask Stripe now instead of within the minute."""
        await self._controls(ask_again=True)
        if self.key_lacks_writes:
            return rx.toast.info("Stripe still says the key may not do this. Changes there can take a moment.")
        return rx.toast.success("The key may now write products and prices.")

    # --- dialogs --------------------------------------------------------------------------------

    def _open(self, dialog: str, product: catalog.ProductRow | None = None) -> None:
        """Open `dialog` as a new intent (a new idempotency key)."""
        self.dialog = dialog
        self.dialog_product_id = product.id if product else ""
        self.dialog_product_name = product.name if product else ""
        self.form_name = product.name if product else ""
        self.form_description = product.description if product else ""
        self.dialog_problem, self.saving, self._key = "", False, secrets.token_urlsafe(24)
        self.dialog_round += 1

    def _close(self) -> None:
        """Closing ends the intent: a reopened dialog gets a new idempotency key."""
        self.dialog, self._key, self.dialog_problem, self.saving = Dialog.NONE, "", "", False

    @rx.event
    def start_create(self):
        self._open(Dialog.CREATE)

    @rx.event
    @guarded
    async def start_rename(self, product_id: str):
        self._open(Dialog.RENAME, await self._call(catalog.get_product, product_id))

    @rx.event
    @guarded
    async def start_archive(self, product_id: str):
        product = await self._call(catalog.get_product, product_id)
        self._open(Dialog.ARCHIVE, product)
        self.archive_to = product.active
        self.archive_warning = catalog.archive_warning(product.name, product.active, product.active_prices)

    @rx.event
    @guarded
    async def start_price(self, product_id: str):
        self._open(Dialog.PRICE, await self._call(catalog.get_product, product_id))
        self.price_currency, self.price_interval = "usd", "month"

    @rx.event
    def set_dialog_open(self, value: bool):
        if not value:
            self._close()

    @rx.event
    def close_dialog(self):
        self._close()

    @rx.event
    def set_price_currency(self, currency: str):
        self.price_currency = currency if currency in dict(CURRENCY_CHOICES) else "usd"

    @rx.event
    def set_price_interval(self, interval: str):
        self.price_interval = interval if interval in dict(INTERVAL_CHOICES) else "month"

    async def _saved(self, change: catalog.CatalogChange) -> EventSpec:
        """After a write: close the dialog, show the store's copy at once, say what happened."""
        self._close()
        await self._read(self._cursors[-1], len(self._cursors))
        note = "" if change.stored else " Billy will show it after the next sync."
        return rx.toast.success(change.message + note, id="catalog-saved")

    def _busy(self, dialog: str) -> bool:
        """True when this save must not run: another in flight, or not this dialog's (closed, or a
        stale second click). A forged save with no dialog open changes nothing."""
        return self.saving or not self._key or self.dialog != dialog

    @rx.event
    @guarded
    async def save_new_product(self, form: dict):
        if self._busy(Dialog.CREATE):
            return
        self.dialog_problem, self.saving = "", True
        yield
        try:
            change = await self._call(
                catalog.create_product, _form_text(form, "name"), _form_text(form, "description"), self._key
            )
        finally:
            self.saving = False
        yield await self._saved(change)

    @rx.event
    @guarded
    async def save_rename(self, form: dict):
        if self._busy(Dialog.RENAME):
            return
        self.dialog_problem, self.saving = "", True
        yield
        try:
            change = await self._call(
                catalog.update_product,
                self.dialog_product_id,
                _form_text(form, "name"),
                _form_text(form, "description"),
                self._key,
            )
        finally:
            self.saving = False
        yield await self._saved(change)

    @rx.event
    @guarded
    async def confirm_archive(self):
        if self._busy(Dialog.ARCHIVE):
            return
        self.dialog_problem, self.saving = "", True
        yield
        try:
            change = await self._call(catalog.set_product_archived, self.dialog_product_id, self.archive_to, self._key)
        finally:
            self.saving = False
        yield await self._saved(change)

    @rx.event
    @guarded
    async def save_price(self, form: dict):
        if self._busy(Dialog.PRICE):
            return
        currency = self.price_currency
        try:
            amount = parse_money(_form_text(form, "amount"), currency)
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from None
        count_text = _form_text(form, "interval_count").strip() or "1"
        if not count_text.isdigit() or len(count_text) > 4:
            raise ValidationFailed("Enter how many intervals pass between charges as a whole number, e.g. 1.")
        interval = None if self.price_interval == ONE_OFF else self.price_interval
        self.dialog_problem, self.saving = "", True
        yield
        try:
            change = await self._call(
                catalog.create_price,
                self.dialog_product_id,
                amount,
                currency,
                interval,
                int(count_text) if interval else 1,
                self._key,
                _form_text(form, "nickname"),
            )
        finally:
            self.saving = False
        yield await self._saved(change)
