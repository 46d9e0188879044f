"""Filtering lists by a customer prefix gives the same pages whether few or many customers
match (many switch SQLite to walking the list's own order), on SQLite and PostgreSQL."""

from __future__ import annotations

import time

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


def test_many_and_few_matching_customers_page_the_same_way(any_store, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    """Three bands: every list walks ("marl"), charges walk but customers are gathered
    ("kel"), everything is gathered ("zed"). Each gives every matching row once, in order."""
    many, middle, few = search.WALK_FROM_CUSTOMERS + 40, reports.CHARGES_WALK_FROM + 40, 30
    _store(many, "marlow", 1_700_000_000)
    _store(middle, "kelso", 1_700_300_000)
    _store(few, "zed", 1_700_500_000)
    _store(50, "other", 1_700_900_000)
    _store(20, "amarlow", 1_701_000_000)  # "marl" inside a word: not a match
    _store(20, "marled", 1_701_100_000, deleted=True)  # would match, but deleted in Stripe
    if any_store.kind == "sqlite":  # the bands really are the three plans
        assert search._sqlite_match_estimate("marl", search.WALK_FROM_CUSTOMERS) >= search.WALK_FROM_CUSTOMERS
        assert reports.CHARGES_WALK_FROM <= search._sqlite_match_estimate("kel", 10_000) < search.WALK_FROM_CUSTOMERS
        assert search._sqlite_match_estimate("zed", 10_000) < reports.CHARGES_WALK_FROM
    for needle, prefix, count in (("marl", "marlow", many), ("kel", "kelso", middle), ("zed", "zed", few)):
        charges = _all_pages(
            lambda c, n=needle: reports.search_charges(any_store_owner, ChargeFilters(customer=n), cursor=c, limit=25)
        )
        expected = [f"ch_{prefix}{i:04d}" for i in reversed(range(count))]  # newest first
        assert charges == expected, needle
        customers = _all_pages(lambda c, n=needle: billing.search_customers(any_store_owner, n, c, 25))
        assert customers == [f"cus_{prefix}{i:04d}" for i in reversed(range(count))], needle
