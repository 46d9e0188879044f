"""One descriptor per mirrored Stripe resource: the single registry the mirror, sync, the
gateway and event handling read (DESIGN, Sync).

A new resource is a descriptor here, a model (services/models.py) and a migration; the mirror
writes it, the backfill lists it, events and refetches retrieve it, and the wizard names the
permission it needs, all from this one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import SQLModel

from services import stripe_rows as rows
from services.models import (
    StripeCharge,
    StripeCustomer,
    StripeDispute,
    StripeInvoice,
    StripeInvoiceLine,
    StripePaymentIntent,
    StripePaymentMethod,
    StripePrice,
    StripeProduct,
    StripeRefund,
    StripeSubscription,
    StripeSubscriptionItem,
)


@dataclass(frozen=True)
class StripeResource:
    object: str  # Stripe's `object` field; also the mirror kind and the notice kind
    collection: str  # the API collection (`/v1/<collection>`, StripeClient.v1.<collection>)
    model: type[SQLModel]
    to_row: Callable[[dict[str, Any]], dict[str, Any]]
    # The restricted-key permission that lists it; None: not listed by the backfill (an alias).
    permission: str | None = None
    unlocks: str = ""  # what a person sees once the key may read it
    required: bool = True  # one of the docs' six permissions, or a recommended extra
    list_params: dict[str, Any] = field(default_factory=dict)
    # Listed inside another collection's pages rather than on its own: Stripe lists payment methods
    # only per customer (one request each), but a customer page can carry its saved cards expanded.
    embedded_in: str | None = None
    child_model: type[SQLModel] | None = None
    child_rows: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None
    child_parent_column: str = ""
    # Objects of other kinds an object carries in full (expanded), written with it in one go.
    embedded: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None
    # Ids of payment methods an object names that the store should hold: an event naming one the
    # store lacks makes Billy fetch it (services/sync.py `fetch_named_cards`).
    names_cards: Callable[[dict[str, Any]], list[str]] | None = None

    @property
    def listed(self) -> bool:
        return self.permission is not None


# The customer list carries each customer's saved cards, so card numbers' last four digits are
# searchable from the first sync without a request per customer (Stripe's expansions, docs:
# api/expanding_objects; at most four levels deep).
CUSTOMER_CARD_EXPANSIONS = ("data.invoice_settings.default_payment_method", "data.default_source", "data.sources")

ALL: tuple[StripeResource, ...] = (
    StripeResource(
        "customer",
        "customers",
        StripeCustomer,
        rows.customer_row,
        "rak_customer_read",
        "customers and their details",
        list_params={"expand": list(CUSTOMER_CARD_EXPANSIONS)},
        embedded=rows.customer_cards,
        names_cards=rows.customer_card_ids,
    ),
    StripeResource(
        "charge", "charges", StripeCharge, rows.charge_row, "rak_charge_read", "payments and failed payments"
    ),
    StripeResource("refund", "refunds", StripeRefund, rows.refund_row, "rak_refund_read", "refunds"),
    StripeResource(
        "subscription",
        "subscriptions",
        StripeSubscription,
        rows.subscription_row,
        "rak_subscription_read",
        "subscriptions and MRR",
        list_params={"status": "all"},
        child_model=StripeSubscriptionItem,
        child_rows=rows.item_rows,
        child_parent_column="subscription_id",
    ),
    StripeResource(
        "invoice",
        "invoices",
        StripeInvoice,
        rows.invoice_row,
        "rak_invoice_read",
        "invoices, open and overdue",
        child_model=StripeInvoiceLine,
        child_rows=rows.line_rows,
        child_parent_column="invoice_id",
    ),
    StripeResource(
        "payment_method",
        "payment_methods",
        StripePaymentMethod,
        rows.payment_method_row,
        "rak_payment_method_read",
        "saved cards",
        embedded_in="customers",
    ),
    StripeResource(
        "payment_intent",
        "payment_intents",
        StripePaymentIntent,
        rows.payment_intent_row,
        "rak_payment_intent_read",
        "payment attempts",
        required=False,
    ),
    StripeResource(
        "product", "products", StripeProduct, rows.product_row, "rak_product_read", "product names", required=False
    ),
    StripeResource(
        "price",
        "prices",
        StripePrice,
        rows.price_row,
        "rak_plan_read",
        "prices and billing intervals",
        required=False,
    ),
    StripeResource("plan", "plans", StripePrice, rows.price_row),  # legacy Plans are prices to Billy
    # A card saved as a source (customer.source.* events, a customer's `sources`): a payment method to
    # Billy, retrieved through /v1/payment_methods/card_… as Stripe allows.
    StripeResource("card", "payment_methods", StripePaymentMethod, rows.payment_method_row),
    StripeResource(
        "dispute",
        "disputes",
        StripeDispute,
        rows.dispute_row,
        "rak_dispute_read",
        "disputes and chargebacks",
        required=False,
    ),
)

BY_OBJECT: dict[str, StripeResource] = {r.object: r for r in ALL}
# What the backfill lists, by collection, in the order above.
LISTED: dict[str, StripeResource] = {r.collection: r for r in ALL if r.listed}
