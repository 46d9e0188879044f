"""Filtering lists by a customer prefix gives the same pages whether few or many customers
match (many switch to walking the list's own order), on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from services import billing, mirror, reports, search
from services.db import session_scope
from services.reports import ChargeFilters


def _store(count: int, name: str, start: int, deleted: bool = False) -> None:
    """`count` customers matching `name` each a different way (the name's first word, a later
    word of it, the email), one charge each; `deleted`: all of them deleted in Stripe."""
    now = int(time.time())
    forms = (
        lambda i: {"name": f"{name.title()} Person{i}", "email": f"p{i}@example.com"},
        lambda i: {"name": f"Ann {name.upper()}{i}", "email": f"ann{i}@example.com"},
        lambda i: {"name": f"Person {i}", "email": f"{name}.{i}@example.com"},
    )
    customers = [
        {"id": f"cus_{name}{i:04d}", "object": "customer", "created": start + i, "deleted": deleted, **forms[i % 3](i)}
        for i in range(count)
    ]
    charges = [
        {
            "id": f"ch_{name}{i:04d}",
            "object": "charge",
            "amount": 100 + i,
            "currency": "usd",
            "status": "succeeded",
            "paid": True,
            "customer": f"cus_{name}{i:04d}",
            "created": start + 2 * i,
        }
        for i in range(count)
    ]
    with session_scope() as s:
        mirror.write_objects(s, "customer", customers, now)
        mirror.write_objects(s, "charge", charges, now)


def _all_pages(fetch) -> list[str]:  # type: ignore[no-untyped-def]
    ids, cursor = [], None
    while True:
        page = fetch(cursor)
        ids += [r.id for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids


@pytest.mark.parametrize("walk", ["by key", "hashed"])
def test_many_and_few_matching_customers_page_the_same_way(  # type: ignore[no-untyped-def]
    any_store, any_store_owner, walk: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many matching customers ("marl", "kel") walk each list's own order, testing each row's
    customer by key or against the matches hashed once; few ("zed") are gathered. Each plan
    gives every matching row once, in order, on both stores."""
    monkeypatch.setattr(search, "HASHED_WALK_FACTOR", 0.0 if walk == "by key" else 1e6)
    many, middle, few = 300, 120, 10
    _store(many, "marlow", 1_700_000_000)
    _store(middle, "kelso", 1_700_300_000)
    _store(few, "zed", 1_700_500_000)
    _store(50, "other", 1_700_900_000)
    _store(20, "amarlow", 1_701_000_000)  # "marl" inside a word: not a match
    _store(20, "marled", 1_701_100_000, deleted=True)  # would match, but deleted in Stripe
    if any_store.kind == "postgresql":
        with session_scope() as s:
            s.execute(sa.text("ANALYZE stripe_customer, stripe_charge"))  # the planner's counts size the bands
    search.forget_estimates()
    # The bands really are the plans (about 520 customers and charges: gathered below 51 matches).
    for table in ("stripe_charge", "stripe_customer"):
        assert search.walk_plan("marl", table) == walk
        assert search.walk_plan("kel", table) == walk
        assert search.walk_plan("zed", table) == "gather"
    for needle, prefix, count in (("marl", "marlow", many), ("kel", "kelso", middle), ("zed", "zed", few)):
        charges = _all_pages(
            lambda c, n=needle: reports.search_charges(any_store_owner, ChargeFilters(customer=n), cursor=c, limit=25)
        )
        expected = [f"ch_{prefix}{i:04d}" for i in reversed(range(count))]  # newest first
        assert charges == expected, needle
        customers = _all_pages(lambda c, n=needle: billing.search_customers(any_store_owner, n, c, 25))
        assert customers == [f"cus_{prefix}{i:04d}" for i in reversed(range(count))], needle


def test_the_filter_follows_a_customer_renamed_readdressed_or_deleted_in_stripe(  # type: ignore[no-untyped-def]
    any_store, any_store_owner
) -> None:
    """What a prefix finds is kept beside the customers by triggers (the prefix table): a change
    in Stripe moves it, a deletion removes it."""
    seen = [int(time.time())]

    def store(**fields: object) -> None:
        seen[0] += 1  # each copy read from Stripe after the one before
        customer = {"id": "cus_lee", "object": "customer", "created": 1_700_000_000, **fields}
        charge = {"id": "ch_lee", "object": "charge", "amount": 500, "currency": "usd", "customer": "cus_lee",
                  "created": 1_700_000_001}  # fmt: skip
        with session_scope() as s:
            mirror.write_objects(s, "customer", [customer], seen[0])
            mirror.write_objects(s, "charge", [charge], seen[0])

    def found(needle: str) -> list[str]:
        reports.shared_pages.forget()  # each question read afresh, as after a store change
        charges = [r.id for r in reports.search_charges(any_store_owner, ChargeFilters(customer=needle)).items]
        customers = [r.id for r in billing.search_customers(any_store_owner, needle).items]
        return charges + customers

    store(name="Ann Marie Lee", email="ann@shop.example")
    assert found("lee") == found("marie l") == found("ann@") == ["ch_lee", "cus_lee"]
    store(name="Ann Park", email="a.park@shop.example")
    assert (found("lee"), found("ann@"), found("marie")) == ([], [], [])
    assert found("park") == found("a.pa") == found("ann park") == ["ch_lee", "cus_lee"]
    store(name="Ann Park", email="a.park@shop.example", deleted=True)
    assert found("park") == []
