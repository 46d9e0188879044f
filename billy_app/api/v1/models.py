"""What /api/v1 accepts (request bodies and shared query shapes) and the list envelope.

Success bodies are the service results themselves (their dataclasses), so the OpenAPI document
is generated from the same types the pages read. Request bodies refuse unknown fields, so a
misspelt field is a 422 naming it rather than a change silently not made. Sizes and id shapes
are declared here; every rule beyond them is the service's (the same checks as the dashboard).
"""

from __future__ import annotations

from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from services.reports import ListTotal

T = TypeVar("T")

# Stripe ids as Billy's store holds them (letters and digits after the prefix).
CustomerId = Annotated[str, StringConstraints(pattern=r"^cus_[A-Za-z0-9]{1,251}$")]
ChargeId = Annotated[str, StringConstraints(pattern=r"^(ch|py)_[A-Za-z0-9]{1,250}$")]
SubscriptionId = Annotated[str, StringConstraints(pattern=r"^sub_[A-Za-z0-9]{1,251}$")]
InvoiceId = Annotated[str, StringConstraints(pattern=r"^in_[A-Za-z0-9]{1,251}$")]
PriceId = Annotated[str, StringConstraints(pattern=r"^(price|plan)_[A-Za-z0-9]{1,249}$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$")]
Note = Annotated[str, StringConstraints(max_length=1000)]
RefundReason = Literal["requested_by_customer", "duplicate", "fraudulent"]
MinorUnits = Annotated[int, Field(ge=1, le=99_999_999, description="An amount in minor units (cents).")]

ID_PATTERNS = {
    "customer": r"^cus_[A-Za-z0-9]{1,251}$",
    "charge": r"^(ch|py)_[A-Za-z0-9]{1,250}$",
    "subscription": r"^sub_[A-Za-z0-9]{1,251}$",
    "invoice": r"^in_[A-Za-z0-9]{1,251}$",
}
CURSOR_MAX = 300
# Text typed into a search or filter: no control characters (nobody types them, and a NUL
# cannot be compared in SQL text at all).
PLAIN_TEXT = r"^[^\x00-\x1f\x7f]*$"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    """A page of a list, newest first unless sorted otherwise. Pass `next_cursor` as `cursor` for
    the next page; `has_more` is false on the last one."""

    items: list[T]
    next_cursor: str | None
    has_more: bool
    total: ListTotal | None = Field(
        default=None, description="Rows matching, counted up to 10,000 (null: too long to count)."
    )


def page(items: list[T], next_cursor: str | int | None, total: ListTotal | None = None) -> Page[T]:
    cursor = None if next_cursor is None else str(next_cursor)
    return Page[T](items=items, next_cursor=cursor, has_more=cursor is not None, total=total)


# --- refunds ------------------------------------------------------------------------------------


class RefundCreate(Body):
    charge_id: ChargeId
    amount: MinorUnits | None = Field(default=None, description="Omit (or null) to refund everything that remains.")
    reason: RefundReason | None = None
    note: Note = Field(default="", description="Kept in the audit log and on the refund in Stripe.")
    email_customer: bool = Field(default=False, description="Email the customer a confirmation once it is done.")


class RefundPreviewRequest(Body):
    charge_id: ChargeId
    amount: MinorUnits | None = None


class RefundRequestCreate(Body):
    charge_id: ChargeId
    amount: MinorUnits | None = None
    reason: RefundReason | None = None
    note: Annotated[str, StringConstraints(min_length=1, max_length=1000)] = Field(
        description="Why the refund should be made, for the approver."
    )


class Decision(Body):
    note: Note = ""


class Decline(Body):
    note: Annotated[str, StringConstraints(min_length=1, max_length=1000)] = Field(
        description="Why it is declined, for the requester."
    )


# --- customers ----------------------------------------------------------------------------------


class AddressIn(Body):
    """Replaced whole: a part left out is cleared. `country` is a two-letter code."""

    line1: Annotated[str, StringConstraints(max_length=200)] = ""
    line2: Annotated[str, StringConstraints(max_length=200)] = ""
    city: Annotated[str, StringConstraints(max_length=100)] = ""
    state: Annotated[str, StringConstraints(max_length=100)] = ""
    postal_code: Annotated[str, StringConstraints(max_length=20)] = ""
    country: Annotated[str, StringConstraints(max_length=2)] = ""


Metadata = dict[Annotated[str, StringConstraints(max_length=40)], Annotated[str, StringConstraints(max_length=500)]]


class CustomerPatch(Body):
    """Only the fields sent change ("" clears one). A Billing Clerk may change `email` and
    `address`; changing the others takes a Billing Manager or the Owner (refused field by field)."""

    # Absent fields are left alone; a field sent as null is refused (422), since "" clears it.
    name: Annotated[str, StringConstraints(max_length=256)] = Field(default=None)
    email: Annotated[str, StringConstraints(max_length=512)] = Field(default=None)
    phone: Annotated[str, StringConstraints(max_length=20)] = Field(default=None)
    description: Annotated[str, StringConstraints(max_length=350)] = Field(default=None)
    address: AddressIn = Field(default=None)
    metadata: Metadata = Field(
        default=None, max_length=50, description='Keys to set; "" removes a key; keys not named are kept.'
    )

    def changes(self) -> dict[str, object]:
        return self.model_dump(exclude_unset=True)


# --- subscriptions ------------------------------------------------------------------------------

Quantity = Annotated[int, Field(ge=1, le=10_000)]


class SubscriptionChangePreview(Body):
    price_id: PriceId
    quantity: Quantity = 1


class SubscriptionChange(Body):
    price_id: PriceId
    quantity: Quantity = 1
    proration_date: int = Field(ge=0, le=2**40, description="The `proration_date` of the preview the change follows.")


class SubscriptionPause(Body):
    behavior: Literal["keep_as_draft", "mark_uncollectible", "void"] = Field(
        description="What happens to the invoices renewals make while paused."
    )
    resumes_at: int | None = Field(default=None, ge=0, le=2**40, description="Unix time; null: resume by hand.")


class SubscriptionCancel(Body):
    at_period_end: bool = Field(description="True: at the end of the period paid for (reversible); false: now.")


# --- invoices -----------------------------------------------------------------------------------


class PriceLine(Body):
    price_id: PriceId
    quantity: Quantity = 1


class CustomLine(Body):
    description: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    amount: MinorUnits
    currency: Currency


class InvoiceCreate(Body):
    customer_id: CustomerId
    lines: list[PriceLine | CustomLine] = Field(min_length=1, max_length=10)
    due_date: AwareDatetime = Field(description="When it is due (with a time zone); within a year.")
    memo: Annotated[str, StringConstraints(max_length=500)] = ""


class Reminders(Body):
    invoice_ids: list[InvoiceId] = Field(min_length=1, max_length=200)
