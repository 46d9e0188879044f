"""Customers: search by cursor, one customer with what Billy knows of them, and changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from billy_app.api.v1.calls import CurrentActor, WriteRequest
from billy_app.api.v1.errors import READ_ERRORS, WRITE_ERRORS
from billy_app.api.v1.models import CURSOR_MAX, ID_PATTERNS, PLAIN_TEXT, CustomerPatch, Page, page
from services import billing, customer_overview, customers
from services.billing import CustomerRow
from services.customer_overview import InvoiceLine, PaymentMethodLine, SpendLine, SubscriptionLine
from services.customers import CustomerUpdate, CustomerView

router = APIRouter(prefix="/customers", tags=["customers"])
CustomerPath = Annotated[str, Path(pattern=ID_PATTERNS["customer"], description="A Stripe customer id (cus_…).")]


@dataclass(frozen=True)
class CustomerDetail:
    """A customer's editable details, what the caller may change, and their billing at a glance."""

    customer: CustomerView
    editable_fields: list[str]
    lifetime: list[SpendLine]
    payment_methods: list[PaymentMethodLine]
    subscriptions: list[SubscriptionLine]
    invoices: list[InvoiceLine]


@router.get("", response_model=Page[CustomerRow], responses=READ_ERRORS, summary="Search customers")
def list_customers(
    actor: CurrentActor,
    q: Annotated[
        str, Query(max_length=200, pattern=PLAIN_TEXT, description="The start of an email or name (any word).")
    ] = "",
    cursor: Annotated[str | None, Query(max_length=CURSOR_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=billing.MAX_PAGE_SIZE)] = billing.PAGE_SIZE,
) -> Page[CustomerRow]:
    found = billing.search_customers(actor, q, cursor, limit)
    return page(found.items, found.next_cursor, found.total or billing.count_customers(actor, q))


@router.get("/{customer_id}", response_model=CustomerDetail, responses=READ_ERRORS, summary="Get a customer")
def get_customer(actor: CurrentActor, customer_id: CustomerPath) -> CustomerDetail:
    view = customers.get_customer_view(actor, customer_id)
    overview = customer_overview.customer_overview(actor, customer_id)
    return CustomerDetail(
        customer=view,
        editable_fields=sorted(customers.editable_customer_fields(actor)),
        lifetime=overview.lifetime,
        payment_methods=overview.payment_methods,
        subscriptions=overview.subscriptions,
        invoices=overview.invoices,
    )


@router.patch("/{customer_id}", response_model=CustomerUpdate, responses=WRITE_ERRORS, summary="Change a customer")
def update_customer(write: WriteRequest, customer_id: CustomerPath, body: CustomerPatch) -> JSONResponse:
    return write.run(body, lambda key: customers.update_customer(write.actor, customer_id, body.changes(), key))
