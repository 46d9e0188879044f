"""The sandbox's export (sandbox/exports.py) gives every object the JSON localstripe gives it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import stripe
from localstripe.errors import UserError
from localstripe.resources import Customer, StripeObject, store

from sandbox import SandboxHandle
from sandbox.exports import LOCALSTRIPE_EXPORT, export
from sandbox.seed import seed
from services.resources import CUSTOMER_CARD_EXPANSIONS
from tests.sandbox.helpers import charge as make_charge

CARD_EXPANSIONS = [path.removeprefix("data.") for path in CUSTOMER_CARD_EXPANSIONS]


@contextmanager
def localstripes_own_export() -> Iterator[None]:
    StripeObject._export = LOCALSTRIPE_EXPORT  # type: ignore[method-assign]
    try:
        yield
    finally:
        StripeObject._export = export  # type: ignore[method-assign]


def localstripe_json(obj: Any, expand: list[str] | None = None) -> dict[str, Any]:
    """What localstripe itself makes of `obj` (nested objects too), with the sandbox's one rule
    for customers: `subscriptions` only when expanded."""
    with localstripes_own_export():
        if isinstance(obj, Customer):
            data: dict[str, Any] = LOCALSTRIPE_EXPORT(obj, expand)
            if "subscriptions" not in (expand or []):
                data.pop("subscriptions", None)
            return data
        return obj._export(expand=expand)


def test_every_object_exports_as_localstripe_exports_it(sandbox: SandboxHandle) -> None:
    seed(sandbox.url, seed=3, customers=8)
    objects = [obj for obj in store.values() if isinstance(obj, StripeObject)]
    kinds = {obj.object for obj in objects}
    assert {"customer", "charge", "refund", "card", "subscription", "invoice", "price", "product"} <= kinds
    for obj in objects:
        ours = obj._export()
        assert ours == localstripe_json(obj), obj.id
        assert list(ours) == list(localstripe_json(obj)), obj.id  # the same keys in the same order
    customers = [obj for obj in objects if isinstance(obj, Customer)]
    for customer in customers:
        assert customer._export(expand=CARD_EXPANSIONS) == localstripe_json(customer, CARD_EXPANSIONS)
        expanded = customer._export(expand=["subscriptions"])
        assert expanded == localstripe_json(customer, ["subscriptions"])
        assert "subscriptions" in expanded and "subscriptions" not in customer._export()
    charge = next(obj for obj in objects if obj.object == "charge" and obj.customer)
    assert charge._export(expand=["customer"])["customer"]["id"] == charge.customer


@pytest.mark.parametrize(
    ("expand", "message"),
    [
        (["a.b.c.d.e"], "You cannot expand more than 4 levels of a property"),
        (["no_such_field"], "Bad expand 'no_such_field'"),
        ("customer", "Bad request"),
    ],
)
def test_a_bad_expansion_is_refused_as_localstripe_refuses_it(
    client: stripe.StripeClient, customer: Any, expand: Any, message: str
) -> None:
    charge = store[f"charge:{make_charge(client, customer.id).id}"]
    with pytest.raises(UserError) as ours:
        charge._export(expand=expand)
    with localstripes_own_export(), pytest.raises(UserError) as theirs:
        charge._export(expand=expand)
    assert ours.value.code == theirs.value.code == 400
    assert ours.value.body["error"]["message"] == theirs.value.body["error"]["message"] == message
