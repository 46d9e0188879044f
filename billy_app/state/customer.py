"""One customer: details and their charges, each refundable from a dialog; details editable
from the "Edit customer" dialog within what the member's role may change (issue 12).

The dialog offers exactly the fields `services.customers.editable_customer_fields` names, but
whatever the save event carries goes to the service, which alone decides what may change (a
forged field is refused there, and audited). One dialog opening is one intent: it gets an
idempotency key (kept server-side), reused if the member saves again after a failure.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, ClassVar

import reflex as rx
from reflex_base.event import EventSpec

from billy_app.state.customer_overview import (
    InvoiceRow,
    PaymentMethodRow,
    SpendRow,
    SubscriptionRow,
    TrailRow,
    overview_rows,
)
from billy_app.state.live import LiveState
from billy_app.state.session import SessionState, guarded
from billy_app.state.view import CustomerChargeRow, charge_view, customer_view
from services import billing, customers, sync
from services.customer_overview import customer_overview
from services.errors import BillyError, ValidationFailed
from services.permissions import control

# The form's text inputs: service field, or address part under `address_<part>`.
TEXT_INPUTS = ("name", "email", "phone", "description")
ADDRESS_INPUT = "address_"


@dataclass(frozen=True, kw_only=True)
class CustomerEditForm:
    """The edit dialog's fields as they were when it opened (pre-filled values)."""

    name: str = ""
    email: str = ""
    phone: str = ""
    description: str = ""
    line1: str = ""
    line2: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    metadata: str = ""  # one "key = value" per line


def metadata_text(metadata: dict[str, str]) -> str:
    return "\n".join(f"{k} = {v}" for k, v in sorted(metadata.items()))


def parse_metadata(text: str) -> dict[str, str]:
    """The dialog's "key = value" lines; a line without "=" is refused in words."""
    parsed: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValidationFailed(f"Metadata line {number} needs the form key = value.")
        parsed[key.strip()] = value.strip()
    return parsed


# The browser's form data also carries each input under its element id ("edit-name" arrives as
# "edit_name", as Reflex collects refs): those echoes of the named inputs are not extra fields.
ID_ECHO = "edit_"


def _without_id_echoes(form: dict[str, Any]) -> dict[str, Any]:
    named = {*TEXT_INPUTS, "metadata", *(ADDRESS_INPUT + part for part in customers.ADDRESS_PARTS)}
    return {k: v for k, v in form.items() if not (k.startswith(ID_ECHO) and k[len(ID_ECHO) :] in named)}


def changes_from_form(form: dict[str, Any], before: customers.CustomerView) -> dict[str, Any]:
    """What the member changed: fields whose value differs from the one shown. Names the form
    does not have are passed on as they came, for the service to refuse."""
    changes: dict[str, Any] = {}
    address = dict(before.address)
    for name, value in form.items():
        if name in TEXT_INPUTS:
            if not isinstance(value, str) or value.strip() != getattr(before, name):
                changes[name] = value
        elif name.startswith(ADDRESS_INPUT) and name[len(ADDRESS_INPUT) :] in customers.ADDRESS_PARTS:
            address[name[len(ADDRESS_INPUT) :]] = value.strip() if isinstance(value, str) else value
        elif name == "metadata":
            wanted = parse_metadata(value if isinstance(value, str) else "")
            delta = {k: v for k, v in wanted.items() if before.metadata.get(k) != v}
            delta.update({k: "" for k in before.metadata if k not in wanted})  # removed: "" unsets it
            if delta:
                changes["metadata"] = delta
        else:
            changes[str(name)] = value
    if address != before.address:
        changes["address"] = address
    return changes


STILL_OPENING = "This page is still opening its customer: wait until it shows, then try again."


def customer_in_address(path: str) -> str:
    """The customer a `/customers/<id>` address names: what the tab shows, or is opening, now."""
    return path.rstrip("/").rsplit("/", 1)[-1]


class CustomerState(LiveState, SessionState):
    problem_var: ClassVar[str] = "error"

    def _live_kinds(self) -> frozenset[str]:
        # `card`: a card saved as a source (customer.source.* events) is a payment method to Billy.
        return frozenset({"customer", "charge", "refund", "subscription", "invoice", "payment_method", "card"})

    async def _live_refresh(self) -> None:
        await self._reload()

    customer: dict[str, str] = {}
    address: str = ""
    phone: str = ""
    description: str = ""
    metadata: str = ""
    charges: list[CustomerChargeRow] = []
    lifetime: list[SpendRow] = []
    payment_methods: list[PaymentMethodRow] = []
    subscriptions: list[SubscriptionRow] = []
    invoices: list[InvoiceRow] = []
    trail: list[TrailRow] = []
    error: str = ""
    _customer_id: str = ""

    # The edit dialog.
    can_edit: bool = False  # the role may change some field now: the page offers "Edit customer"
    # Each charge's "Refund": hidden when the role can never refund, disabled with the reason when blocked.
    refund_shown: bool = False
    refund_blocked_by: str = ""
    edit_fields: list[str] = []  # exactly the fields the dialog offers
    edit_form: CustomerEditForm = CustomerEditForm()
    edit_open: bool = False
    edit_problem: str = ""
    edit_saving: bool = False
    edit_round: int = 0  # re-keys the inputs so each opening shows fresh values
    _edit_key: str = ""
    _edit_before: customers.CustomerView | None = None

    async def _reload(self) -> None:
        """Re-read the customer and their charges; a refusal empties the page and says why."""
        try:
            detail = await self._call(billing.get_customer, self._customer_id)
            view = await self._call(customers.get_customer_view, self._customer_id)
            overview = overview_rows(await self._call(customer_overview, self._customer_id))
        except BillyError as exc:
            self.error, self.customer, self.charges = exc.message, {}, []
            self.lifetime, self.payment_methods, self.subscriptions, self.invoices, self.trail = [], [], [], [], []
            return
        self.lifetime, self.payment_methods = overview.lifetime, overview.payment_methods
        self.subscriptions, self.invoices, self.trail = overview.subscriptions, overview.invoices, overview.trail
        self.error = ""
        self.customer = customer_view(detail.customer)
        parts = [detail.address.get(k) for k in ("line1", "line2", "city", "state", "postal_code", "country")]
        self.address = ", ".join(p for p in parts if p)
        self.phone = detail.phone
        self.description = view.description
        self.metadata = ", ".join(f"{k}: {v}" for k, v in sorted(view.metadata.items()))
        self.charges = [charge_view(charge) for charge in detail.charges]

    def _show_problem(self, problem: BillyError) -> EventSpec | None:
        """In the edit dialog while it is open, else where the page shows problems."""
        if self.edit_open:
            self.edit_problem = problem.message
            return None
        return super()._show_problem(problem)

    @rx.event
    @guarded
    async def reload(self):
        await self._reload()

    @rx.event
    @guarded
    async def load(self):
        self._customer_id = customer_in_address(self.router.url.path or "")
        self.can_edit = bool(await self._call(customers.editable_customer_fields))
        refund = control(await self.actor(), "charges.refund")
        self.refund_shown, self.refund_blocked_by = refund.shown, refund.blocked_by
        await self._reload()

    @rx.event
    @guarded
    async def refresh_cards(self):
        """After the page shows what the store holds: cards this customer saved that no list
        carries (not their default), read from Stripe when the background sweep has not reached
        them yet, then shown (issue 16)."""
        if self._customer_id and await self._call(sync.refresh_customer_cards, self._customer_id):
            await self._reload()

    @rx.event
    @guarded
    async def start_edit(self):
        """Open the dialog with the stored values of the fields this member may change: those of the
        customer the address names, never the previous page's while this one is still loading."""
        if self._customer_id != customer_in_address(self.router.url.path or ""):
            raise ValidationFailed(STILL_OPENING)
        fields = await self._call(customers.editable_customer_fields)
        self.can_edit = bool(fields)
        if not fields:
            raise ValidationFailed("Your role cannot change customer details.")
        view = await self._call(customers.get_customer_view, self._customer_id)
        self._edit_before = view
        self.edit_fields = sorted(fields)
        self.edit_form = CustomerEditForm(
            name=view.name,
            email=view.email,
            phone=view.phone,
            description=view.description,
            metadata=metadata_text(view.metadata),
            **view.address,
        )
        self._edit_key = secrets.token_urlsafe(24)
        self.edit_problem, self.edit_saving, self.edit_open = "", False, True
        self.edit_round += 1

    @rx.event
    def set_edit_open(self, value: bool):
        if not value:
            self._end_edit()

    @rx.event
    def close_edit(self):
        self._end_edit()

    def _end_edit(self) -> None:
        """Closing ends the intent: a reopened dialog gets a new idempotency key."""
        self.edit_open, self._edit_key, self._edit_before, self.edit_problem = False, "", None, ""

    @rx.event
    @guarded
    async def save_edit(self, form: dict):
        """Send what changed; the same key as any earlier attempt from this opening."""
        if self.edit_saving or not self._edit_key or self._edit_before is None:
            return  # a second click while the first is in flight, or after the dialog closed
        changes = changes_from_form(_without_id_echoes(form), self._edit_before)
        if not changes:
            self._end_edit()
            yield rx.toast.info("Nothing was changed.")
            return
        self.edit_problem, self.edit_saving = "", True
        yield
        try:
            result = await self._call(customers.update_customer, self._customer_id, changes, self._edit_key)
        finally:
            self.edit_saving = False
        self._end_edit()
        await self._reload()
        note = "" if result.stored else " Billy will show it after the next sync."
        yield rx.toast.success(f"Saved the customer's {', '.join(result.fields)} in Stripe.{note}")
