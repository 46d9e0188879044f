"""CSV exports (issue 12): every list and the dashboard's two reports, streamed from the store with
the list's filters, on SQLite and PostgreSQL; the download route and its single-use tickets.

Rows go straight into the store as in tests/test_reports.py; times are fixed at `NOW`
(Wednesday 18 March 2026, 12:00 UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from billy_app.api.routes import build_api
from services import audit_viewer, clock, exports, identity
from services.db import session_scope
from services.errors import NotFound, PlanLimitReached, ValidationFailed
from services.exports import CustomerFilters
from services.models import AuditEntry, Organization, StripeCharge, StripeProduct
from services.permissions import Actor
from services.reports import ChargeFilters, InvoiceFilters, SubscriptionFilters
from tests.conftest import member_actor
from tests.test_reports import DAY, NOW, T, add, charge, customer, invoice, refund, subscription

# --- the store, as every test here sees it ----------------------------------------------------------


@pytest.fixture
def seeded(any_store_owner: Actor) -> Actor:
    """Two customers (and a deleted one), four charges (one deleted), two subscriptions, three invoices."""
    add(
        customer("cus_alice", "Alice Archer", "alice@example.com"),
        customer("cus_bob", "Bob Baker", "bob@shop.example"),
        customer("cus_gone", "Gone", "gone@example.com", deleted=True),
        StripeProduct(id="prod_pro", name="Pro", created=T - 500 * DAY),
        charge("ch_1", 12345, T - 1 * DAY, customer_id="cus_alice"),
        charge("ch_2", 5000, T - 2 * DAY, customer_id="cus_bob", status="failed", reason="insufficient_funds"),
        charge("ch_3", 1500, T - 10 * DAY, currency="jpy", refunded=500),
        charge("ch_gone", 999, T - 3 * DAY, customer_id="cus_alice", deleted=True),
        refund("re_1", "ch_3", 500, T - 9 * DAY, currency="jpy"),
        invoice("in_1", "open", 20000, due=T - 3 * DAY, created=T - 20 * DAY),
        invoice("in_2", "paid", 9900, remaining=0, customer_id="cus_bob", created=T - 30 * DAY),
        invoice("in_3", "open", 1000, due=T + 5 * DAY, remaining=500, created=T - 5 * DAY),
    )
    subscription("sub_1", "active", [(4900, "month", 2)], created=T - 60 * DAY)
    subscription("sub_2", "canceled", [(12000, "year", 1)], customer_id="cus_bob", created=T - 90 * DAY)
    return any_store_owner


def csv_of(actor: Actor, kind: str, filters: object | None = None, sort: str = "newest") -> str:
    with clock.freeze(NOW):
        return "".join(exports.stream(actor, kind, filters, sort))


def ids(text: str) -> list[str]:
    return [line.split(",", 1)[0] for line in text.split("\r\n")[1:] if line]


def audit_rows(action: str) -> list[AuditEntry]:
    with session_scope() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))  # type: ignore[arg-type]


def set_plan(plan: str) -> None:
    with session_scope() as s:
        org = s.get(Organization, 1)
        assert org is not None
        org.plan = plan


# --- exact content ---------------------------------------------------------------------------------------

CHARGES_CSV = (
    "Charge ID,Created (UTC),Customer ID,Customer name,Customer email,Description,Card,Amount,Refunded,"
    "Currency,Status,Failure reason,Failure message\r\n"
    "ch_1,2026-03-17T12:00:00Z,cus_alice,Alice Archer,alice@example.com,Charge ch_1,,123.45,0.00,USD,Succeeded,,\r\n"
    "ch_2,2026-03-16T12:00:00Z,cus_bob,Bob Baker,bob@shop.example,Charge ch_2,,50.00,0.00,USD,Failed,"
    "Insufficient funds,Your card was declined.\r\n"
    "ch_3,2026-03-08T12:00:00Z,,,,Charge ch_3,,1500,500,JPY,Partly refunded (¥500),,\r\n"
)
SUBSCRIPTIONS_CSV = (
    "Subscription ID,Created (UTC),Customer ID,Customer name,Customer email,Status,Plan,MRR,Currency,"
    "Counts in MRR,Current period ends (UTC),Cancels at period end,Canceled at (UTC)\r\n"
    "sub_1,2026-01-17T12:00:00Z,cus_alice,Alice Archer,alice@example.com,Active,Pro × 2,98.00,USD,yes,,no,\r\n"
    "sub_2,2025-12-18T12:00:00Z,cus_bob,Bob Baker,bob@shop.example,Canceled,Pro,10.00,USD,no,,no,\r\n"
)
INVOICES_CSV = (
    "Invoice ID,Number,Created (UTC),Customer ID,Customer name,Customer email,Status,Total,Amount remaining,"
    "Currency,Due (UTC),Overdue\r\n"
    "in_3,INV-3,2026-03-13T12:00:00Z,cus_alice,Alice Archer,alice@example.com,Open,10.00,5.00,USD,"
    "2026-03-23T12:00:00Z,no\r\n"
    "in_1,INV-1,2026-02-26T12:00:00Z,cus_alice,Alice Archer,alice@example.com,Overdue,200.00,200.00,USD,"
    "2026-03-15T12:00:00Z,yes\r\n"
    "in_2,INV-2,2026-02-16T12:00:00Z,cus_bob,Bob Baker,bob@shop.example,Paid,99.00,0.00,USD,,no\r\n"
)
CUSTOMERS_CSV = (
    "Customer ID,Name,Email,Created (UTC)\r\n"
    "cus_bob,Bob Baker,bob@shop.example,2025-02-11T12:00:00Z\r\n"
    "cus_alice,Alice Archer,alice@example.com,2025-02-11T12:00:00Z\r\n"
)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("charges", CHARGES_CSV),
        ("subscriptions", SUBSCRIPTIONS_CSV),
        ("invoices", INVOICES_CSV),
        ("customers", CUSTOMERS_CSV),
        ("failed-payments", CHARGES_CSV.split("\r\n")[0] + "\r\n" + CHARGES_CSV.split("\r\n")[2] + "\r\n"),
        ("overdue-invoices", INVOICES_CSV.split("\r\n")[0] + "\r\n" + INVOICES_CSV.split("\r\n")[2] + "\r\n"),
    ],
)
def test_each_export_is_exactly_the_lists_rows(seeded: Actor, kind: str, expected: str) -> None:
    """Amounts as decimals in their currency's units (JPY has none), times ISO UTC, deleted rows left out."""
    assert csv_of(seeded, kind) == expected


def test_an_export_walks_every_page_once_in_the_lists_order(seeded: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exports, "PAGE_ROWS", 1)
    monkeypatch.setattr(exports, "CHUNK_CHARS", 1)  # a chunk per row: the stream never holds the file
    assert csv_of(seeded, "charges") == CHARGES_CSV
    assert ids(csv_of(seeded, "charges", sort="amount_asc")) == ["ch_3", "ch_2", "ch_1"]  # minor units, as the list
    with clock.freeze(NOW):
        chunks = list(exports.stream(seeded, "invoices"))
    assert len(chunks) == 4 and "".join(chunks) == INVOICES_CSV


# --- filters -----------------------------------------------------------------------------------------------


def test_the_lists_filters_apply(seeded: Actor) -> None:
    assert ids(csv_of(seeded, "charges", ChargeFilters(status="failed"))) == ["ch_2"]
    week = ChargeFilters(date_from=NOW - timedelta(days=3), date_to=NOW - timedelta(days=1, hours=1))
    assert ids(csv_of(seeded, "charges", week)) == ["ch_2"]
    assert ids(csv_of(seeded, "charges", ChargeFilters(currency="jpy"))) == ["ch_3"]
    assert ids(csv_of(seeded, "charges", ChargeFilters(customer="alice"))) == ["ch_1"]
    assert ids(csv_of(seeded, "invoices", InvoiceFilters(status="overdue"))) == ["in_1"]
    assert ids(csv_of(seeded, "invoices", InvoiceFilters(customer="cus_bob"))) == ["in_2"]
    assert ids(csv_of(seeded, "subscriptions", SubscriptionFilters(status="active"))) == ["sub_1"]
    assert ids(csv_of(seeded, "customers", CustomerFilters("bob"))) == ["cus_bob"]


def test_a_filter_the_list_refuses_is_refused_and_logged_as_failed(seeded: Actor) -> None:
    with pytest.raises(ValidationFailed, match="Choose a status"):
        csv_of(seeded, "charges", ChargeFilters(status="bogus"))
    with pytest.raises(ValidationFailed, match="not ones this list understands"):
        csv_of(seeded, "charges", InvoiceFilters())
    with pytest.raises(NotFound):
        csv_of(seeded, "payouts")
    assert [r.outcome for r in audit_rows("charges.export")] == ["failed", "failed"]


def test_the_audit_row_holds_the_filters_and_the_row_count_but_no_customer_text(seeded: Actor) -> None:
    csv_of(seeded, "charges", ChargeFilters(status="failed", customer="bob@shop", date_from=NOW - timedelta(days=7)))
    csv_of(seeded, "overdue-invoices")
    (row,) = audit_rows("charges.export")
    assert row.outcome == "ok" and row.actor_id == seeded.user_id
    assert row.details == {
        "kind": "charges",
        "filters": {"status": "failed", "customer": "(text)", "date_from": "2026-03-11T12:00:00+00:00"},
        "sort": "newest",
        "rows": 1,
    }
    (report,) = audit_rows("reports.export")
    assert report.details["kind"] == "overdue-invoices" and report.details["rows"] == 1


def test_a_reader_that_stops_midway_is_logged_as_interrupted(seeded: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    """A browser that goes away closes the stream (the route does, whatever ends the response)."""
    monkeypatch.setattr(exports, "PAGE_ROWS", 1)
    monkeypatch.setattr(exports, "CHUNK_CHARS", 1)
    with clock.freeze(NOW):
        stream = exports.stream(seeded, "charges")
        assert next(stream).startswith("Charge ID,") and next(stream).startswith("ch_1,")
        stream.close()
    (row,) = audit_rows("charges.export")
    assert (row.outcome, row.error) == ("failed", "Interrupted after 1 rows.")
    assert row.details["rows"] == 1 and row.details["interrupted"] is True


# --- who may export ----------------------------------------------------------------------------------------


def test_starter_is_refused_whatever_the_actor_was_built_with_and_it_is_logged(seeded: Actor) -> None:
    """The plan is read from the store at the moment of the export, not from the Actor."""
    set_plan("starter")
    assert seeded.plan == "business"  # as built: stale on purpose
    with pytest.raises(PlanLimitReached, match="Exports come with the Pro and Business plans"):
        csv_of(seeded, "charges")
    with pytest.raises(PlanLimitReached):
        exports.issue_ticket(seeded, "invoices")
    assert [(r.outcome, r.action) for r in audit_rows("charges.export") + audit_rows("invoices.export")] == [
        ("denied", "charges.export"),
        ("denied", "invoices.export"),
    ]
    starter = identity.verify_access(identity.start_session(seeded.user_id or 0).access)
    assert exports.button_for(starter) == exports.ExportButton(True, "Exports come with the Pro and Business plans.")


@pytest.mark.parametrize("role", ["read_only", "billing_clerk", "billing_manager"])
def test_every_role_on_pro_may_export(seeded: Actor, role: str) -> None:
    member = member_actor(role, f"{role}@example.com")
    assert csv_of(member, "charges") == CHARGES_CSV
    assert audit_rows("charges.export")[0].actor_role == role
    assert exports.button_for(member) == exports.ExportButton(True, "")


def test_cells_a_spreadsheet_would_run_are_written_as_text(any_store_owner: Actor) -> None:
    add(
        customer("cus_evil", '=HYPERLINK("http://x.example","go")', "@evil.example"),
        charge("ch_evil", 100, T, customer_id="cus_evil"),
    )
    with session_scope() as s:
        row = s.get(StripeCharge, "ch_evil")
        assert row is not None
        row.description = "+cmd|' /C calc'!A0"
        row.failure_message = "-2+3"
    text = csv_of(any_store_owner, "charges")
    assert '\'=HYPERLINK(""http://x.example"",""go"")' in text
    assert ",'@evil.example," in text and ",'+cmd|' /C calc'!A0," in text and text.endswith(",'-2+3\r\n")
    assert ",1.00,0.00,USD," in text  # our own numbers are numbers
    assert audit_viewer.safe_cell is exports.safe_cell  # one guard for every CSV Billy writes


# --- the download route ---------------------------------------------------------------------------------------


@pytest.fixture
def client(any_store: Any) -> TestClient:
    return TestClient(build_api(), base_url="http://localhost:3000", follow_redirects=False)


def signed_in(client: TestClient, actor: Actor) -> Actor:
    """Sign `actor` in on `client` (the access cookie) and return the Actor of that sign-in."""
    tokens = identity.start_session(actor.user_id or 0, "127.0.0.1", "pytest")
    client.cookies.set(identity.ACCESS_COOKIE, tokens.access)
    return identity.verify_access(tokens.access)


def test_the_route_streams_the_same_bytes_with_download_headers(seeded: Actor, client: TestClient) -> None:
    me = signed_in(client, seeded)
    with clock.freeze(NOW):
        ticket = exports.issue_ticket(me, "charges", ChargeFilters(status="failed"))
        response = client.get(exports.download_url("charges", ticket))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-disposition"] == 'attachment; filename="billy-charges-20260318-120000.csv"'
    assert response.content == csv_of(me, "charges", ChargeFilters(status="failed")).encode()
    assert ids(response.text) == ["ch_2"]
    first, _again = audit_rows("charges.export")
    assert first.outcome == "ok" and first.details["rows"] == 1 and first.details["filters"] == {"status": "failed"}


def test_a_spent_tampered_expired_or_misdirected_ticket_is_refused_and_logged(
    seeded: Actor, client: TestClient
) -> None:
    me = signed_in(client, seeded)
    ticket = exports.issue_ticket(me, "invoices", InvoiceFilters(status="overdue"))
    url = exports.download_url("invoices", ticket)
    assert client.get(url).status_code == 200
    spent = client.get(url)
    assert spent.status_code == 403 and "already used" in spent.text

    forged = exports.issue_ticket(me, "invoices")
    tampered = client.get(exports.download_url("invoices", forged[:-3] + ("AAA" if forged[-3:] != "AAA" else "BBB")))
    assert tampered.status_code == 403 and "not valid" in tampered.text
    assert client.get(f"/api/exports/invoices.csv?ticket={exports.issue_ticket(me, 'charges')}").status_code == 403

    late = exports.issue_ticket(me, "invoices")
    with clock.travel(exports.TICKET_LIFETIME + timedelta(seconds=1)):
        expired = client.get(exports.download_url("invoices", late))
    assert expired.status_code == 403 and "expired" in expired.text

    clerk = member_actor("billing_clerk", "clerk@example.com")
    other_client = TestClient(build_api(), base_url="http://localhost:3000", follow_redirects=False)
    theirs = exports.issue_ticket(signed_in(other_client, clerk), "invoices")
    stolen = client.get(exports.download_url("invoices", theirs))
    assert stolen.status_code == 403 and "another sign-in" in stolen.text
    assert other_client.get(exports.download_url("invoices", theirs)).status_code == 200  # still theirs to use

    outcomes = [(r.outcome, r.actor_email) for r in audit_rows("invoices.export")]
    assert outcomes == [
        ("ok", seeded.email),
        ("denied", seeded.email),  # spent
        ("denied", seeded.email),  # tampered
        ("denied", seeded.email),  # a charges ticket on the invoices export
        ("denied", seeded.email),  # expired
        ("denied", seeded.email),  # another member's
        ("ok", "clerk@example.com"),
    ]


def test_the_route_reads_role_and_plan_again_when_the_download_starts(seeded: Actor, client: TestClient) -> None:
    me = signed_in(client, seeded)
    ticket = exports.issue_ticket(me, "customers", CustomerFilters("ali"))
    set_plan("starter")
    refused = client.get(exports.download_url("customers", ticket))
    assert refused.status_code == 403 and "Exports come with the Pro and Business plans" in refused.text
    assert [r.outcome for r in audit_rows("customers.export")] == ["denied"]


def test_the_route_wants_a_signed_in_member_and_a_known_export(seeded: Actor, client: TestClient) -> None:
    ticket = exports.issue_ticket(signed_in(client, seeded), "charges")
    assert client.get("/api/exports/payouts.csv?ticket=x").status_code == 404
    client.cookies.clear()
    anonymous = client.get(exports.download_url("charges", ticket))
    assert anonymous.status_code == 401 and anonymous.headers["cache-control"] == "no-store"


def test_filters_survive_the_ticket_exactly(seeded: Actor) -> None:
    wanted = ChargeFilters(
        status="succeeded",
        date_from=datetime(2026, 3, 1, tzinfo=UTC),
        date_to=datetime(2026, 3, 18, tzinfo=UTC),
        amount_min=100,
        currency="usd",
        customer="alice",
    )
    me = identity.verify_access(identity.start_session(seeded.user_id or 0).access)
    order = exports.redeem(me, "charges", exports.issue_ticket(me, "charges", wanted, "amount_desc"))
    assert order == exports.ExportOrder("charges", wanted, "amount_desc")
