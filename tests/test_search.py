"""The global search, on SQLite and PostgreSQL: each rule, the trigram index behind the
contains-search, changes and deletions reflected, hostile input, and who may search."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from services import billing, db, mirror, reports, search
from services.db import session_scope
from services.errors import PermissionDenied, ValidationFailed
from services.models import (
    StripeCharge,
    StripeCustomer,
    StripeInvoice,
    StripePaymentMethod,
    StripeRefund,
    StripeSubscription,
)
from services.permissions import Actor, Source
from services.search import global_search
from tests.conftest import member_actor

T = 1_770_000_000
DAY = 86_400


def add(*rows: Any) -> None:
    with session_scope() as session:
        session.add_all(rows)


def customer(cid: str, name: str, email: str, *, created: int = T, deleted: bool = False) -> StripeCustomer:
    return StripeCustomer(
        id=cid,
        name=name,
        email=email,
        name_lower=name.lower(),
        email_lower=email.lower(),
        created=created,
        deleted=deleted,
    )


def charge(
    cid: str, customer_id: str | None, *, description: str | None = None, created: int = T, **extra: Any
) -> StripeCharge:
    return StripeCharge(
        id=cid,
        customer_id=customer_id,
        amount=extra.pop("amount", 4599),
        currency="usd",
        status=extra.pop("status", "succeeded"),
        paid=True,
        description=description,
        created=created,
        **extra,
    )


@pytest.fixture
def data(any_store_owner: Actor) -> Actor:
    add(
        customer("cus_alice", "Alice Martin", "alice@example.com", created=T - 10 * DAY),
        customer("cus_bob", "Bob Stone", "bob.stone@acme.io", created=T - 9 * DAY),
        customer("cus_carol", "Carol Percy", "carol@percent.org", created=T - 8 * DAY),
        customer("cus_gone", "Alison Gone", "alison@example.com", created=T - 7 * DAY, deleted=True),
        customer("cus_wild", "Under_Score", "x_y@odd.net", created=T - 6 * DAY),
    )
    add(
        charge(
            "ch_alice1",
            "cus_alice",
            description="Blue widget, large",
            card_last4="4242",
            card_brand="visa",
            order_number="1234",
            payment_intent_id="pi_alice1",
            created=T - 5 * DAY,
        ),
        charge(
            "ch_alice2",
            "cus_alice",
            description="Order #5678: red gadget",
            card_last4="4242",
            order_number="5678",
            created=T - 4 * DAY,
        ),
        charge("ch_bob1", "cus_bob", description="Discount 100% off", card_last4="0005", created=T - 3 * DAY),
        charge("py_bob2", "cus_bob", description='Quote "a"b" test', created=T - 2 * DAY),
        charge(
            "ch_gone",
            "cus_alice",
            description="Blue widget, deleted",
            card_last4="4242",
            order_number="9999",
            created=T - 1 * DAY,
            deleted=True,
        ),
    )
    add(
        StripeRefund(id="re_bob1", charge_id="ch_bob1", amount=100, currency="usd", created=T - DAY),
        StripePaymentMethod(id="pm_carol", customer_id="cus_carol", card_last4="4242", created=T),
        StripePaymentMethod(id="pm_gone", customer_id="cus_bob", card_last4="4242", created=T, deleted=True),
        StripeInvoice(
            id="in_alice1", customer_id="cus_alice", number="ABCD-0001", status="open", total=1000, created=T - DAY
        ),
        StripeInvoice(
            id="in_gone",
            customer_id="cus_alice",
            number="ABCD-0002",
            status="open",
            total=1000,
            created=T - DAY,
            deleted=True,
        ),
        StripeSubscription(id="sub_bob", customer_id="cus_bob", status="active", mrr=2000, created=T - DAY),
    )
    return any_store_owner


def ids(hits: list[search.SearchHit]) -> list[str]:
    return [h.id for h in hits]


# --- the rules ----------------------------------------------------------------------------------


def test_ids_are_looked_up_exactly(data: Actor) -> None:
    r = global_search(data, "cus_alice")
    assert r.rule == "id" and ids(r.customers) == ["cus_alice"] and r.customers[0].matched == "Customer id"
    assert not r.charges and not r.invoices and not r.subscriptions
    assert ids(global_search(data, "ch_alice1").charges) == ["ch_alice1"]
    assert ids(global_search(data, "py_bob2").charges) == ["py_bob2"]
    assert ids(global_search(data, "pi_alice1").charges) == ["ch_alice1"]
    invoice = global_search(data, "in_alice1").invoices
    assert ids(invoice) == ["in_alice1"] and invoice[0].customer_id == "cus_alice"
    sub = global_search(data, "sub_bob").subscriptions
    assert ids(sub) == ["sub_bob"] and sub[0].customer_id == "cus_bob"
    refund = global_search(data, "re_bob1")
    assert ids(refund.charges) == ["ch_bob1"] and "re_bob1" in refund.charges[0].matched
    # Exact, never a prefix; deleted rows are not found by id either.
    assert global_search(data, "cus_ali").count == 0
    assert global_search(data, "cus_gone").count == 0
    assert global_search(data, "ch_gone").count == 0
    assert global_search(data, "in_gone").count == 0


def test_four_digits_are_card_last4(data: Actor) -> None:
    r = global_search(data, "4242")
    assert r.rule == "card_last4"
    assert ids(r.charges) == ["ch_alice2", "ch_alice1"]  # newest first, the deleted one left out
    assert all(h.matched == "Card ending 4242" and h.customer_id == "cus_alice" for h in r.charges)
    # Customers with a saved card ending so (a deleted payment method does not count).
    assert ids(r.customers) == ["cus_carol"] and r.customers[0].matched == "Saved card ending 4242"
    assert global_search(data, "0005").charges[0].id == "ch_bob1"
    assert global_search(data, "1111").count == 0


def test_order_numbers_exactly(data: Actor) -> None:
    for q in ("#1234", "# 1234", "order 1234", "Order #1234", "order number 1234"):
        r = global_search(data, q)
        assert (r.rule, ids(r.charges)) == ("order_number", ["ch_alice1"]), q
        assert r.charges[0].matched == "Order number 1234"
    assert global_search(data, "#123").count == 0  # exact, not a prefix
    assert global_search(data, "#9999").count == 0  # deleted


def test_invoice_numbers_exactly_in_any_case(data: Actor) -> None:
    for q in ("ABCD-0001", "abcd-0001"):
        r = global_search(data, q)
        assert ids(r.invoices) == ["in_alice1"] and r.invoices[0].matched == "Invoice number"
    assert global_search(data, "ABCD-0002").invoices == []  # deleted
    assert global_search(data, "ABCD-000").invoices == []  # not a prefix


def test_text_finds_prefixes_first_then_contains(data: Actor) -> None:
    r = global_search(data, "ali")
    assert r.rule == "text"
    assert ids(r.customers) == ["cus_alice"]  # alison is deleted
    assert r.customers[0].matched == "Email starts with “ali”"
    r = global_search(data, "martin")
    assert ids(r.customers) == ["cus_alice"] and r.customers[0].matched == "Name contains “martin”"
    r = global_search(data, "STONE@ac")
    assert ids(r.customers) == ["cus_bob"] and r.customers[0].matched == "Email contains “stone@ac”"
    # Prefix matches are listed before contains matches.
    add(customer("cus_zed", "Zed", "zed@carolina.com", created=T))
    r = global_search(data, "carol")
    assert ids(r.customers) == ["cus_carol", "cus_zed"]
    assert [h.matched.split()[1] for h in r.customers] == ["starts", "contains"]


def test_text_finds_charge_descriptions_any_case(data: Actor) -> None:
    r = global_search(data, "WIDGET")
    assert ids(r.charges) == ["ch_alice1"]  # the deleted charge is not shown
    assert r.charges[0].matched == "Description contains “WIDGET”" and r.charges[0].customer_id == "cus_alice"
    assert "Alice Martin" in r.charges[0].detail
    assert ids(global_search(data, "red gadg").charges) == ["ch_alice2"]


def test_each_group_is_limited_and_says_there_is_more(data: Actor) -> None:
    add(*[customer(f"cus_many{i:02d}", f"Many {i}", f"many{i}@bulk.example", created=T + i) for i in range(12)])
    r = global_search(data, "bulk.ex", limit=5)
    assert len(r.customers) == 5 and "customers" in r.more
    assert ids(r.customers) == [f"cus_many{i:02d}" for i in (11, 10, 9, 8, 7)]  # newest first
    assert "customers" not in global_search(data, "bulk.ex", limit=20).more
    with pytest.raises(ValidationFailed):
        global_search(data, "bulk", limit=0)
    with pytest.raises(ValidationFailed):
        global_search(data, "bulk", limit=51)


# --- the index ----------------------------------------------------------------------------------


def test_contains_search_uses_the_trigram_index(data: Actor) -> None:
    engine = db.get_engine()
    dialect = engine.dialect.name
    with engine.connect() as conn:
        if dialect == "sqlite":
            for stmt, fts in (
                (search.customers_containing_stmt(dialect, "martin", 10), "stripe_customer_search"),
                (search.charges_containing_stmt(dialect, "widget", 10), "stripe_charge_search"),
            ):
                compiled = stmt.compile(engine)
                plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", tuple(compiled.params.values())).all()
                text = " | ".join(str(row[-1]) for row in plan)
                assert "VIRTUAL TABLE INDEX" in text and fts in sa.text(str(compiled)).text, text
                assert "SCAN stripe_customer " not in text and "SCAN stripe_charge " not in text, text
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")
            for sql, index in (
                ("SELECT id FROM stripe_customer WHERE email_lower LIKE '%%mart%%'", "ix_stripe_customer_email_trgm"),
                ("SELECT id FROM stripe_customer WHERE name_lower LIKE '%%mart%%'", "ix_stripe_customer_name_trgm"),
                (
                    "SELECT id FROM stripe_charge WHERE description ILIKE '%%widg%%'",
                    "ix_stripe_charge_description_trgm",
                ),
            ):
                plan = " | ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}"))
                assert index in plan, plan
            # The search's own statement can be answered from the index too.
            stmt = search.customers_containing_stmt(dialect, "mart", 10).order_by(None)
            sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True})).replace("%", "%%")
            plan = " | ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}"))
            assert "_trgm" in plan, plan


def test_search_objects_exist_and_only_they_are_skipped_by_the_comparison(data: Actor) -> None:
    inspector = sa.inspect(db.get_engine())
    prefix_index = "ix_stripe_customer_prefix_customer"
    if db.get_engine().dialect.name == "sqlite":
        tables = {*search.FTS_TABLES, search.CUSTOMER_PREFIX_TABLE, search.PREFIX_POSITION_TABLE}
        assert tables <= set(inspector.get_table_names())
        assert prefix_index in {i["name"] for i in inspector.get_indexes(search.CUSTOMER_PREFIX_TABLE)}
    else:
        names = {i["name"] for t in ("stripe_customer", "stripe_charge") for i in inspector.get_indexes(t)}
        assert names >= search.SEARCH_INDEXES - {prefix_index}
        assert search.CUSTOMER_PREFIX_TABLE in inspector.get_table_names()
        # A walk of the customers tests `deleted` from the index alone (migration 0025).
        walk = next(i for i in inspector.get_indexes("stripe_customer") if i["name"] == "ix_stripe_customer_created_id")
        assert walk["dialect_options"].get("postgresql_include") == ["deleted"]
    owners = {i["name"]: i["column_names"] for i in inspector.get_indexes("stripe_payment_method")}
    assert owners["ix_stripe_payment_method_card_owner"] == ["card_last4", "customer_id", "deleted"]
    assert search.is_search_object("stripe_charge_search_data", "table")
    assert not search.is_search_object("stripe_charge", "table")
    assert not search.is_search_object("ix_stripe_charge_created_walk", "index")
    assert not search.is_search_object("stripe_customer_search", "index")


def test_rows_already_in_the_store_are_indexed_by_the_migration(any_store, any_store_owner: Actor) -> None:  # type: ignore[no-untyped-def]
    from alembic import command
    from alembic.config import Config

    from services.cli import migrate
    from services.config import PROJECT_ROOT

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    cfg.attributes["configure_logging"] = False
    cfg.attributes["database_url"] = any_store.database_url
    db.get_engine().dispose()
    command.downgrade(cfg, "0008")
    add(
        customer("cus_early", "Early Bird", "early@before.example"),
        charge("ch_early", "cus_early", description="Prepaid lantern"),
    )
    migrate(any_store.database_url)
    assert ids(global_search(any_store_owner, "bird").customers) == ["cus_early"]
    assert ids(billing.search_customers(any_store_owner, "bird").items) == ["cus_early"]  # the prefixes, filled
    assert ids(global_search(any_store_owner, "lantern").charges) == ["ch_early"]


# --- staying correct ------------------------------------------------------------------------------


def test_a_page_of_customers_written_in_one_statement_gets_every_prefix(any_store: Any) -> None:
    """A backfill page is one upsert of 100 customers: on PostgreSQL its prefixes come from one
    statement trigger (migration 0026). What it and the row triggers of later edits keep must be
    what a rebuild from the customers gives: every prefix of every live customer, no other."""

    def page(first: int, count: int, version: int, **changes: Any) -> list[dict[str, Any]]:
        return [
            {
                "id": f"cus_page{n}",
                "object": "customer",
                "email": f"P{n}@Example.com",
                "name": None if n % 7 == 0 else f"Ann Lee {n % 5} Jr",  # names shared by many
                "created": T + n,
                **changes,
            }
            for n in range(first, first + count)
        ]

    def prefixes() -> set[tuple[str, str]]:
        with session_scope() as session:
            rows = session.execute(sa.text("SELECT prefix, customer_id FROM stripe_customer_prefix"))
            return {(r[0], r[1]) for r in rows}

    with session_scope() as session:
        mirror.write_objects(session, "customer", page(0, 60, 1), 1)
    kept = prefixes()
    assert ("p0@example.com", "cus_page0") in kept and ("lee 1 jr", "cus_page1") in kept
    assert len(kept) == 60 + 4 * 51  # each email; each of 51 names from each of its 4 words
    with session_scope() as session:
        mirror.write_objects(session, "customer", page(40, 40, 2, name="Bo Ek"), 2)  # 20 renamed, 20 new
        mirror.write_objects(session, "customer", page(0, 10, 3), 3, deleted=True)
    kept = prefixes()
    assert ("ek", "cus_page79") in kept and not any(c == "cus_page3" for _, c in kept)
    with session_scope() as session:
        search.rebuild_search_index(session)
    assert prefixes() == kept


def test_changes_through_the_mirror_upsert_are_reflected(data: Actor) -> None:
    obj = {
        "id": "cus_alice",
        "object": "customer",
        "created": T - 10 * DAY,
        "email": "alice@newmail.test",
        "name": "Alice Keller",
    }
    with session_scope() as session:
        assert mirror.write_objects(session, "customer", [obj], version_at=T + 100) == ["cus_alice"]
    assert global_search(data, "martin").customers == []
    assert ids(global_search(data, "keller").customers) == ["cus_alice"]
    assert ids(global_search(data, "newmail").customers) == ["cus_alice"]
    # An older copy changes nothing (the upsert's WHERE), and the index stays as it was.
    with session_scope() as session:
        old = {**obj, "name": "Alice Martin"}
        assert mirror.write_objects(session, "customer", [old], version_at=T) == []
    assert global_search(data, "martin").customers == []
    # The same copy written again (no change to the searched columns) keeps it findable.
    with session_scope() as session:
        mirror.write_objects(session, "customer", [obj], version_at=T + 200)
    assert ids(global_search(data, "keller").customers) == ["cus_alice"]
    # A new object arriving through the upsert is indexed.
    ch = {
        "id": "ch_new",
        "object": "charge",
        "created": T,
        "amount": 100,
        "currency": "usd",
        "status": "succeeded",
        "customer": "cus_bob",
        "description": "Fresh lemonade",
    }
    with session_scope() as session:
        mirror.write_objects(session, "charge", [ch], version_at=T + 100)
    assert ids(global_search(data, "lemonade").charges) == ["ch_new"]
    with session_scope() as session:
        mirror.write_objects(session, "charge", [{**ch, "description": "Stale bread"}], version_at=T + 200)
    assert global_search(data, "lemonade").charges == []
    assert ids(global_search(data, "stale bread").charges) == ["ch_new"]


def test_deleted_and_removed_rows_drop_out(data: Actor) -> None:
    with session_scope() as session:
        mirror.write_objects(
            session,
            "customer",
            [{"id": "cus_bob", "created": T, "email": "bob.stone@acme.io", "name": "Bob Stone"}],
            version_at=T + 100,
            deleted=True,
        )
    assert global_search(data, "stone").customers == []
    assert global_search(data, "bob.st").customers == []  # the prefix path too
    # Undeleted (Stripe does not, but a repaired row may): findable again.
    with session_scope() as session:
        row = session.get(StripeCustomer, "cus_bob")
        assert row is not None
        row.deleted = False
    assert ids(global_search(data, "stone").customers) == ["cus_bob"]
    with session_scope() as session:
        session.execute(sa.delete(StripeCharge).where(StripeCharge.id == "ch_alice1"))
        session.execute(sa.delete(StripeCustomer).where(StripeCustomer.id == "cus_carol"))
    assert global_search(data, "widget").charges == []
    assert global_search(data, "percy").customers == []
    # The ORM's own update path (not the mirror) is covered as well.
    with session_scope() as session:
        row2 = session.get(StripeCharge, "ch_alice2")
        assert row2 is not None
        row2.description = "Green thing"
    assert global_search(data, "gadget").charges == []
    assert ids(global_search(data, "green th").charges) == ["ch_alice2"]


# --- hostile input --------------------------------------------------------------------------------


@pytest.mark.parametrize("plan", ["gather", "hashed", "by key"])
def test_a_cards_owners_are_the_newest_whichever_way_they_are_read(
    any_store_owner: Actor, plan: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rare card's owners are gathered; a common one's (a test-mode account's 4242) are found
    by walking the customers newest first. Every plan shows the same ten newest owners and says
    there are more; a deleted customer or payment method never counts, nor an owner twice."""
    walk_cost, hashed = {"gather": (1e9, 1e6), "hashed": (0.0, 1e6), "by key": (0.0, 0.0)}[plan]
    monkeypatch.setattr(search, "CARD_WALK_TO_GATHER_COST", walk_cost)
    monkeypatch.setattr(search, "HASHED_WALK_FACTOR", hashed)
    rows: list[Any] = []
    for i in range(60):
        rows.append(customer(f"cus_{i:02d}", f"Person {i}", f"p{i}@example.com", created=T + i))
        last4 = "4242" if i % 3 == 0 else "1881"
        rows.append(StripePaymentMethod(id=f"pm_{i:02d}", customer_id=f"cus_{i:02d}", card_last4=last4, created=T))
    rows[-2].deleted = True  # cus_59 is gone from Stripe (and its card is 1881 anyway)
    rows += [
        StripePaymentMethod(id="pm_57b", customer_id="cus_57", card_last4="4242", created=T),  # two 4242s
        StripePaymentMethod(id="pm_58b", customer_id="cus_58", card_last4="4242", created=T, deleted=True),
        customer("cus_60", "Gone Person", "gone@example.com", created=T + 60, deleted=True),
        StripePaymentMethod(id="pm_60", customer_id="cus_60", card_last4="4242", created=T),
    ]
    add(*rows)
    search.forget_estimates()
    with session_scope() as session:  # the planner's counts size the bands on PostgreSQL
        if session.get_bind().dialect.name == "postgresql":
            session.execute(sa.text("ANALYZE stripe_customer, stripe_payment_method"))
    assert search._plan("stripe_customer", lambda cap: 21, search.CARD_WALK_TO_GATHER_COST, 11) == plan
    r = global_search(any_store_owner, "4242")
    newest = [f"cus_{i:02d}" for i in (57, 54, 51, 48, 45, 42, 39, 36, 33, 30)]
    assert ids(r.customers) == newest and "customers" in r.more
    assert [c.id for c in search.found_customers(any_store_owner, "4242").items] == [
        f"cus_{i:02d}" for i in range(57, -1, -3)
    ]


def test_query_syntax_and_wildcards_are_taken_literally(data: Actor) -> None:
    assert ids(global_search(data, "100%").charges) == ["ch_bob1"]
    assert global_search(data, "100%").customers == []
    assert ids(global_search(data, '"a"b"').charges) == ["py_bob2"]
    assert ids(global_search(data, 'a"b').charges) == ["py_bob2"]
    assert global_search(data, 'a"c').count == 0
    assert ids(global_search(data, "x_y").customers) == ["cus_wild"]  # prefix, underscore literal
    assert global_search(data, "x%y").count == 0
    assert global_search(data, "a_i").customers == []  # "_" is not "any character"
    assert global_search(data, "%%%").count == 0
    assert global_search(data, "***").count == 0
    assert global_search(data, "[a]").count == 0
    for q in ("ali*", "NEAR(a b)", "a OR b", "col:val", "^abc", "a AND NOT b", "'; DROP TABLE x; --", "\\xy"):
        global_search(data, q)  # never a syntax error
    assert ids(global_search(data, "under_sc").customers) == ["cus_wild"]


def test_short_text_is_refused_with_a_reason(data: Actor) -> None:
    for q in ("a", "ab", " a  ", "é"):
        with pytest.raises(ValidationFailed, match="at least 3 characters"):
            global_search(data, q)
    assert global_search(data, "   ").count == 0  # nothing typed: nothing searched
    assert global_search(data, "#12").rule == "order_number"  # exact rules need no three characters
    with pytest.raises(ValidationFailed, match="at most"):
        global_search(data, "x" * 201)


# --- who may search -------------------------------------------------------------------------------


def test_read_only_may_search_and_an_unknown_role_may_not(data: Actor) -> None:
    reader = member_actor("read_only", "reader@example.com")
    assert ids(global_search(reader, "cus_alice").customers) == ["cus_alice"]
    stranger = Actor(reader.user_id, reader.email, "nonsense", Source.DASHBOARD)
    with pytest.raises(PermissionDenied):
        global_search(stranger, "cus_alice")


def test_control_characters_in_search_text_are_dropped_not_a_crash(data: Actor) -> None:
    """A NUL or another control character (a forged event, a pasted oddity, an API call) must not
    reach the stores: SQLite's full-text search and PostgreSQL both fail on a NUL."""
    from services import billing, reports

    assert ids(global_search(data, "mar\x00tin").customers) == ["cus_alice"]
    assert ids(global_search(data, "\x00\x1b\ud800ali").customers) == ["cus_alice"]
    assert [c.id for c in billing.search_customers(data, "ali\x00").items] == ["cus_alice"]
    found = reports.search_charges(data, reports.ChargeFilters(customer="ali\x07ce"))
    assert {c.customer.id for c in found.items} == {"cus_alice"}


# --- see all: the lists narrowed to every match -----------------------------------------------------


def list_ids(page: Any) -> list[str]:
    return [row.id for row in page.items]


def test_see_all_lists_hold_exactly_what_each_rule_finds(data: Actor) -> None:
    """For every rule, a group that is not cut short is its list, row for row, and the count the
    "See all" link gives is the list's own count."""
    add(charge("ch_web", "cus_carol", description="Online", order_number="WEB-77", created=T))
    queries = (
        *("cus_alice", "ch_alice1", "py_bob2", "pi_alice1", "re_bob1", "in_alice1", "sub_bob"),  # ids
        *("4242", "0005", "#1234", "order 5678", "ABCD-0001", "WEB-77"),  # card, order and invoice numbers
        *("ali", "martin", "STONE@ac", "widget", "red gadg", "100%", 'a"b', "x_y", "under_sc", "carol"),  # text
    )
    for q in queries:
        shown = global_search(data, q, limit=20)
        totals = search.found_totals(data, q)
        customers, charges = search.found_customers(data, q), search.found_charges(data, q)
        assert set(list_ids(customers)) == set(ids(shown.customers)), q
        assert set(list_ids(charges)) == set(ids(shown.charges)), q
        assert totals["customers"] == customers.total and customers.total is not None, q
        assert totals["charges"] == charges.total and charges.total is not None, q
        assert (customers.total.count, charges.total.count) == (len(shown.customers), len(shown.charges)), q
    # Prefix and contains matches alike, and never a deleted row.
    add(customer("cus_zed", "Zed", "zed@carolina.com", created=T))
    assert list_ids(search.found_customers(data, "carol")) == ["cus_zed", "cus_carol"]  # the list's order: newest
    assert "ch_gone" not in list_ids(search.found_charges(data, "widget"))
    assert search.found_customers(data, "4242").items[0].id == "cus_carol"  # a saved card, as the search says


def test_see_all_pages_through_every_match_beyond_the_groups_cap(data: Actor) -> None:
    add(*[charge(f"ch_bulk{i:02d}", "cus_bob", description=f"Bulk widget {i}", created=T + i) for i in range(30)])
    shown = global_search(data, "widget", limit=20)
    assert "charges" in shown.more and len(shown.charges) == 20
    assert search.found_totals(data, "widget") == {
        "customers": reports.ListTotal(0),
        "charges": reports.ListTotal(31),  # 30 bulk and Alice's blue widget
    }
    first = search.found_charges(data, "widget")
    assert first.total == reports.ListTotal(31) and len(first.items) == reports.PAGE_SIZE
    assert list_ids(first)[:3] == ["ch_bulk29", "ch_bulk28", "ch_bulk27"]  # newest first, like the list
    second = search.found_charges(data, "widget", cursor=first.next_cursor)
    every = list_ids(first) + list_ids(second)
    assert second.next_cursor is None and len(every) == len(set(every)) == 31
    assert set(ids(shown.charges)) <= set(every)
    # The list's own filters and sorts still apply on top of the search.
    bobs = search.found_charges(data, "widget", reports.ChargeFilters(customer="bob"), "oldest")
    assert list_ids(bobs)[:2] == ["ch_bulk00", "ch_bulk01"] and bobs.total == reports.ListTotal(30)
    assert search.found_totals(data, "widget", ("charges",)) == {"charges": reports.ListTotal(31)}


def test_see_all_refuses_what_the_search_refuses(data: Actor) -> None:
    for q in ("ab", "", "   ", "x" * 201):
        for see_all in (search.found_customers, search.found_charges, search.found_totals):
            with pytest.raises(ValidationFailed):
                see_all(data, q)
    with pytest.raises(ValidationFailed):
        search.found_totals(data, "widget", ("invoices",))
    with pytest.raises(ValidationFailed):
        search.found_charges(data, "widget", limit=0)
    reader = member_actor("read_only", "reader@example.com")
    assert list_ids(search.found_customers(reader, "martin")) == ["cus_alice"]
    stranger = Actor(reader.user_id, reader.email, "nonsense", Source.DASHBOARD)
    for see_all in (search.found_customers, search.found_charges, search.found_totals):
        with pytest.raises(PermissionDenied):
            see_all(stranger, "martin")
