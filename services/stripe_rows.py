"""How each Stripe object becomes a store row: plain functions from Stripe's JSON to columns.

Parsed tolerantly (DESIGN, Sync): a missing field is a None, never a crash, because the
sandbox and older API versions answer in older shapes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from services.models import utcnow

_ORDER = re.compile(r"order\s*(?:number|no\.?)?\s*#?\s*([A-Za-z0-9-]{2,32})", re.IGNORECASE)


def _id(value: Any) -> str | None:
    """Stripe references are ids, or whole objects when expanded."""
    if isinstance(value, dict):
        return value.get("id")
    return value


def _lower(value: str | None) -> str | None:
    return value.lower() if value else None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _base(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": obj["id"],
        "created": int(obj.get("created") or 0),
        "livemode": bool(obj.get("livemode")),
        "deleted": bool(obj.get("deleted")),
        "raw": obj,
        "synced_at": utcnow(),
    }


def customer_row(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        **_base(obj),
        "email": obj.get("email"),
        "name": obj.get("name"),
        "email_lower": _lower(obj.get("email")),
        "name_lower": _lower(obj.get("name")),
        "phone": obj.get("phone"),
    }


def order_number_of(obj: dict[str, Any]) -> str | None:
    metadata = obj.get("metadata") or {}
    for key in ("order_number", "order_id", "order"):
        if metadata.get(key):
            return str(metadata[key]).lstrip("#")[:64]
    match = _ORDER.search(obj.get("description") or "")
    return match.group(1) if match else None


def _card(obj: dict[str, Any]) -> dict[str, Any]:
    details = (obj.get("payment_method_details") or {}).get("card")
    if details:
        return details
    source = obj.get("source") or {}
    return source if source.get("object") == "card" or "last4" in source else {}


def decline_reason_of(obj: dict[str, Any]) -> str | None:
    if obj.get("status") != "failed":
        return None
    outcome = obj.get("outcome") or {}
    return outcome.get("reason") or obj.get("failure_code")


def charge_row(obj: dict[str, Any]) -> dict[str, Any]:
    card = _card(obj)
    return {
        **_base(obj),
        "customer_id": _id(obj.get("customer")),
        "amount": int(obj.get("amount") or 0),
        "amount_refunded": int(obj.get("amount_refunded") or 0),
        "currency": (obj.get("currency") or "usd").lower(),
        "status": obj.get("status") or "unknown",
        "paid": bool(obj.get("paid")),
        "refunded": bool(obj.get("refunded")),
        "failure_code": obj.get("failure_code"),
        "failure_message": obj.get("failure_message"),
        "outcome_type": (obj.get("outcome") or {}).get("type"),
        "decline_reason": decline_reason_of(obj),
        "description": obj.get("description"),
        "order_number": order_number_of(obj),
        "card_brand": card.get("brand"),
        "card_last4": card.get("last4"),
        "payment_intent_id": _id(obj.get("payment_intent")),
    }


def refund_row(obj: dict[str, Any]) -> dict[str, Any]:
    row = _base(obj)
    row.pop("livemode")
    return {
        **row,
        "charge_id": _id(obj.get("charge")),
        "amount": int(obj.get("amount") or 0),
        "currency": (obj.get("currency") or "usd").lower(),
        "status": obj.get("status"),
        "reason": obj.get("reason"),
    }


def payment_intent_row(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        **_base(obj),
        "customer_id": _id(obj.get("customer")),
        "amount": int(obj.get("amount") or 0),
        "currency": (obj.get("currency") or "usd").lower(),
        "status": obj.get("status") or "unknown",
        "latest_charge_id": _id(obj.get("latest_charge")),
        "last_error_code": (obj.get("last_payment_error") or {}).get("code"),
        "description": obj.get("description"),
    }


# A card saved as a source (the older Sources API) spells its brand for display ("MasterCard",
# "American Express"); PaymentMethods use Stripe's codes ("mastercard", "amex").
_SOURCE_BRANDS = {"american express": "amex", "diners club": "diners", "eftpos australia": "eftpos_au"}


def _brand_code(brand: str | None) -> str | None:
    if not brand:
        return None
    spelled = brand.strip().lower()
    return _SOURCE_BRANDS.get(spelled, spelled.replace(" ", ""))


def payment_method_row(obj: dict[str, Any]) -> dict[str, Any]:
    """A PaymentMethod, or a card saved as a source (`object: card`, its fields at the top), which
    Stripe lists among a customer's payment methods too."""
    card = obj if obj.get("object") == "card" else obj.get("card") or {}
    return {
        **_base(obj),
        "customer_id": _id(obj.get("customer")),
        "type": "card" if obj.get("object") == "card" else obj.get("type") or "card",
        "card_brand": _brand_code(card.get("brand")),
        "card_last4": card.get("last4"),
        "exp_month": _int(card.get("exp_month")),
        "exp_year": _int(card.get("exp_year")),
    }


SAVED_CARD_OBJECTS = frozenset({"payment_method", "card"})


def customer_cards(customer: dict[str, Any]) -> list[dict[str, Any]]:
    """The saved cards a customer object carries in full: its default payment method and default
    source when expanded, and its sources when included (`expand[]=data.…` on the customer list:
    services/resources.py). Ids alone are left out: they say nothing searchable."""
    if customer.get("deleted"):
        return []
    settings = customer.get("invoice_settings") or {}
    sources = (customer.get("sources") or {}).get("data") or []
    found: dict[str, dict[str, Any]] = {}
    for candidate in (settings.get("default_payment_method"), customer.get("default_source"), *sources):
        if isinstance(candidate, dict) and candidate.get("id") and candidate.get("object") in SAVED_CARD_OBJECTS:
            found[candidate["id"]] = candidate
    return list(found.values())


def customer_card_ids(customer: dict[str, Any]) -> list[str]:
    """The ids of the payment method and source a customer names as its defaults."""
    settings = customer.get("invoice_settings") or {}
    named = (_id(settings.get("default_payment_method")), _id(customer.get("default_source")))
    return [card_id for card_id in named if isinstance(card_id, str) and card_id.startswith(("pm_", "card_"))]


def product_row(obj: dict[str, Any]) -> dict[str, Any]:
    return {**_base(obj), "name": obj.get("name") or "", "active": bool(obj.get("active", True))}


def _recurring(obj: dict[str, Any]) -> tuple[str | None, int | None]:
    recurring = obj.get("recurring") or {}
    if not recurring and obj.get("interval"):  # a legacy Plan
        return obj.get("interval"), _int(obj.get("interval_count")) or 1
    return recurring.get("interval"), _int(recurring.get("interval_count")) or (1 if recurring else None)


def price_row(obj: dict[str, Any]) -> dict[str, Any]:
    interval, count = _recurring(obj)
    unit = obj.get("unit_amount", obj.get("amount"))
    return {
        **_base(obj),
        "product_id": _id(obj.get("product")),
        "nickname": obj.get("nickname"),
        "unit_amount": _int(unit),
        "currency": (obj.get("currency") or "usd").lower(),
        "recurring_interval": interval,
        "recurring_interval_count": count,
        "active": bool(obj.get("active", True)),
    }


# How many months one billing interval lasts, for MRR: a yearly price brings in a twelfth each month.
_MONTHS = {"day": 12 / 365, "week": 12 / 52, "month": 1, "year": 12}
MRR_STATUSES = frozenset({"active", "past_due"})


def item_rows(subscription: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for item in (subscription.get("items") or {}).get("data") or []:
        price = item.get("price") or item.get("plan") or {}
        interval, count = _recurring(price)
        rows.append(
            {
                "id": item["id"],
                "subscription_id": subscription["id"],
                "price_id": _id(price) if price else None,
                "product_id": _id(price.get("product")) if price else None,
                "quantity": int(item.get("quantity") or 1),
                "unit_amount": _int(price.get("unit_amount", price.get("amount"))),
                "currency": (price.get("currency") or subscription.get("currency") or "usd").lower(),
                "recurring_interval": interval,
                "recurring_interval_count": count,
                "raw": item,
            }
        )
    return rows


def monthly_amount(items: Iterable[dict[str, Any]]) -> int:
    """What the items bring in per month, in minor units (rounded to the nearest unit)."""
    total = 0.0
    for item in items:
        if item["unit_amount"] is None or item["recurring_interval"] not in _MONTHS:
            continue
        months = _MONTHS[item["recurring_interval"]] * (item["recurring_interval_count"] or 1)
        total += item["unit_amount"] * item["quantity"] / months
    return round(total)


def _period_end(obj: dict[str, Any]) -> int | None:
    """Newer API versions keep the period on each item; older ones on the subscription."""
    if obj.get("current_period_end"):
        return int(obj["current_period_end"])
    ends = [i.get("current_period_end") for i in (obj.get("items") or {}).get("data") or []]
    ends = [int(e) for e in ends if e]
    return min(ends) if ends else None


def subscription_row(obj: dict[str, Any]) -> dict[str, Any]:
    items = item_rows(obj)
    currency = (obj.get("currency") or (items[0]["currency"] if items else "usd")).lower()
    return {
        **_base(obj),
        "customer_id": _id(obj.get("customer")),
        "status": obj.get("status") or "unknown",
        "currency": currency,
        "mrr": monthly_amount(items),
        "cancel_at_period_end": bool(obj.get("cancel_at_period_end")),
        "current_period_end": _period_end(obj),
        "canceled_at": _int(obj.get("canceled_at")),
    }


def invoice_row(obj: dict[str, Any]) -> dict[str, Any]:
    subscription = obj.get("subscription") or ((obj.get("parent") or {}).get("subscription_details") or {}).get(
        "subscription"
    )
    return {
        **_base(obj),
        "customer_id": _id(obj.get("customer")),
        "subscription_id": _id(subscription),
        "number": obj.get("number"),
        "status": obj.get("status"),
        "collection_method": obj.get("collection_method"),
        "currency": (obj.get("currency") or "usd").lower(),
        "total": int(obj.get("total") or 0),
        "amount_due": int(obj.get("amount_due") or 0),
        "amount_paid": int(obj.get("amount_paid") or 0),
        "amount_remaining": int(obj.get("amount_remaining") or 0),
        "due_date": _int(obj.get("due_date")),
        "customer_email": obj.get("customer_email"),
    }


def _line_price_id(line: dict[str, Any]) -> str | None:
    """Older API versions put the price on the line; newer ones under pricing.price_details."""
    if line.get("price"):
        return _id(line["price"])
    return _id(((line.get("pricing") or {}).get("price_details") or {}).get("price"))


def line_rows(invoice: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for line in (invoice.get("lines") or {}).get("data") or []:
        rows.append(
            {
                "invoice_id": invoice["id"],
                "id": line["id"],
                "amount": int(line.get("amount") or 0),
                "currency": (line.get("currency") or invoice.get("currency") or "usd").lower(),
                "description": line.get("description"),
                "price_id": _line_price_id(line),
                "quantity": _int(line.get("quantity")),
                "raw": line,
            }
        )
    return rows


def dispute_row(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        **_base(obj),
        "charge_id": _id(obj.get("charge")),
        "amount": int(obj.get("amount") or 0),
        "currency": (obj.get("currency") or "usd").lower(),
        "status": obj.get("status"),
        "reason": obj.get("reason"),
    }
