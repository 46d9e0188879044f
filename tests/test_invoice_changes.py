"""Invoice work (issue 12) per role, against the sandbox, both stores and a real SMTP catcher.

A Billing Manager creates a draft from prices and custom lines, sends it (finalized first),
voids it or writes it off, and the store shows each change at once; a Clerk and Read Only are
refused and audited, in the services and through forged dashboard events. One idempotency key
is one change at Stripe. Reminders: one audit row and one result per invoice, the mail in the
catcher, customers without an email listed, a refused mail in the middle hiding nothing.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import select

from billy_app.billy_app import app  # noqa: F401 - every page and state registered
from billy_app.state.invoice_actions import InvoiceActionsState, NewInvoiceState
from billy_app.state.invoices import InvoicesState
from controlplane.local_http import local_http
from devtools.mailcatcher import CatcherHandle
from services import clock, identity, invoice_changes, stripe_keys
from services.config import get_settings
from services.db import session_scope
from services.errors import PermissionDenied, StripeKeyMissingPermission, StripeUnreachable, ValidationFailed
from services.mailer import OutgoingMail, SmtpMailer, get_mailer
from services.models import AuditEntry, IdempotencyRecord, StripeConnection, StripeInvoice, StripeInvoiceLine
from services.permissions import Actor
from services.stripe_gateway import StripeGateway
from tests.conftest import StripePeer, member_actor
from tests.reflex_events import event_pipeline
from tests.stripe_helpers import sync_lists

DAY = 86_400
MEMBER_PASSWORD = "another-long-password"  # `member_actor`'s
WRITES = ("invoices.create", "invoices.send", "invoices.void", "invoices.mark_uncollectible")


def key() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class World:
    """Customers, prices and invoices arranged in the sandbox, then synced into the store."""

    peer: StripePeer
    jane: str  # has an email
    nomail: str  # has none
    bounce: str  # the mail server refuses her address
    setup_price: str  # one-time, $250
    monthly_price: str  # recurring
    archived_price: str
    overdue: str  # Jane's open invoice, $120.00, 10 days overdue
    overdue_2: str  # Jane's second, $80.00
    overdue_nomail: str
    overdue_bounce: str
    paid: str
    draft: str  # Jane's draft, send_invoice, $50.00
    automatic: str  # open, charged automatically

    def client(self) -> Any:
        return self.peer.secret_client()

    def invoice(self, invoice_id: str) -> Any:
        return self.client().v1.invoices.retrieve(invoice_id)

    def events(self, kind: str, invoice_id: str) -> int:
        found = self.client().v1.events.list(params={"type": kind, "limit": 100}).data
        return sum(1 for e in found if e.data.object["id"] == invoice_id)


def _invoice(
    peer: StripePeer, customer: str, amount: int, *, finalize: bool = True, late_days: int = 0, **extra: Any
) -> str:
    c = peer.secret_client()
    params = {"customer": customer, "collection_method": "send_invoice", "days_until_due": 10, **extra}
    if extra.get("collection_method") == "charge_automatically":
        params.pop("days_until_due")
    invoice = c.v1.invoices.create(params=params)
    c.v1.invoice_items.create(
        params={"customer": customer, "invoice": invoice.id, "amount": amount, "currency": "usd", "description": "Work"}
    )
    if finalize:
        c.v1.invoices.finalize_invoice(invoice.id)
    if late_days:  # the whole invoice moves back: due 10 days after finalizing → `late_days` overdue
        # Half a day more: finalizing may land a second after creating, which left the invoice a
        # second short of `late_days` whole days overdue ("9 days overdue") in one CI run.
        created = int(time.time()) - (10 + late_days) * DAY - DAY // 2
        local_http().post(
            f"{peer.url}/_config/backdate", json={"id": invoice.id, "created": created}, timeout=10
        ).raise_for_status()
    return str(invoice.id)


@pytest.fixture
def world(any_store: Any, any_store_owner: Actor, stripe_peer: StripePeer) -> World:
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    c = stripe_peer.secret_client()
    jane = c.v1.customers.create(params={"name": "Jane Smith", "email": "jane@example.com"}).id
    nomail = c.v1.customers.create(params={"name": "No Mail"}).id
    bounce = c.v1.customers.create(params={"name": "Bo Unce", "email": "bounce@example.com"}).id
    setup = c.v1.prices.create(params={"product_data": {"name": "Setup"}, "unit_amount": 25000, "currency": "usd"})
    monthly = c.v1.prices.create(
        params={"product": setup.product, "unit_amount": 900, "currency": "usd", "recurring": {"interval": "month"}}
    )
    archived = c.v1.prices.create(params={"product": setup.product, "unit_amount": 100, "currency": "usd"})
    c.v1.prices.update(archived.id, params={"active": False})
    paid = _invoice(stripe_peer, jane, 3000)
    c.v1.invoices.pay(paid, params={"paid_out_of_band": True})
    made = World(
        peer=stripe_peer,
        jane=jane,
        nomail=nomail,
        bounce=bounce,
        setup_price=setup.id,
        monthly_price=monthly.id,
        archived_price=archived.id,
        overdue=_invoice(stripe_peer, jane, 12000, late_days=10),
        overdue_2=_invoice(stripe_peer, jane, 8000, late_days=3),
        overdue_nomail=_invoice(stripe_peer, nomail, 5000, late_days=5),
        overdue_bounce=_invoice(stripe_peer, bounce, 7000, late_days=5),
        paid=paid,
        draft=_invoice(stripe_peer, jane, 5000, finalize=False),
        automatic=_invoice(stripe_peer, jane, 2000, collection_method="charge_automatically"),
    )
    sync_lists()
    return made


@pytest.fixture
def manager(any_store_owner: Actor) -> Actor:
    return member_actor("billing_manager", "manager@example.com")


def _stored(invoice_id: str) -> StripeInvoice:
    with session_scope() as s:
        row = s.get(StripeInvoice, invoice_id)
        assert row is not None
        return row


def _audit(prefix: str = "invoices.") -> list[AuditEntry]:
    with session_scope() as s:
        rows = s.exec(select(AuditEntry).where(AuditEntry.action.startswith(prefix))).all()
        return sorted(rows, key=lambda r: r.id or 0)


def _due(days: int = 14) -> datetime:
    return clock.now() + timedelta(days=days)


LINES = [
    {"price_id": "", "quantity": 2},  # the price id is filled in per test
    {"description": "Rush delivery", "amount": 4550, "currency": "usd"},
]


def _lines(world: World) -> list[dict[str, Any]]:
    return [{**LINES[0], "price_id": world.setup_price}, dict(LINES[1])]


# --- creating ----------------------------------------------------------------------------------


def test_a_manager_creates_a_draft_from_a_price_and_a_custom_line_and_the_store_has_it(
    world: World, manager: Actor
) -> None:
    due = _due()
    made = invoice_changes.create_invoice(manager, world.jane, _lines(world), due, key(), memo="Thank you!")
    assert (made.total, made.currency, made.lines, made.stored) == (54550, "usd", 2, True)

    in_stripe = world.invoice(made.invoice_id)
    assert (in_stripe.status, in_stripe.collection_method, in_stripe.due_date, in_stripe.total) == (
        "draft",
        "send_invoice",
        int(due.timestamp()),
        54550,
    )
    assert in_stripe.description == "Thank you!" and in_stripe.auto_advance is False
    assert [(line.description, line.quantity, line.amount) for line in in_stripe.lines.data] == [
        ("Setup", 2, 50000),
        ("Rush delivery", 1, 4550),
    ]

    stored = _stored(made.invoice_id)  # the page shows it at once, before any webhook
    assert (stored.status, stored.total, stored.customer_id) == ("draft", 54550, world.jane)
    with session_scope() as s:
        lines = s.exec(select(StripeInvoiceLine).where(StripeInvoiceLine.invoice_id == made.invoice_id)).all()
    assert sorted(line.amount for line in lines) == [4550, 50000]

    (row,) = _audit()
    assert (row.action, row.outcome, row.actor_email, row.target_ids) == (
        "invoices.create",
        "ok",
        "manager@example.com",
        [world.jane, made.invoice_id],
    )
    assert (row.amount, row.currency, row.details["lines"], row.details["prices"]) == (
        54550,
        "usd",
        2,
        [world.setup_price],
    )
    assert "rush" not in str(row.details).lower() and "jane" not in str(row.details).lower()


def test_the_preview_shows_each_line_and_the_total_before_anything_is_made(world: World, manager: Actor) -> None:
    preview = invoice_changes.preview_invoice(manager, world.jane, _lines(world))
    assert [(line.label, line.amount) for line in preview.lines] == [("2 × Setup", 50000), ("Rush delivery", 4550)]
    assert preview.total_label == "$545.50"
    assert world.client().v1.invoices.list(params={"customer": world.jane, "status": "draft"}).data[0].id == world.draft


def test_a_lost_answer_retried_with_its_key_makes_one_invoice_with_its_lines_once(world: World, manager: Actor) -> None:
    class LostAnswer(StripeGateway):
        """Stripe makes every line, but the last answer never arrives."""

        def write(self, collection: str, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
            answer = super().write(collection, method, *args, **kwargs)
            if collection == "invoice_items" and str(args[1]).endswith("line-2"):
                raise StripeUnreachable("Billy could not reach Stripe.", outcome_unknown=True)
            return answer

    k, due = key(), _due()
    with pytest.raises(StripeUnreachable):
        invoice_changes.create_invoice(manager, world.jane, _lines(world), due, k, gateway=LostAnswer())
    again = invoice_changes.create_invoice(manager, world.jane, _lines(world), due, k)
    assert again.replayed
    drafts = world.client().v1.invoices.list(params={"customer": world.jane, "status": "draft"}).data
    assert sorted(d.id for d in drafts) == sorted([world.draft, again.invoice_id])  # one new invoice
    assert world.invoice(again.invoice_id).total == 54550  # each line once
    assert _stored(again.invoice_id).total == 54550
    with session_scope() as s:
        intent = s.get(IdempotencyRecord, k)
        assert intent is not None and (intent.action, intent.result_id) == ("invoices.create", world.jane)


# One arranged world for all the cases: each refusal makes nothing, so they cannot disturb the next.
BAD_INVOICES = [
    ([], 14, "at least one line"),
    ([{"description": "A", "amount": 100, "currency": "usd"}] * 11, 14, "at most 10 lines"),
    ([{"description": "A", "amount": 0, "currency": "usd"}], 14, "more than zero"),
    ([{"description": "A", "amount": 100_000_000, "currency": "usd"}], 14, r"at most \$999,999.99"),
    ([{"description": "A", "amount": "12.00", "currency": "usd"}], 14, "whole number of cents"),
    ([{"description": "", "amount": 100, "currency": "usd"}], 14, "needs a description"),
    ([{"description": "A", "amount": 100, "currency": "dollars"}], 14, "three-letter code"),
    (
        [
            {"description": "A", "amount": 100, "currency": "usd"},
            {"description": "B", "amount": 1, "currency": "eur"},
        ],
        14,
        "mix EUR and USD",
    ),
    ([{"description": "A", "amount": 100, "currency": "usd", "tax": 1}], 14, "'tax'"),
    ([{"price_id": "price_nope", "quantity": 1}], 14, "does not know that price"),
    ([{"price_id": "MONTHLY", "quantity": 1}], 14, "recurring price"),
    ([{"price_id": "ARCHIVED", "quantity": 1}], 14, "archived"),
    ([{"price_id": "SETUP", "quantity": 0}], 14, "between 1 and 10,000"),
    ([{"description": "A", "amount": 100, "currency": "usd"}], -1, "has passed"),
    ([{"description": "A", "amount": 100, "currency": "usd"}], 400, "more than a year away"),
]


def test_bad_input_is_refused_in_words_and_nothing_is_made(world: World, manager: Actor) -> None:
    names = {"MONTHLY": world.monthly_price, "ARCHIVED": world.archived_price, "SETUP": world.setup_price}
    before = len(world.client().v1.invoices.list(params={"limit": 100}).data)
    for given, due_days, message in BAD_INVOICES:
        lines = [
            {**line, "price_id": names.get(line["price_id"], line["price_id"])} if "price_id" in line else line
            for line in given
        ]
        with pytest.raises(ValidationFailed, match=message):
            invoice_changes.create_invoice(manager, world.jane, lines, _due(due_days), key())
    assert len(world.client().v1.invoices.list(params={"limit": 100}).data) == before
    assert [r.outcome for r in _audit()] == ["failed"] * len(BAD_INVOICES)


# --- sending, voiding, writing off -----------------------------------------------------------------


def test_send_finalizes_a_draft_then_stripe_emails_it_and_the_same_key_sends_once(world: World, manager: Actor) -> None:
    k = key()
    sent = invoice_changes.send_invoice(manager, world.draft, k)
    assert sent.status == "open" and sent.number and not sent.replayed
    stored = _stored(world.draft)
    assert (stored.status, stored.number) == ("open", sent.number)
    assert (stored.raw or {}).get("hosted_invoice_url", "").startswith("https://")
    again = invoice_changes.send_invoice(manager, world.draft, k)
    assert again.replayed and again.number == sent.number
    assert (world.events("invoice.finalized", world.draft), world.events("invoice.sent", world.draft)) == (1, 1)
    assert [(r.action, r.outcome, r.details.get("replay", False)) for r in _audit()] == [
        ("invoices.send", "ok", False),
        ("invoices.send", "ok", True),
    ]
    assert _audit()[0].target_ids == [world.draft, world.jane]


def test_void_and_mark_uncollectible_show_in_the_store_at_once(world: World, manager: Actor) -> None:
    marked = invoice_changes.mark_uncollectible(manager, world.overdue, key())
    assert marked.status == "uncollectible" == _stored(world.overdue).status
    voided = invoice_changes.void_invoice(manager, world.overdue, key())  # an uncollectible one too
    assert voided.status == "void" == _stored(world.overdue).status == world.invoice(world.overdue).status
    assert invoice_changes.void_invoice(manager, world.overdue_2, key()).status == "void"
    assert [(r.action, r.outcome) for r in _audit()] == [
        ("invoices.mark_uncollectible", "ok"),
        ("invoices.void", "ok"),
        ("invoices.void", "ok"),
    ]


def test_what_stripe_would_refuse_is_refused_in_plain_words(world: World, manager: Actor) -> None:
    refusals = [
        (invoice_changes.void_invoice, "paid", "cannot void a paid invoice: refund its payment instead"),
        (invoice_changes.void_invoice, "draft", "never sent, so it cannot be voided"),
        (invoice_changes.mark_uncollectible, "draft", "is a draft"),
        (invoice_changes.mark_uncollectible, "paid", "is paid: there is nothing to write off"),
        (invoice_changes.send_invoice, "paid", "already paid"),
        (invoice_changes.send_invoice, "automatic", "charged to the customer's card automatically"),
    ]
    for write, which, message in refusals:
        invoice_id = getattr(world, which)
        status = world.invoice(invoice_id).status
        with pytest.raises(ValidationFailed, match=message):
            write(manager, invoice_id, key())
        assert world.invoice(invoice_id).status == status
    assert [r.outcome for r in _audit()] == ["failed"] * len(refusals)


def test_a_clerk_and_read_only_are_refused_every_write_and_audited(world: World, any_store_owner: Actor) -> None:
    for role in ("billing_clerk", "read_only"):
        who = member_actor(role, f"{role}@example.com")
        with pytest.raises(PermissionDenied, match="cannot create or send invoices"):
            invoice_changes.create_invoice(who, world.jane, _lines(world), _due(), key())
        for write in (invoice_changes.send_invoice, invoice_changes.void_invoice, invoice_changes.mark_uncollectible):
            with pytest.raises(PermissionDenied):
                write(who, world.overdue, key())
        with pytest.raises(PermissionDenied):
            invoice_changes.send_reminders(who, [world.overdue], key())
    assert world.invoice(world.overdue).status == "open" and world.invoice(world.draft).status == "draft"
    rows = _audit()
    assert {(r.action, r.actor_role) for r in rows} == {
        (action, role) for action in (*WRITES, "invoices.remind") for role in ("billing_clerk", "read_only")
    }
    assert {r.outcome for r in rows} == {"denied"}


def test_a_key_without_invoices_write_is_refused_with_what_to_enable(world: World, manager: Actor) -> None:
    limited = world.peer.restricted_key(profile="billy", without=["rak_invoice_write"])
    with pytest.raises(StripeKeyMissingPermission, match=r"“Invoices” to “Write”"):
        invoice_changes.void_invoice(manager, world.overdue, key(), gateway=StripeGateway(lambda: limited))
    with session_scope() as s:
        connection = s.exec(select(StripeConnection)).one()
        connection.permissions = {**connection.permissions, "rak_invoice_write": False}
        s.add(connection)
    with pytest.raises(StripeKeyMissingPermission, match="Stripe Dashboard"):
        invoice_changes.create_invoice(manager, world.jane, _lines(world), _due(), key())
    assert world.invoice(world.overdue).status == "open"
    assert len(world.client().v1.invoices.list(params={"customer": world.jane, "limit": 100}).data) == 5
    assert [r.outcome for r in _audit()] == ["failed", "failed"]


# --- reminders ----------------------------------------------------------------------------------------


class _RefuseRecipient:
    """An SMTP server that refuses every recipient, as a mail server refuses an unknown mailbox."""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        return "550 5.1.1 No such user here"


@pytest.fixture
def bouncing(smtp_catcher: CatcherHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[CatcherHandle]:
    """Mail goes to the catcher, except to bounce@example.com: a real server refuses that address."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(_RefuseRecipient(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        refusing = SmtpMailer(get_settings().model_copy(update={"smtp_port": controller.port}), retry_wait=0)
        catching = get_mailer()

        class Routing:
            def send(self, mail: OutgoingMail) -> None:
                (refusing if mail.to == "bounce@example.com" else catching).send(mail)

        monkeypatch.setattr(invoice_changes, "get_mailer", lambda: Routing())
        yield smtp_catcher
    finally:
        controller.stop()


def test_bulk_reminders_report_each_invoice_and_one_failure_hides_nothing(
    world: World, manager: Actor, bouncing: CatcherHandle
) -> None:
    ids = [world.overdue, world.overdue_nomail, world.overdue_bounce, world.overdue_2, world.paid, "in_nothere"]
    k = key()
    results = invoice_changes.send_reminders(manager, ids, k)
    assert [(r.invoice_id, r.outcome) for r in results] == [
        (world.overdue, "sent"),
        (world.overdue_nomail, "no_email"),
        (world.overdue_bounce, "mail_failed"),
        (world.overdue_2, "sent"),
        (world.paid, "not_open"),
        ("in_nothere", "not_found"),
    ]
    assert results[0].to == "jane@example.com" and "10 days overdue" in results[0].message
    assert "no email address" in results[1].message
    assert "refused the address" in results[2].message and "550" in results[2].message

    mails = {m.subject: m for m in bouncing.messages()}
    assert len(mails) == 2 and {m.to for m in mails.values()} == {"jane@example.com"}
    number = _stored(world.overdue).number
    (first,) = [m for m in mails.values() if number in m.subject]
    assert first.subject == f"Reminder: invoice {number} from Acme Ltd is 10 days overdue"
    assert "$120.00" in first.text and "10 days overdue" in first.text
    link = (_stored(world.overdue).raw or {})["hosted_invoice_url"]
    assert link in first.links

    rows = _audit()
    assert [(r.action, r.target_ids[0], r.outcome) for r in rows] == [
        ("invoices.remind", world.overdue, "ok"),
        ("invoices.remind", world.overdue_nomail, "failed"),
        ("invoices.remind", world.overdue_bounce, "failed"),
        ("invoices.remind", world.overdue_2, "ok"),
        ("invoices.remind", world.paid, "failed"),
        ("invoices.remind", "in_nothere", "failed"),
    ]
    assert rows[0].target_ids == [world.overdue, world.jane] and rows[0].amount == 12000
    assert rows[0].details["days_overdue"] == 10
    assert not any("@" in f"{r.details} {r.error}" for r in rows)  # customers by id only

    again = invoice_changes.send_reminders(manager, ids, k)  # the same submit, repeated
    assert [r.outcome for r in again][:4] == ["already_sent", "no_email", "mail_failed", "already_sent"]
    assert len(bouncing.messages()) == 2  # nothing sent twice


def test_a_reminder_run_is_capped_with_a_clear_message(world: World, manager: Actor) -> None:
    with pytest.raises(ValidationFailed, match="at most 200 invoices; you chose 201"):
        invoice_changes.send_reminders(manager, [f"in_{n}" for n in range(201)], key())
    with pytest.raises(ValidationFailed, match="at least one invoice"):
        invoice_changes.send_reminders(manager, [], key())
    assert [(r.action, r.outcome) for r in _audit()] == [("invoices.remind", "failed"), ("invoices.remind", "failed")]


# --- the dashboard's events, forged --------------------------------------------------------------------


def test_forged_invoice_events_from_a_clerk_are_refused_and_audited(world: World, any_store_owner: Actor) -> None:
    """The Clerk's pages hide every invoice control; a client that sends the events anyway is
    refused by the services, audited as denied, and nothing changes or is mailed."""
    clerk = member_actor("billing_clerk", "clerk@example.com")
    tokens = identity.login(clerk.email, MEMBER_PASSWORD, "127.0.0.1", "pytest-tab")
    cookie = f"{identity.ACCESS_COOKIE}={tokens.access}"
    with event_pipeline() as pipeline:
        page = pipeline.tab(cookie, path="/invoices")
        controls = page.send(InvoiceActionsState, "load_controls")
        assert (
            '"send_shown_rx_state_": true' not in controls.text
            and '"remind_shown_rx_state_": true' not in controls.text
        )
        for action in ("send", "remind", "void", "mark_uncollectible"):
            refused = page.send(InvoiceActionsState, "ask", {"action": action, "invoice_id": world.overdue})
            assert "cannot create or send invoices" in refused.text
        page.send(InvoiceActionsState, "confirm")  # no dialog was opened: nothing to confirm
        page.send(InvoicesState, "load")
        refused = page.send(InvoiceActionsState, "ask_bulk")
        assert "cannot create or send invoices" in refused.text
        page.send(InvoiceActionsState, "send_bulk")

        customer = pipeline.tab(cookie, path=f"/customers/{world.jane}")
        refused = customer.send(NewInvoiceState, "start", {"customer_id": world.jane})
        assert "cannot create or send invoices" in refused.text
        refused = customer.send(
            NewInvoiceState, "add_price_line", {"form": {"price_id": world.setup_price, "quantity": "1"}}
        )
        assert "cannot create or send invoices" in refused.text
        refused = customer.send(
            NewInvoiceState, "add_custom_line", {"form": {"description": "X", "amount": "10.00", "currency": "usd"}}
        )
        assert "cannot create or send invoices" in refused.text
        customer.send(NewInvoiceState, "create")
    assert world.invoice(world.overdue).status == "open" and world.invoice(world.draft).status == "draft"
    assert len(world.client().v1.invoices.list(params={"customer": world.jane, "limit": 100}).data) == 5
    rows = [r for r in _audit() if r.actor_email == "clerk@example.com"]
    assert {r.outcome for r in rows} == {"denied"}
    assert {r.action for r in rows} == {
        "invoices.send",
        "invoices.remind",
        "invoices.void",
        "invoices.mark_uncollectible",
        "invoices.create",
    }


def test_a_manager_works_an_invoice_through_the_dashboard_events(world: World, manager: Actor) -> None:
    """The same handlers for a Manager: a new draft from the dialog, then Send from its row."""
    tokens = identity.login(manager.email, MEMBER_PASSWORD, "127.0.0.1", "pytest-tab")
    with event_pipeline() as pipeline:
        tab = pipeline.tab(f"{identity.ACCESS_COOKIE}={tokens.access}", path=f"/customers/{world.jane}")
        assert '"create_shown_rx_state_": true' in tab.send(InvoiceActionsState, "load_controls").text
        tab.send(NewInvoiceState, "start", {"customer_id": world.jane})
        tab.send(NewInvoiceState, "add_price_line", {"form": {"price_id": world.setup_price, "quantity": "2"}})
        shown = tab.send(
            NewInvoiceState, "add_custom_line", {"form": {"description": "Rush", "amount": "45.50", "currency": "usd"}}
        )
        assert "$545.50" in shown.text
        tab.send(NewInvoiceState, "create")
        drafts = world.client().v1.invoices.list(params={"customer": world.jane, "status": "draft"}).data
        (made,) = [d for d in drafts if d.id != world.draft]
        assert made.total == 54550 and _stored(made.id).status == "draft"
        asked = tab.send(InvoiceActionsState, "ask", {"action": "send", "invoice_id": made.id})
        assert "Stripe finalizes invoice" in asked.text
        tab.send(InvoiceActionsState, "confirm")
    assert world.invoice(made.id).status == "open" and _stored(made.id).status == "open"


def test_new_invoice_starts_only_for_the_customer_the_address_shows(world: World, manager: Actor) -> None:
    """Moving from one customer's page to another's, the page shows the previous customer until it
    has loaded; a "New invoice" click in that moment (the previous customer's id) is refused rather
    than starting a draft for a customer the address no longer names."""
    tokens = identity.login(manager.email, MEMBER_PASSWORD, "127.0.0.1", "pytest-tab")
    other = world.client().v1.customers.create(params={"email": "someone-else@example.com"}).id
    with event_pipeline() as pipeline:
        tab = pipeline.tab(f"{identity.ACCESS_COOKIE}={tokens.access}", path=f"/customers/{other}")
        stale = tab.send(NewInvoiceState, "start", {"customer_id": world.jane})
        assert "still opening its customer" in stale.text
        assert '"open_rx_state_": true' not in stale.text
        opened = tab.send(NewInvoiceState, "start", {"customer_id": other})
        assert '"open_rx_state_": true' in opened.text
