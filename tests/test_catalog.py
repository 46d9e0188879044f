"""The product catalogue (issue 12): products and prices, read by everyone, changed by Billing
Managers and the Owner, against the sandbox and both stores.

Each write is checked the way a member would notice it: Stripe and the catalogue show the change at
once; a Clerk or Read Only member is refused in words and the attempt is audited as denied; one
idempotency key is one change at Stripe; a key without "Products: Write" or "Prices: Write" gets the
sentence naming what to enable, and nothing changes; bad input gets a plain message. The last tests
forge the page's Reflex events as a Clerk and as Read Only.
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import date
from typing import Any

import pytest
from sqlmodel import select

from billy_app.billy_app import app  # noqa: F401 - every page and state registered
from billy_app.state.products import ProductsState, product_view
from sandbox.keys import BILLY_PERMISSIONS
from services import catalog, identity, notices, stripe_keys
from services.db import session_scope
from services.errors import NotFound, PermissionDenied, StripeKeyMissingPermission, ValidationFailed
from services.models import AuditEntry, StripeConnection
from services.permissions import Actor, Permission, Role
from services.stripe_gateway import StripeGateway
from tests.conftest import StripePeer, member_actor
from tests.reflex_events import event_pipeline
from tests.stripe_helpers import sync_lists

MEMBER_PASSWORD = "another-long-password"  # `member_actor`'s
CATALOG_ACTIONS = ("products.create", "products.update", "products.archive", "prices.create")
# The demo key's permissions plus the two recommended writes the catalogue needs.
CATALOG_KEY = {**BILLY_PERMISSIONS, "product": "write", "plan": "write"}


def key() -> str:
    return secrets.token_urlsafe(24)


def _seed_team(peer: StripePeer) -> str:
    """A product with a monthly and a yearly price, made in Stripe by someone else."""
    client = peer.secret_client()
    team = client.v1.products.create(params={"name": "Team", "description": "For small teams"})
    for amount, interval in ((4900, "month"), (49000, "year")):
        client.v1.prices.create(
            params={"product": team.id, "unit_amount": amount, "currency": "usd", "recurring": {"interval": interval}}
        )
    return str(team.id)


@pytest.fixture
def team_id(any_store, any_store_owner: Actor, stripe_peer: StripePeer) -> str:  # type: ignore[no-untyped-def]
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.restricted_key(permissions=CATALOG_KEY))
    product_id = _seed_team(stripe_peer)
    sync_lists()
    return product_id


@pytest.fixture
def manager(any_store_owner: Actor) -> Actor:
    return member_actor("billing_manager", "manager@example.com")


@pytest.fixture
def clerk(any_store_owner: Actor) -> Actor:
    return member_actor("billing_clerk", "clerk@example.com")


@pytest.fixture
def viewer(any_store_owner: Actor) -> Actor:
    return member_actor("read_only", "viewer@example.com")


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    """The store-change notices live pages hear."""
    heard: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(notices, "publish", lambda kind, ids: heard.append((kind, list(ids))))
    return heard


def _stripe_products(peer: StripePeer) -> dict[str, Any]:
    return {p.id: p for p in peer.secret_client().v1.products.list(params={"limit": 100}).data}


def _stripe_prices(peer: StripePeer) -> list[Any]:
    return list(peer.secret_client().v1.prices.list(params={"limit": 100}).data)


def _events(peer: StripePeer, kind: str) -> int:
    return len(peer.secret_client().v1.events.list(params={"type": kind, "limit": 100}).data)


def _audit() -> list[AuditEntry]:
    with session_scope() as s:
        rows = s.exec(select(AuditEntry).where(AuditEntry.action.in_(CATALOG_ACTIONS))).all()  # type: ignore[attr-defined]
        return sorted(rows, key=lambda r: r.id or 0)


def _listed(actor: Actor, query: str = "") -> dict[str, catalog.ProductRow]:
    return {row.name: row for row in catalog.list_products(actor, query).items}


# --- each write, by a role that may ---------------------------------------------------------------


def test_a_manager_creates_a_product_shown_at_once_and_announced(
    team_id: str, manager: Actor, stripe_peer: StripePeer, published: list[tuple[str, list[str]]]
) -> None:
    change = catalog.create_product(manager, "  Business ", "For larger teams", key())
    assert not change.replayed and change.stored
    assert change.product is not None and (change.product.name, change.product.status) == ("Business", "Active")
    assert "Add a price to it" in change.message
    in_stripe = _stripe_products(stripe_peer)[change.product_id]
    assert (in_stripe.name, in_stripe.description, in_stripe.active) == ("Business", "For larger teams", True)
    shown = _listed(manager)["Business"]  # the store, read back as the page reads it
    assert (shown.id, shown.description, shown.prices) == (change.product_id, "For larger teams", ())
    assert ("product", [change.product_id]) in published  # open catalogue pages re-read
    (row,) = _audit()
    assert (row.action, row.outcome, row.actor_email, row.target_ids) == (
        "products.create",
        "ok",
        "manager@example.com",
        [change.product_id],
    )


def test_a_manager_renames_and_describes_a_product(team_id: str, manager: Actor, stripe_peer: StripePeer) -> None:
    change = catalog.update_product(manager, team_id, "Team plan", "", key())
    assert change.product is not None and (change.product.name, change.product.description) == ("Team plan", "")
    in_stripe = _stripe_products(stripe_peer)[team_id]
    assert (in_stripe.name, in_stripe.description) == ("Team plan", None)
    assert "Team plan" in _listed(manager) and "Team" not in _listed(manager)
    (row,) = _audit()
    assert (row.action, row.outcome, row.target_ids) == ("products.update", "ok", [team_id])
    assert row.details["fields"] == ["description", "name"]


def test_archiving_keeps_the_prices_says_so_and_the_owner_restores(
    team_id: str, manager: Actor, any_store_owner: Actor, stripe_peer: StripePeer
) -> None:
    newer = catalog.create_product(manager, "Starter", "", key())
    archived = catalog.set_product_archived(manager, team_id, True, key())
    assert "its 2 active prices stay in Stripe" in archived.message
    assert "can no longer be used for new subscriptions" in archived.message
    assert _stripe_products(stripe_peer)[team_id].active is False
    assert all(p.active for p in _stripe_prices(stripe_peer))  # Billy archives the product, nothing else
    rows = catalog.list_products(manager).items
    assert [(r.name, r.status) for r in rows] == [("Starter", "Active"), ("Team", "Archived")]  # active first
    assert newer.product_id == rows[0].id and rows[1].active_prices == 2

    restored = catalog.set_product_archived(any_store_owner, team_id, False, key())
    assert restored.message.startswith("Restored “Team”")
    assert _stripe_products(stripe_peer)[team_id].active is True
    assert _listed(manager)["Team"].status == "Active"
    assert [(r.action, r.outcome, r.details.get("archived")) for r in _audit()] == [
        ("products.create", "ok", None),
        ("products.archive", "ok", True),
        ("products.archive", "ok", False),
    ]


def test_a_manager_adds_prices_shown_in_words_in_usd_and_jpy(
    team_id: str, manager: Actor, stripe_peer: StripePeer, published: list[tuple[str, list[str]]]
) -> None:
    quarterly = catalog.create_price(manager, team_id, 2500, "USD", "month", 3, key(), nickname="Quarterly")
    assert quarterly.message.startswith("Added $25.00 every 3 months to “Team”")
    assert "cannot be changed later" in quarterly.message
    setup = catalog.create_price(manager, team_id, 25000, "usd", None, 1, key())
    tokyo = catalog.create_product(manager, "Tokyo office", "", key())
    yen = catalog.create_price(manager, tokyo.product_id, 5000, "jpy", "month", 1, key())
    longest = catalog.create_price(manager, tokyo.product_id, 100000, "jpy", "year", 3, key())

    in_stripe = {p.id: p for p in _stripe_prices(stripe_peer)}
    assert (in_stripe[yen.price_id].unit_amount, in_stripe[yen.price_id].currency) == (5000, "jpy")
    assert in_stripe[quarterly.price_id].recurring.interval_count == 3
    assert in_stripe[quarterly.price_id].nickname == "Quarterly"
    assert in_stripe[setup.price_id].type == "one_time"
    assert ("price", [yen.price_id]) in published

    shown = _listed(manager)
    assert sorted(p.words for p in shown["Team"].prices) == [  # made in the same second: any order
        "$25.00 every 3 months",
        "$250.00 one-off",
        "$49.00 / month",
        "$490.00 / year",
    ]
    assert sorted(p.words for p in shown["Tokyo office"].prices) == ["¥100,000 every 3 years", "¥5,000 / month"]
    assert "$25.00 every 3 months · Quarterly" in product_view(shown["Team"]).prices  # as the page shows it
    assert longest.product is not None and len(longest.product.prices) == 2
    row = [r for r in _audit() if r.action == "prices.create"][2]
    assert (row.outcome, row.amount, row.currency, row.target_ids) == (
        "ok",
        5000,
        "jpy",
        [tokyo.product_id, yen.price_id],
    )


def test_a_custom_role_holding_manage_products_may_write(team_id: str, stripe_peer: StripePeer) -> None:
    role = Role("custom:catalog", "Catalogue keeper", frozenset({Permission.MANAGE_PRODUCTS}), {})
    keeper = dataclasses.replace(member_actor("billing_clerk", "keeper@example.com"), role=role.name, custom_role=role)
    change = catalog.create_price(keeper, team_id, 990, "eur", "month", 1, key())
    assert change.message.startswith("Added €9.90 / month")


# --- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["billing_clerk", "read_only"])
def test_clerk_and_read_only_are_refused_every_write_audited_and_nothing_changes(
    team_id: str, stripe_peer: StripePeer, role: str
) -> None:
    member = member_actor(role, f"{role}@example.com")
    controls = catalog.catalog_controls(member)
    assert not any(c.shown for c in (controls.create, controls.update, controls.archive, controls.add_price))
    before = (_stripe_products(stripe_peer), len(_stripe_prices(stripe_peer)))
    attempts = [
        lambda: catalog.create_product(member, "Sneaky", "", key()),
        lambda: catalog.update_product(member, team_id, "Renamed", "", key()),
        lambda: catalog.set_product_archived(member, team_id, True, key()),
        lambda: catalog.create_price(member, team_id, 100, "usd", "month", 1, key()),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied, match=r"cannot manage products and prices: ask someone who can"):
            attempt()
    assert (_stripe_products(stripe_peer).keys(), len(_stripe_prices(stripe_peer))) == (before[0].keys(), before[1])
    assert _stripe_products(stripe_peer)[team_id].name == "Team" and _events(stripe_peer, "product.updated") == 0
    assert [(r.action, r.outcome, r.actor_email) for r in _audit()] == [
        (action, "denied", f"{role}@example.com") for action in CATALOG_ACTIONS
    ]
    assert _listed(member)["Team"].status == "Active"  # reading the catalogue is for everyone


def test_an_ended_trial_shows_the_controls_disabled_with_the_reason(team_id: str, manager: Actor) -> None:
    ended = dataclasses.replace(manager, trial_ended_on=date(2026, 1, 31))
    controls = catalog.catalog_controls(ended)
    assert controls.create.shown and "trial ended on 31 January 2026" in controls.create.blocked_by
    with pytest.raises(PermissionDenied, match="trial ended"):
        catalog.create_product(ended, "Late", "", key())


# --- one key, one change -------------------------------------------------------------------------------


def test_the_same_key_twice_makes_one_change_for_every_write(
    team_id: str, manager: Actor, stripe_peer: StripePeer
) -> None:
    k = key()
    first = catalog.create_product(manager, "Once", "", k)
    again = catalog.create_product(manager, "Once", "", k)
    assert again.replayed and again.product_id == first.product_id
    assert [p.name for p in _stripe_products(stripe_peer).values()].count("Once") == 1
    with pytest.raises(ValidationFailed, match="already saved other changes"):
        catalog.create_product(manager, "Twice", "", k)

    k = key()
    price = catalog.create_price(manager, team_id, 1500, "usd", "week", 1, k)
    assert catalog.create_price(manager, team_id, 1500, "usd", "week", 1, k).price_id == price.price_id
    assert len(_stripe_prices(stripe_peer)) == 3

    k = key()
    catalog.update_product(manager, team_id, "Team 2", "", k)
    assert catalog.update_product(manager, team_id, "Team 2", "", k).replayed
    k = key()
    catalog.set_product_archived(manager, team_id, True, k)
    assert catalog.set_product_archived(manager, team_id, True, k).replayed
    assert _events(stripe_peer, "product.updated") == 2  # one rename, one archive
    assert _listed(manager)["Team 2"].status == "Archived"
    with pytest.raises(ValidationFailed, match="used for something else"):
        catalog.update_product(manager, team_id, "Team 2", "", k)  # an archive's key, reused for a rename


# --- a key without the Stripe permissions ----------------------------------------------------------------


def test_a_key_without_products_and_prices_write_gets_the_plain_message_and_nothing_changes(
    any_store, any_store_owner: Actor, stripe_peer: StripePeer, manager: Actor
) -> None:  # type: ignore[no-untyped-def]
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)  # Products and Prices: Read only
    team_id = _seed_team(stripe_peer)
    sync_lists()

    # Not probed yet: Stripe's 403 becomes Billy's sentence, and is remembered.
    with pytest.raises(StripeKeyMissingPermission, match=r"set “Products” to “Write”"):
        catalog.create_product(manager, "Nope", "", key())
    # The page's controls: asked of Stripe once, then shown disabled with what to enable.
    controls = catalog.catalog_controls(manager)
    assert controls.create.shown and "“Products” to “Write”" in controls.create.blocked_by
    assert controls.archive.blocked_by == controls.update.blocked_by == controls.create.blocked_by
    assert "“Prices” to “Write”" in controls.add_price.blocked_by
    # Now refused before Stripe is asked.
    with pytest.raises(StripeKeyMissingPermission, match="Stripe Dashboard"):
        catalog.update_product(manager, team_id, "Nope", "", key())
    with pytest.raises(StripeKeyMissingPermission, match=r"“Prices” to “Write”"):
        catalog.create_price(manager, team_id, 100, "usd", "month", 1, key())
    assert [p.name for p in _stripe_products(stripe_peer).values()] == ["Team"]
    assert len(_stripe_prices(stripe_peer)) == 2 and _events(stripe_peer, "product.updated") == 0
    assert [r.outcome for r in _audit()] == ["failed", "failed", "failed"]

    # The Owner connects a key with both writes: the controls work again.
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.restricted_key(permissions=CATALOG_KEY))
    controls = catalog.catalog_controls(manager)
    assert controls.create.usable and controls.add_price.usable
    with session_scope() as s:
        granted = s.exec(select(StripeConnection)).one().permissions
    assert granted["rak_product_write"] is True and granted["rak_plan_write"] is True


def test_check_again_sees_a_key_the_owner_just_edited_in_stripe(
    any_store, any_store_owner: Actor, stripe_peer: StripePeer, manager: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    limited = {**BILLY_PERMISSIONS}  # Products and Prices: Read
    raw = stripe_peer.restricted_key(permissions=limited)
    stripe_keys.connect_stripe_key(any_store_owner, raw)
    first = catalog.catalog_controls(manager)
    assert first.key_lacks_writes and "“Products” to “Write”" in first.create.blocked_by

    # The Owner edits the same key in the Stripe Dashboard (Stripe keeps its token).
    stripe_peer.restricted_key(key=raw, permissions=CATALOG_KEY)
    # A plain page load trusts the "no" for a minute: no request to Stripe per page view.
    assert catalog.catalog_controls(manager).create.blocked_by == first.create.blocked_by
    # "Check again" asks Stripe afresh (its answers are at least ASK_AGAIN_SECONDS apart).
    monkeypatch.setattr(catalog, "ASK_AGAIN_SECONDS", 0.0)  # as if those seconds had passed
    again = catalog.catalog_controls(manager, ask_again=True)
    assert again.create.usable and again.add_price.usable and not again.key_lacks_writes
    assert catalog.create_product(manager, "Now possible", "", key()).product_id


def test_a_key_edited_after_billy_learned_it_may_write_is_refused_in_words(
    team_id: str, manager: Actor, stripe_peer: StripePeer
) -> None:
    assert catalog.catalog_controls(manager).create.usable
    limited = stripe_peer.restricted_key(profile="billy")  # reads products and prices only
    with pytest.raises(StripeKeyMissingPermission, match=r"“Prices” to “Write”"):
        catalog.create_price(manager, team_id, 100, "usd", "month", 1, key(), gateway=StripeGateway(lambda: limited))
    assert len(_stripe_prices(stripe_peer)) == 2
    assert "“Prices” to “Write”" in catalog.catalog_controls(manager).add_price.blocked_by


# --- bad input ---------------------------------------------------------------------------------------------


def test_bad_input_is_refused_in_words_and_nothing_changes(
    team_id: str, manager: Actor, stripe_peer: StripePeer
) -> None:
    archived = catalog.create_product(manager, "Old", "", key())
    catalog.set_product_archived(manager, archived.product_id, True, key())
    before = (
        len(_stripe_products(stripe_peer)),
        len(_stripe_prices(stripe_peer)),
        _events(stripe_peer, "product.updated"),
    )

    def price(**changed: Any) -> Any:
        args: dict[str, Any] = {"amount": 100, "currency": "usd", "interval": "month", "interval_count": 1}
        args.update(changed)
        product = args.pop("product", team_id)
        return lambda: catalog.create_price(manager, product, idempotency_key=key(), **args)

    cases: list[tuple[Any, type[Exception], str]] = [
        (lambda: catalog.create_product(manager, "   ", "", key()), ValidationFailed, "Give the product a name"),
        (lambda: catalog.create_product(manager, "x" * 251, "", key()), ValidationFailed, "at most 250 characters"),
        (lambda: catalog.create_product(manager, 42, "", key()), ValidationFailed, "product name must be text"),  # type: ignore[arg-type]
        (lambda: catalog.create_product(manager, "Ok", "bad\x00byte", key()), ValidationFailed, "cannot be saved"),
        (lambda: catalog.create_product(manager, "Ok", "", "short"), ValidationFailed, "idempotency key"),
        (lambda: catalog.update_product(manager, team_id, "", "", key()), ValidationFailed, "Give the product a name"),
        (lambda: catalog.update_product(manager, "prod_nothing", "X", "", key()), NotFound, "No product with that id"),
        (lambda: catalog.update_product(manager, "bad id!", "X", "", key()), ValidationFailed, "not a Stripe product"),
        (lambda: catalog.set_product_archived(manager, team_id, "yes", key()), ValidationFailed, "Say whether"),  # type: ignore[arg-type]
        (price(amount=0), ValidationFailed, "above zero"),
        (price(amount=12.5), ValidationFailed, "amount as a number"),
        (price(amount=100_000_000), ValidationFailed, r"at most \$999,999.99"),
        (price(amount=100_000_000, currency="jpy"), ValidationFailed, "at most ¥99,999,999"),
        (price(currency="usdx"), ValidationFailed, "three-letter code"),
        (price(currency="kwd"), ValidationFailed, "thousandths"),
        (price(interval="fortnight"), ValidationFailed, "every day, week, month or year"),
        (price(interval="year", interval_count=4), ValidationFailed, "every 1 to 3 years"),
        (price(interval="month", interval_count=37), ValidationFailed, "every 1 to 36 months"),
        (price(interval="week", interval_count=157), ValidationFailed, "every 1 to 156 weeks"),
        (price(interval="day", interval_count=1096), ValidationFailed, "every 1 to 1095 days"),
        (price(interval_count=0), ValidationFailed, "every 1 to 36 months"),
        (price(interval=None, interval_count=2), ValidationFailed, "one-off price is charged once"),
        (price(nickname="n" * 251), ValidationFailed, "nickname can be at most 250"),
        (price(product=archived.product_id), ValidationFailed, "archived: restore it before adding a price"),
        (price(product="prod_nothing"), NotFound, "No product with that id"),
    ]
    for attempt, error, message in cases:
        with pytest.raises(error, match=message):
            attempt()
    after = (
        len(_stripe_products(stripe_peer)),
        len(_stripe_prices(stripe_peer)),
        _events(stripe_peer, "product.updated"),
    )
    assert after == before
    assert [r.outcome for r in _audit()][2:] == ["failed"] * len(cases)


# --- reading ---------------------------------------------------------------------------------------------


def test_the_catalogue_pages_searches_and_puts_active_products_first(
    team_id: str, viewer: Actor, stripe_peer: StripePeer
) -> None:
    client = stripe_peer.secret_client()
    for name, active in (("Basic", True), ("Legacy team", False), ("50% off pack", True)):
        client.v1.products.create(params={"name": name, "active": active})
    sync_lists()
    first = catalog.list_products(viewer, limit=2)
    assert first.total is not None and first.total.label == "4" and first.next_cursor
    second = catalog.list_products(viewer, cursor=first.next_cursor, limit=2)
    names = [r.name for r in first.items + second.items]
    assert set(names[:3]) == {"50% off pack", "Basic", "Team"} and names[3] == "Legacy team"  # active first
    assert second.next_cursor is None
    assert [r.name for r in catalog.list_products(viewer, "TEAM").items] == ["Team", "Legacy team"]
    assert [r.name for r in catalog.list_products(viewer, "%").items] == ["50% off pack"]  # typed, not a wildcard
    with pytest.raises(ValidationFailed, match="page link is no longer valid"):
        catalog.list_products(viewer, cursor="bogus")
    assert catalog.price_words(4900, "usd", "month", 1) == "$49.00 / month"
    assert catalog.price_words(5000, "jpy", None, None) == "¥5,000 one-off"


# --- the page's Reflex events ----------------------------------------------------------------------------------


def _tab_cookie(email: str) -> str:
    tokens = identity.login(email, MEMBER_PASSWORD, "127.0.0.1", "pytest-tab")
    return f"{identity.ACCESS_COOKIE}={tokens.access}"


@pytest.mark.parametrize("role", ["billing_clerk", "read_only"])
def test_forged_catalogue_events_are_refused_by_the_service_and_audited(
    team_id: str, stripe_peer: StripePeer, role: str
) -> None:
    """The page hides every write control from these roles; a client that sends the dialogs' events
    anyway reaches the services, which refuse and audit each, and nothing changes."""
    email = f"{role}@example.com"
    member_actor(role, email)
    with event_pipeline() as pipeline:
        tab = pipeline.tab(_tab_cookie(email), path="/products")
        loaded = tab.send(ProductsState, "load")
        assert (
            loaded.last(ProductsState, "create_shown") is False and loaded.last(ProductsState, "price_shown") is False
        )
        assert "$49.00 / month" in loaded.text  # the catalogue itself is for everyone
        tab.send(ProductsState, "start_create")
        sent = [tab.send(ProductsState, "save_new_product", {"form": {"name": "Forged"}})]
        tab.send(ProductsState, "start_rename", {"product_id": team_id})
        sent.append(tab.send(ProductsState, "save_rename", {"form": {"name": "Forged", "description": ""}}))
        tab.send(ProductsState, "start_archive", {"product_id": team_id})
        sent.append(tab.send(ProductsState, "confirm_archive"))
        tab.send(ProductsState, "start_price", {"product_id": team_id})
        sent.append(tab.send(ProductsState, "save_price", {"form": {"amount": "1.00", "interval_count": "1"}}))
        tab.send(ProductsState, "close_dialog")
        unopened = tab.send(ProductsState, "save_new_product", {"form": {"name": "No dialog"}})
    for answer in sent:
        assert "cannot manage products and prices" in answer.text
    assert "cannot manage" not in unopened.text  # no dialog open: nothing is attempted
    assert [p.name for p in _stripe_products(stripe_peer).values()] == ["Team"]
    assert len(_stripe_prices(stripe_peer)) == 2 and _events(stripe_peer, "product.updated") == 0
    assert [(r.action, r.outcome, r.actor_email) for r in _audit()] == [
        (action, "denied", email) for action in CATALOG_ACTIONS
    ]


def test_a_manager_creates_and_prices_a_product_from_the_page(
    team_id: str, manager: Actor, stripe_peer: StripePeer
) -> None:
    with event_pipeline() as pipeline:
        tab = pipeline.tab(_tab_cookie(manager.email), path="/products")
        loaded = tab.send(ProductsState, "load")
        assert loaded.last(ProductsState, "create_shown") is True and loaded.last(ProductsState, "create_blocked") == ""
        tab.send(ProductsState, "start_create")
        created = tab.send(ProductsState, "save_new_product", {"form": {"name": "Agency", "description": "Per client"}})
        assert "in Stripe. Add a price to it" in created.text  # the toast
        agency = next(
            r for r in created.last(ProductsState, "rows") if r.name == "Agency"
        )  # shown at once, from the store
        tab.send(ProductsState, "start_price", {"product_id": agency.id})
        tab.send(ProductsState, "set_price_currency", {"currency": "jpy"})
        refused = tab.send(ProductsState, "save_price", {"form": {"amount": "12.50", "interval_count": "1"}})
        assert "JPY amounts have no decimals" in refused.text
        priced = tab.send(ProductsState, "save_price", {"form": {"amount": "12,000", "interval_count": "1"}})
        assert "12,000 / month to" in priced.text and "cannot be changed later" in priced.text
        assert "¥12,000 / month" in str(priced.last(ProductsState, "rows"))
    (price,) = [p for p in _stripe_prices(stripe_peer) if p.product == agency.id]
    assert (price.unit_amount, price.currency) == (12000, "jpy")
