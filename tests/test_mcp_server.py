"""Billy's MCP endpoint (issue 13) through the official `mcp` client over Streamable HTTP, against
the MCP app served on a real port, the demo data in the Stripe sandbox, and both stores.

Nothing of the protocol is mocked: the client lists and calls tools as Claude Desktop would, with
a bearer agent token (or an access JWT), and the assertions read what it gets back, what Stripe
(the sandbox) now holds, and the audit log.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from sqlmodel import select

from billy_app.mcp.writes import idempotency_key_for
from controlplane.local_http import local_http
from devtools.mailcatcher import CatcherHandle
from sandbox.seed import FAILURE_SOURCES, plan, reset_to_demo
from services import agent_tokens, billing, clock, customers, identity, reports, spend, stripe_keys
from services.agent_tokens import ScopeRequest
from services.db import session_scope
from services.models import AuditEntry, IdempotencyRecord
from services.permissions import Actor
from tests.conftest import StripePeer, member_actor
from tests.mcp_helpers import Seen, Served, connect, data, error, serve_app, serve_mcp, text
from tests.stripe_helpers import make_charge, sync_lists

MEMBER_PASSWORD = "another-long-password"  # `member_actor`'s
WRITES = (
    "refund",
    "refund_confirmation_email",
    "refund_request",
    "invoice_reminders",
    "payment_update_emails",
    "customer_update",
    "subscription_change",
    "subscription_pause",
    "subscription_resume",
    "subscription_cancel",
    "subscription_reactivate",
    "invoice_create",
    "invoice_send",
    "invoice_void",
    "invoice_mark_uncollectible",
)
READS = (
    "whoami",
    "search_customers",
    "customer_details",
    "find_charges",
    "failed_payments",
    "overdue_invoices",
    "list_subscriptions",
    "subscription_details",
    "list_invoices",
    "invoice_details",
)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve_mcp() as running:
        yield running


@dataclass
class Demo:
    peer: StripePeer
    owner: Actor
    jane_charge: str  # order #5678, $45.99

    def refunds_of(self, charge_id: str) -> list[Any]:
        return list(self.peer.secret_client().v1.refunds.list(params={"charge": charge_id}).data)


@pytest.fixture
def demo(any_store: Any, any_store_owner: Actor, stripe_peer: StripePeer) -> Demo:
    """The sandbox's demo data (Jane Smith's order #5678 at $45.99 among 50 customers), synced."""
    reset_to_demo(stripe_peer.url, customers=50)
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    sync_lists()
    jane = reports.search_charges(any_store_owner, reports.ChargeFilters(customer="jane smith"), limit=50)
    (charge,) = [c for c in jane.items if c.amount.amount == 4599]
    return Demo(stripe_peer, any_store_owner, charge.id)


def agent(role: str, email: str, **scope: Any) -> tuple[str, Actor, str]:
    """A member with `role` and an agent token of theirs: (secret, member, token id)."""
    member = member_actor(role, email)
    issued = agent_tokens.issue_token(member, "Claude Desktop", ScopeRequest(**scope))
    return issued.secret, member, issued.id


def audit_rows(action: str) -> list[AuditEntry]:
    with session_scope() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def confirm_of(preview: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    assert preview["allowed"], preview["refusal"]
    return preview["confirm_tool"], dict(preview["confirm_arguments"])


# --- the door itself --------------------------------------------------------------------------------


def test_the_tools_are_listed_with_bounded_inputs_and_unauthenticated_calls_get_a_401(
    served: Served, any_store: Any, any_store_owner: Actor
) -> None:
    secret = agent_tokens.issue_token(any_store_owner, "Claude Desktop", ScopeRequest()).secret

    async def scenario() -> tuple[dict[str, Any], str]:
        async with connect(served.url, secret) as session:
            listed = await session.list_tools()
            wrong = await session.call_tool("preview_refund", {"charge_id": "ch_1", "amount": 0})
        return {t.name: t for t in listed.tools}, error(wrong)

    tools, wrong = anyio.run(scenario)
    writes = {f"{step}_{name}" for name in WRITES for step in ("preview", "confirm")}
    assert set(tools) == set(READS) | writes
    assert all(t.description and t.output_schema for t in tools.values())
    amount = tools["preview_refund"].input_schema["properties"]["amount"]["anyOf"][0]
    assert (amount["minimum"], amount["maximum"]) == (1, 99_999_999)
    assert tools["find_charges"].input_schema["properties"]["limit"]["maximum"] == 50
    assert tools["confirm_refund"].input_schema["required"] == ["charge_id", "confirmation_token"]
    assert tools["failed_payments"].annotations.read_only_hint and tools["confirm_refund"].annotations.destructive_hint
    # A wrong argument gets one plain sentence, not pydantic's report.
    assert wrong == "These arguments do not fit preview_refund: amount: Input should be greater than or equal to 1."

    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    accept = {"Accept": "application/json, text/event-stream"}
    for headers in (accept, {**accept, "Authorization": "Bearer billy_at_" + "x" * 44}):
        refused = local_http().post(served.url, json=hello, headers=headers, timeout=10)
        assert refused.status_code == 401
        www = refused.headers["www-authenticate"]
        assert www.startswith('Bearer error="invalid_token"')
        assert refused.json()["error"]["message"].startswith(("Send `Authorization: Bearer", "This agent token is not"))
        assert f'resource_metadata="{served.base}/.well-known/oauth-protected-resource/mcp"' in www
    metadata = local_http().get(f"{served.base}/.well-known/oauth-protected-resource/mcp", timeout=10).json()
    assert metadata["resource"] == served.url and metadata["authorization_servers"] == [served.base]


def test_an_access_jwt_acts_as_its_member_and_whoami_says_the_limits(served: Served, demo: Demo) -> None:
    member_actor("billing_clerk", "clerk@example.com")
    access = identity.login("clerk@example.com", MEMBER_PASSWORD, "127.0.0.1", "pytest").access
    scoped, _, _ = agent("billing_manager", "manager@example.com", refund_caps={"usd": 2500})

    async def scenario() -> tuple[dict[str, Any], str, dict[str, Any]]:
        async with connect(served.url, access) as session:
            me = data(await session.call_tool("whoami", {}))
            found = text(await session.call_tool("find_charges", {"order_number": "#5678"}))
        async with connect(served.url, scoped) as session:
            lowered = data(await session.call_tool("whoami", {}))
        return me, found, lowered

    me, found, lowered = anyio.run(scenario)
    assert (me["email"], me["role"], me["refund_limits"][0]["text"]) == (
        "clerk@example.com",
        "Billing Clerk",
        "$100.00",
    )
    assert "$45.99 to Jane Smith (jane.smith@example.com)" in found
    assert (lowered["role"], lowered["refund_limits"][0]["text"]) == ("Billing Manager", "$25.00")


# --- the docs' refund conversation ------------------------------------------------------------------


def test_a_clerk_refunds_order_5678_in_two_steps_and_the_audit_row_says_agent(served: Served, demo: Demo) -> None:
    secret, _, token_id = agent("billing_clerk", "clerk@example.com")

    async def scenario() -> tuple[dict[str, Any], str, dict[str, Any], dict[str, Any]]:
        async with connect(served.url, secret) as session:
            found = data(await session.call_tool("find_charges", {"order_number": "order #5678"}))
            (charge,) = found["charges"]
            preview = await session.call_tool("preview_refund", {"charge_id": charge["id"]})
            tool, arguments = confirm_of(data(preview))
            done = data(await session.call_tool(tool, arguments))
        return charge, text(preview), data(preview), done

    charge, said, preview, done = anyio.run(scenario)
    assert (charge["id"], charge["amount"]["text"], charge["customer"]["name"]) == (
        demo.jane_charge,
        "$45.99",
        "Jane Smith",
    )
    assert charge["order_number"] == "5678" and charge["refundable"]["amount"] == 4599
    assert said.startswith("That's a $45.99 charge (order 5678) to Jane Smith (jane.smith@example.com).")
    assert "$45.99 is within what you may refund (your limit is $100.00 per charge)" in said
    assert preview["confirm_arguments"]["amount"] == 4599 and preview["details"]["card"]
    assert done["summary"].startswith(f"Done: refund {done['details']['refund_id']} of $45.99 issued.")
    assert [(r.id, r.amount) for r in demo.refunds_of(demo.jane_charge)] == [(done["details"]["refund_id"], 4599)]
    with session_scope() as s:  # Stripe's idempotency key came from the confirmation token
        intent = s.get(IdempotencyRecord, idempotency_key_for(preview["confirm_arguments"]["confirmation_token"]))
        assert intent is not None and intent.result_id == done["details"]["refund_id"]
    (row,) = [r for r in audit_rows("charges.refund") if r.outcome == "ok"]
    assert (row.source, row.actor_email, row.amount, row.target_ids[0]) == (
        "agent",
        "clerk@example.com",
        4599,
        demo.jane_charge,
    )
    assert (row.details["agent_token"], row.details["client"], row.user_agent) == (
        token_id,
        "Claude Desktop",
        "pytest-mcp-client",
    )
    # The reads before it are on record too, one row per tool call, with the token.
    reads = [(r.source, r.details["call"], r.details["agent_token"]) for r in audit_rows("agents.read")]
    assert reads == [("agent", "tool find_charges", token_id), ("agent", "tool preview_refund", token_id)]


def test_a_clerk_is_refused_5000_with_the_cap_named_and_offered_the_approval_request(
    served: Served, demo: Demo
) -> None:
    big = make_charge(demo.peer, 500_000, description="Order #9999")["id"]
    sync_lists()
    secret, _, _ = agent("billing_clerk", "clerk@example.com")

    async def scenario() -> tuple[dict[str, Any], str, str, dict[str, Any]]:
        async with connect(served.url, secret) as session:
            preview = data(await session.call_tool("preview_refund", {"charge_id": big}))
            forged = {"charge_id": big, "amount": 500_000, "confirmation_token": "billy_cf_" + "f" * 32}
            refused = error(await session.call_tool("confirm_refund", forged))
            asked = await session.call_tool(
                "preview_refund_request", {"charge_id": big, "note": "Customer returned the whole order."}
            )
            tool, arguments = confirm_of(data(asked))
            request = data(await session.call_tool(tool, arguments))
        return preview, refused, text(asked), request

    preview, refused, asked, request = anyio.run(scenario)
    assert preview["allowed"] is False and preview["confirm_tool"] is None and preview["confirm_arguments"] is None
    assert preview["refusal"] == (
        "This would bring refunds on this charge to $5,000.00, over your Billing Clerk limit of $100.00 per charge."
    )
    assert "preview_refund_request" in preview["instead"]
    assert "not known" in refused
    assert "over your Billing Clerk limit of $100.00" in asked
    assert request["details"]["status"] == "pending" and "waiting for an approver" in request["summary"]
    assert demo.refunds_of(big) == []
    assert [r.outcome for r in audit_rows("refunds.request")] == ["ok"]


def test_a_freeze_stops_an_agent_mid_conversation_and_lifting_it_lets_it_go_on(served: Served, demo: Demo) -> None:
    """Issue 15: previewed before the freeze, confirmed after it: refused; reads go on."""
    secret, clerk, _ = agent("billing_clerk", "clerk@example.com")

    async def scenario() -> tuple[str, dict[str, Any], dict[str, Any]]:
        async with connect(served.url, secret) as session:
            tool, arguments = confirm_of(
                data(await session.call_tool("preview_refund", {"charge_id": demo.jane_charge}))
            )
            spend.set_freeze(demo.owner, f"member:{clerk.user_id or 0}")
            refused = error(await session.call_tool(tool, arguments))
            still_reads = data(await session.call_tool("whoami", {}))
            spend.set_freeze(demo.owner, f"member:{clerk.user_id or 0}", frozen=False)
            again = data(await session.call_tool("preview_refund", {"charge_id": demo.jane_charge}))
            done = data(await session.call_tool(*confirm_of(again)))
        return refused, still_reads, done

    refused, still_reads, done = anyio.run(scenario)
    assert "The Owner has frozen your changes" in refused
    assert still_reads["email"] == "clerk@example.com"
    assert [r.id for r in demo.refunds_of(demo.jane_charge)] == [done["details"]["refund_id"]]


# --- who may write -----------------------------------------------------------------------------------


def _write_samples(demo: Demo) -> dict[str, dict[str, Any]]:
    """Valid arguments for every write, on real objects of the demo data."""
    owner = demo.owner
    subscription = reports.search_subscriptions(owner, reports.SubscriptionFilters(status="active"), limit=1).items[0]
    invoice = reports.search_invoices(owner, reports.InvoiceFilters(status="open"), limit=1).items[0]
    customer = invoice.customer.id
    return {
        "refund": {"charge_id": demo.jane_charge, "amount": 1000},
        "refund_confirmation_email": {"refund_id": "re_madeearlier"},
        "refund_request": {"charge_id": demo.jane_charge, "note": "Please approve."},
        "invoice_reminders": {"invoice_ids": [invoice.id]},
        "payment_update_emails": {"customer_ids": [customer]},
        "customer_update": {"customer_id": customer, "email": "new@example.com"},
        "subscription_change": {"subscription_id": subscription.id, "price_id": "price_x", "quantity": 2},
        "subscription_pause": {"subscription_id": subscription.id, "behavior": "void"},
        "subscription_resume": {"subscription_id": subscription.id},
        "subscription_cancel": {"subscription_id": subscription.id},
        "subscription_reactivate": {"subscription_id": subscription.id},
        "invoice_create": {
            "customer_id": customer,
            "lines": [{"description": "Work", "amount": 1000, "currency": "usd"}],
            "due_on": "2030-01-31",
        },
        "invoice_send": {"invoice_id": invoice.id},
        "invoice_void": {"invoice_id": invoice.id},
        "invoice_mark_uncollectible": {"invoice_id": invoice.id},
    }


def test_read_only_is_refused_every_write_tool(served: Served, demo: Demo) -> None:
    secret, _, _ = agent("read_only", "viewer@example.com")
    samples = _write_samples(demo)
    assert set(samples) == set(WRITES)
    forged = "billy_cf_" + "r" * 32

    async def scenario() -> dict[str, str]:
        answers: dict[str, str] = {}
        async with connect(served.url, secret) as session:
            for name, arguments in samples.items():
                answers[f"preview_{name}"] = error(await session.call_tool(f"preview_{name}", arguments))
                extra = {"proration_date": 0} if name == "subscription_change" else {}
                confirm = {**arguments, **extra, "confirmation_token": forged}
                answers[f"confirm_{name}"] = error(await session.call_tool(f"confirm_{name}", confirm))
            assert data(await session.call_tool("overdue_invoices", {}))["customer_count"] >= 1  # reading still works
        return answers

    answers = anyio.run(scenario)
    assert len(answers) == 2 * len(WRITES)
    for tool, message in answers.items():
        assert message.startswith("Your role (Read Only) cannot "), (tool, message)
    assert demo.refunds_of(demo.jane_charge) == []
    with session_scope() as s:
        done = s.exec(select(AuditEntry).where(AuditEntry.outcome == "ok", AuditEntry.source == "agent")).all()
        assert [r.action for r in done] == ["agents.read"]  # only the read; no write went through


def test_a_read_only_scoped_manager_token_is_refused_a_10_dollar_refund(served: Served, demo: Demo) -> None:
    secret, _, _ = agent("billing_manager", "manager@example.com", read_only=True)
    arguments = {"charge_id": demo.jane_charge, "amount": 1000}

    async def scenario() -> tuple[str, str, dict[str, Any]]:
        async with connect(served.url, secret) as session:
            preview = error(await session.call_tool("preview_refund", arguments))
            confirm = error(
                await session.call_tool("confirm_refund", {**arguments, "confirmation_token": "billy_cf_" + "m" * 32})
            )
            found = data(await session.call_tool("find_charges", {"charge_id": demo.jane_charge}))
        return preview, confirm, found

    preview, confirm, found = anyio.run(scenario)
    assert preview == confirm == ("This agent token is read-only: it cannot issue refunds, whatever your role allows.")
    assert found["charges"][0]["refundable"]["text"] == "$45.99"
    assert demo.refunds_of(demo.jane_charge) == []


def test_a_revoked_token_gets_an_authentication_error_at_its_next_call(served: Served, demo: Demo) -> None:
    secret, clerk, token_id = agent("billing_clerk", "clerk@example.com")
    seen, again = Seen(), Seen()

    async def scenario() -> tuple[dict[str, Any], MCPError]:
        async with connect(served.url, secret, seen) as session:
            before = data(await session.call_tool("whoami", {}))
            agent_tokens.revoke_token(clerk, token_id)
            with pytest.raises(MCPError) as refused:
                await session.call_tool("whoami", {})
        return before, refused.value

    before, refused = anyio.run(scenario)
    assert before["email"] == "clerk@example.com"
    revoked = "This agent token was revoked. Run `agent-billy login` to connect again."
    assert refused.error.message == revoked
    assert (401, 'Bearer error="invalid_token"') in [(status, www.split(",")[0]) for status, www in seen.answers]

    async def reconnect() -> None:
        async with connect(served.url, secret, again):
            pass

    with pytest.raises(BaseExceptionGroup) as failed:
        anyio.run(reconnect)
    assert failed.group_contains(MCPError, match=re.escape(revoked))
    assert again.answers[0][0] == 401


# --- confirmations under attack ---------------------------------------------------------------------------


def test_confirmations_replayed_edited_of_another_member_or_expired_are_refused_and_audited(
    served: Served, demo: Demo
) -> None:
    secret, _, _ = agent("billing_clerk", "clerk@example.com")
    other, _, _ = agent("billing_clerk", "other.clerk@example.com")
    ten = {"charge_id": demo.jane_charge, "amount": 1000}

    async def scenario() -> tuple[list[str], dict[str, Any]]:
        refusals = []
        async with connect(served.url, secret) as mine, connect(served.url, other) as theirs:

            async def preview() -> tuple[str, dict[str, Any]]:
                return confirm_of(data(await mine.call_tool("preview_refund", ten)))

            tool, arguments = await preview()
            edited = {**arguments, "amount": 1100}
            refusals.append(error(await mine.call_tool(tool, edited)))
            refusals.append(error(await mine.call_tool(tool, arguments)))  # the edit spent it

            tool, arguments = await preview()
            refusals.append(error(await theirs.call_tool(tool, arguments)))

            tool, arguments = await preview()
            with clock.travel(timedelta(minutes=5, seconds=1)):
                refusals.append(error(await mine.call_tool(tool, arguments)))

            tool, arguments = await preview()
            done = data(await mine.call_tool(tool, arguments))
            refusals.append(error(await mine.call_tool(tool, arguments)))  # replayed after it worked
        return refusals, done

    refusals, done = anyio.run(scenario)
    assert [m.split(":")[0] for m in refusals] == [
        "This confirmation was given for a different change (another amount, target or action)",
        "This confirmation was already used",
        "This confirmation belongs to another member or agent",
        "This confirmation has expired (they last 5 minutes)",
        "This confirmation was already used",
    ]
    assert [(r.amount, r.id) for r in demo.refunds_of(demo.jane_charge)] == [(1000, done["details"]["refund_id"])]
    rows = audit_rows("agents.confirm")
    assert [(r.actor_email, r.outcome, r.source) for r in rows] == [
        ("clerk@example.com", "denied", "agent"),
        ("clerk@example.com", "denied", "agent"),
        ("other.clerk@example.com", "denied", "agent"),
        ("clerk@example.com", "denied", "agent"),
        ("clerk@example.com", "denied", "agent"),
    ]
    assert all(r.details["for"] == "charges.refund" and r.details["agent_token"] for r in rows)


# --- the docs' failed-payments and overdue conversations ------------------------------------------------------


def test_failed_payments_come_grouped_by_reason_with_totals_and_repeat_customers(served: Served, demo: Demo) -> None:
    secret, _, _ = agent("read_only", "viewer@example.com")
    now = datetime.now(UTC)
    window = {
        "period": "custom",
        "first_day": (now - timedelta(days=100)).date().isoformat(),
        "last_day": (now + timedelta(days=1)).date().isoformat(),
    }

    async def scenario() -> tuple[dict[str, Any], str, dict[str, Any]]:
        async with connect(served.url, secret) as session:
            everything = await session.call_tool("failed_payments", window)
            week = data(await session.call_tool("failed_payments", {"period": "this_week"}))
        return data(everything), text(everything), week

    report, said, week = anyio.run(scenario)
    planned: Counter[str] = Counter()
    amounts: dict[str, int] = defaultdict(int)
    per_customer: Counter[str] = Counter()
    for person in plan(42, 50):
        for charge in person.charges:
            if charge.outcome in FAILURE_SOURCES:
                planned[charge.outcome] += 1
                amounts[charge.outcome] += charge.amount
                per_customer[person.name] += 1
    groups = {g["reason"]: g for g in report["groups"]}
    assert [g["label"] for g in report["groups"]] == ["Expired card", "Insufficient funds", "Fraud block", "Other"]
    for reason in FAILURE_SOURCES:  # expired_card, insufficient_funds, fraud
        assert groups[reason]["count"] == planned[reason] >= 2
        assert [t["amount"] for t in groups[reason]["totals"]] == [amounts[reason]]
        assert f"{planned[reason]} {groups[reason]['label'].lower()}" in said
    assert report["count"] == sum(g["count"] for g in report["groups"]) and groups["other"]["count"] >= 1
    assert [t["amount"] for t in report["totals"]] == [sum(t["amount"] for g in report["groups"] for t in g["totals"])]
    repeaters = {c["customer"]["name"] for g in report["groups"] for c in g["customers"] if c["repeat"]}
    assert {name for name, n in per_customer.items() if n >= 2} <= repeaters
    assert report["repeat_customers"] == len(
        {c["customer"]["id"] for g in report["groups"] for c in g["customers"] if c["repeat"]}
    )
    assert said.startswith(f"{report['count']} failed payment(s) totalling {report['totals'][0]['text']}")
    assert week["period"].startswith("This week: ") and week["count"] <= report["count"]


def test_overdue_invoices_say_who_owes_what_and_how_late_then_reminders_go_out(
    served: Served, demo: Demo, smtp_catcher: CatcherHandle
) -> None:
    secret, _, _ = agent("billing_manager", "manager@example.com")
    now = datetime.now(UTC)
    expected: dict[str, tuple[int, int, set[str]]] = {}
    for invoice in demo.peer.secret_client().v1.invoices.list(params={"limit": 100}).auto_paging_iter():
        if invoice.status == "open" and invoice.due_date and invoice.due_date < now.timestamp():
            owed, late, ids = expected.get(invoice.customer, (0, 0, set()))
            days = (now - datetime.fromtimestamp(invoice.due_date, UTC)).days
            expected[invoice.customer] = (owed + invoice.amount_remaining, max(late, days), ids | {invoice.id})
    assert expected, "the demo data has overdue invoices"

    async def scenario() -> tuple[dict[str, Any], str, dict[str, Any], dict[str, Any]]:
        async with connect(served.url, secret) as session:
            overdue = await session.call_tool("overdue_invoices", {"limit": 50})
            first = data(overdue)["customers"][0]
            ids = [i["id"] for i in first["invoices"]]
            tool, arguments = confirm_of(
                data(await session.call_tool("preview_invoice_reminders", {"invoice_ids": ids}))
            )
            sent = data(await session.call_tool(tool, arguments))
        return data(overdue), text(overdue), first, sent

    overdue, said, first, sent = anyio.run(scenario)
    got = {
        c["customer"]["id"]: (
            sum(t["amount"] for t in c["totals"]),
            c["days_overdue"],
            {i["id"] for i in c["invoices"]},
        )
        for c in overdue["customers"]
    }
    assert got == expected
    assert overdue["customer_count"] == len(expected) and overdue["has_more"] is False
    assert [c["days_overdue"] for c in overdue["customers"]] == sorted(
        (late for _, late, _ in expected.values()), reverse=True
    )
    name = first["customer"]["name"]
    assert said.startswith(f"Found {len(expected)} customer(s) with ")
    assert f"1. {name} — {first['totals'][0]['text']} ({first['days_overdue']} days overdue;" in said
    outcomes = {r["invoice_id"]: r["outcome"] for r in sent["details"]["results"]}
    assert set(outcomes) == {i["id"] for i in first["invoices"]}
    mails = smtp_catcher.messages()
    assert len(mails) == sum(1 for o in outcomes.values() if o == "sent") == len(outcomes)
    assert all(m.to == first["customer"]["email"] and "overdue" in m.subject for m in mails)
    assert [r.outcome for r in audit_rows("invoices.remind")] == ["ok"] * len(outcomes)


def test_a_tool_error_carries_stripe_and_service_words_never_a_traceback(served: Served, demo: Demo) -> None:
    secret, _, _ = agent("billing_manager", "manager@example.com")
    jane = billing.get_charge(demo.owner, demo.jane_charge).customer_id or ""
    period = {"period": "custom", "first_day": "2026-03-10", "last_day": "2026-03-01"}

    async def scenario() -> list[str]:
        async with connect(served.url, secret) as session:
            missing = error(await session.call_tool("preview_refund", {"charge_id": "ch_doesnotexist"}))
            too_much = error(await session.call_tool("preview_refund", {"charge_id": demo.jane_charge, "amount": 9999}))
            bad_period = error(await session.call_tool("failed_payments", period))
            tool, arguments = confirm_of(
                data(await session.call_tool("preview_customer_update", {"customer_id": jane, "name": "Jane S."}))
            )
            demo.peer.secret_client().v1.customers.delete(jane)  # gone in Stripe, not yet in Billy's store
            gone = error(await session.call_tool(tool, arguments))
        return [missing, too_much, bad_period, gone]

    messages = anyio.run(scenario)
    missing, too_much, bad_period, gone = messages
    assert missing == "No charge with that id has been synced from Stripe."
    assert too_much == "You can refund at most $45.99 on this charge ($0.00 of $45.99 is already refunded)."
    assert bad_period.startswith("The 'from' date (2026-03-10) is after the 'to' date")
    assert gone == customers.CUSTOMER_GONE  # Stripe's "no such customer", in words
    assert [r.outcome for r in audit_rows("customers.update")] == ["failed"]
    assert not any("Traceback" in m or 'File "' in m for m in messages)


def test_the_reflex_app_routes_mcp_to_the_endpoint_and_runs_its_session_manager(instance: Any, owner: Actor) -> None:
    """The real app object, stacked as Reflex stacks its `api_transformer`s. Of its lifespan tasks only
    the MCP session manager runs here (the others start background pollers a test must not leave)."""
    from starlette.applications import Starlette

    from billy_app.billy_app import app, mcp_endpoint

    assert mcp_endpoint.lifespan in app.get_lifespan_tasks()

    stacked = app._api
    for transformer in app.api_transformer:  # type: ignore[union-attr]
        if isinstance(transformer, Starlette):
            transformer.mount("", stacked)
            stacked = transformer
        else:
            stacked = transformer(stacked)
    top = Starlette(lifespan=lambda _: mcp_endpoint.lifespan())
    top.mount("", stacked)
    secret = agent_tokens.issue_token(owner, "Claude Desktop", ScopeRequest()).secret
    with serve_app(lambda _base: top) as base:
        assert (
            local_http().get(f"{base}/healthz", timeout=10).status_code == 200
        )  # the rest of the backend still answers
        refused = local_http().post(f"{base}/mcp", json={}, headers={"Accept": "application/json"}, timeout=10)
        assert refused.status_code == 401 and "resource_metadata=" in refused.headers["www-authenticate"]

        async def scenario() -> dict[str, Any]:
            async with connect(f"{base}/mcp", secret) as session:
                return data(await session.call_tool("whoami", {}))

        assert anyio.run(scenario)["role"] == "Owner"
